"""The ``pysim`` backend: the RTL array in Amaranth's own simulator (small configs only)."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.array_program import gemm_program
from sim.backends.result import GemmResult
from sim.drivers.pysim import FlowControl, run_pysim


class PysimBackend:
    """Runs each GEMM cycle by cycle in Amaranth's simulator (about 1k-10k cycles/s).

    Parameters
    ----------
    config: the array to simulate.
    flow: optional random idle input cycles / output back-pressure (default: none).
    """

    name = "pysim"

    def __init__(self, config: AccelConfig, flow: FlowControl | None = None) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.flow = flow if flow is not None else FlowControl()

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) on the simulated array -> `GemmResult`."""
        program = gemm_program(a, b, self.config)
        output_words, cycles = run_pysim(program, self.flow)
        output = program.assemble(output_words)
        counters = {
            "macs": program.m * program.n * program.k,
            "tiles": program.tiles,
            "output_beats": program.output_beats,
            **{f"{name}_beats": int(beats.shape[0]) for name, beats in program.inputs.items()},
        }
        return GemmResult(output, cycles, counters, cycle_model="rtl")
