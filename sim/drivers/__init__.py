"""Drivers that run programs on simulated hardware.

- `sim.drivers.pysim` / `sim.drivers.native`: a `StreamProgram` (input beats in, output beats
  out) on one unit of `hdl.units` (systolic array, requantizer, sparse engine), in Amaranth's
  simulator or a native Verilator harness;
- `sim.drivers.accel_pysim` / `sim.drivers.accel_native`: instruction programs on the whole
  accelerator (`hdl.top.Accelerator`) against a main-memory image, in Amaranth's simulator
  (with `sim.drivers.memory_model`) or a native Verilator harness (`sim.drivers.accel_build`
  builds it; `sim.drivers.accel_results` holds what a run returns or raises).

Both native harnesses are built from `sim.drivers.native_netlist`'s netlist by
`sim.drivers.native_build` (the unit's by `sim.drivers.unit_build`) and loaded through
`sim.drivers.native_binding`.
"""
