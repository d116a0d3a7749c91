"""C++ sources of the native Verilator harness (``harness.cpp``), built by `sim.drivers.native`."""
