"""The ``verilator`` backend: the RTL array compiled by Verilator, run by the native harness."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.array_program import gemm_program
from sim.backends.result import GemmResult
from sim.drivers.native import NativeArray
from sim.drivers.pysim import FlowControl


class VerilatorBackend:
    """Runs each GEMM inside C++ (about 1M cycles/s at 16x16); the build is cached on disk.

    Parameters
    ----------
    config: the array to simulate.
    flow: optional random idle input cycles / output back-pressure (default: none).
    """

    name = "verilator"

    def __init__(self, config: AccelConfig, flow: FlowControl | None = None) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.flow = flow if flow is not None else FlowControl()
        self._array: NativeArray | None = None

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) on the Verilated array -> `GemmResult`."""
        program = gemm_program(a, b, self.config)
        if self._array is None:
            self._array = NativeArray(self.config)
        output_words, cycles, counters = self._array.run(program, self.flow)
        output = program.assemble(output_words)
        counters = {"macs": program.m * program.n * program.k, "tiles": program.tiles, **counters}
        return GemmResult(output, cycles, counters, cycle_model="rtl")
