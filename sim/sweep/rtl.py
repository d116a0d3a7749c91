"""A sweep point's GEMMs on the RTL: the cycles `hdl.top.Accelerator` takes for each.

`rtl_cycles(config, gemms)` runs each GEMM of a workload end to end in the native Verilator
harness (`sim.drivers.accel_native`): seeded random int8 operands placed by
`sim.schedule.gemm_memory` (with requantization parameters for an int8-output layer), the
program `sim.schedule` makes, the cycles from reset to idle. That is the program
`sim.sweep.evaluate` gives the cycle model, so the two are compared like for like. The int32
results are checked against `sim.golden`. The build (about 10-30 s for a small array, two minutes
at 16x16) is cached per configuration (`sim.toolchain`).
"""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import encode_program
from sim.golden.gemm import gemm as golden_gemm
from sim.golden.requant import RequantParams
from sim.schedule import gemm_memory

__all__ = ["rtl_cycles"]


def rtl_cycles(config: AccelConfig, gemms, *, seed: int = 0) -> list[int]:
    """RTL cycles of each of `gemms` (`sim.sweep.evaluate.Gemm`) on `config` (module doc).

    Raises
    ------
    AssertionError
        An int32 result differs from `sim.golden` (the RTL is wrong).
    """
    from sim.drivers.accel_native import NativeAccelerator

    rng = np.random.default_rng(seed)
    accelerator = NativeAccelerator(config)
    cycles = []
    try:
        for gemm in gemms:
            a = rng.integers(-128, 128, (gemm.m, gemm.k), dtype=np.int8)
            b = rng.integers(-128, 128, (gemm.k, gemm.n), dtype=np.int8)
            params = RequantParams(np.full(gemm.n, 2**-10, np.float32), 0) if gemm.int8 else None
            memory, layout = gemm_memory(a, b, config, params=params)
            # room for a last write burst of a whole bus word past the result
            memory = np.concatenate([memory, np.zeros(2 * config.bus_bytes, np.uint8)])
            run = accelerator.run(memory, encode_program(layout.schedule()))
            if params is None and not np.array_equal(layout.result(memory), golden_gemm(a, b)):
                raise AssertionError(f"{gemm.name}: the RTL result differs from sim.golden")
            cycles.append(run.cycles)
    finally:
        accelerator.close()
    return cycles
