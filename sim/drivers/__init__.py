"""Drivers that run programs on simulated hardware.

- `sim.drivers.pysim` / `sim.drivers.native`: a `StreamProgram` (input beats in, output beats
  out) on one unit of `hdl.units` (systolic array, requantizer, sparse engine), in Amaranth's
  simulator or a native Verilator harness;
- `sim.drivers.accel_pysim` / `sim.drivers.accel_native`: instruction programs on the whole
  accelerator (`hdl.top.Accelerator`) against a main-memory image, in Amaranth's simulator
  (with `sim.drivers.memory_model`) or a native Verilator harness.
"""
