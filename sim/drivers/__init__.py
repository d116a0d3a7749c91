"""Drivers that run an `ArrayProgram` on a simulated systolic array."""
