"""The golden backend: numpy results (the numeric spec) with the array's analytical cycles."""

from __future__ import annotations

import math

import numpy as np

from hdl.config import AccelConfig, Dataflow
from sim.backends.result import GemmResult
from sim.cycles import array_cycles
from sim.golden.gemm import gemm


def tile_count(m: int, n: int, k: int, config: AccelConfig) -> int:
    """Weight tiles (WS) or output tiles (OS) a GEMM is split into on the array."""
    rows, cols = config.rows, config.cols
    spatial = k if config.dataflow is Dataflow.WS else m
    return math.ceil(spatial / rows) * math.ceil(n / cols)


class GoldenBackend:
    """Functional GEMM from `sim.golden.gemm`; cycles from `sim.cycles.array_cycles`.

    The cycle model is exact for the RTL array with operands always valid and the output
    always ready (tests/test_systolic_*.py check it against simulation).
    """

    name = "golden"

    def __init__(self, config: AccelConfig) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) -> `GemmResult` with int32 M x N output."""
        output = gemm(a, b)
        (m, k), n = a.shape, b.shape[1]
        counters = {"macs": m * n * k, "tiles": tile_count(m, n, k, self.config)}
        cycles = array_cycles(m, n, k, self.config)
        return GemmResult(output, cycles, counters, cycle_model="analytical")
