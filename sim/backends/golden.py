"""The golden backend: numpy results (the numeric spec) with analytical cycle counts."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.backends.result import GemmResult
from sim.cycles import scalesim_cycles
from sim.golden.gemm import gemm


class GoldenBackend:
    """Functional GEMM from `sim.golden.gemm`; cycles from SCALE-Sim's convention.

    The golden backend has no clock of its own: until the RTL's closed-form cycle model exists,
    its `GemmResult.cycles` follow `sim.cycles.scalesim_cycles` and say so in ``cycle_model``.
    """

    name = "golden"

    def __init__(self, config: AccelConfig) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) -> `GemmResult` with int32 M x N output."""
        output = gemm(a, b)
        m, k = a.shape
        n = b.shape[1]
        cycles = scalesim_cycles(m, n, k, self.config)
        return GemmResult(output, cycles, {"macs": m * n * k}, cycle_model="scalesim")
