"""C++ sources of the native Verilator harnesses (``harness.cpp``, ``accel_harness.cpp``), built
by `sim.drivers.native_build`."""
