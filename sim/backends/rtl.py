"""What every backend that simulates the RTL shares: programs, assembly, the result."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.array_program import gemm_program
from sim.backends.result import GemmResult
from sim.drivers.pysim import FlowControl
from sim.sparse_program import spmm_program
from sim.stream_program import StreamProgram


class RtlBackend:
    """Base of the ``pysim`` and ``verilator`` backends; subclasses define `_run`.

    Parameters
    ----------
    config: the hardware to simulate.
    flow: optional random idle input cycles / output back-pressure (default: none).
    """

    name = "rtl"

    def __init__(self, config: AccelConfig, flow: FlowControl | None = None) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.flow = flow if flow is not None else FlowControl()

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) on the simulated array -> `GemmResult`."""
        program = gemm_program(a, b, self.config)
        output_words, cycles, counters = self._run(program)
        counters = {"macs": program.m * program.n * program.k, "tiles": program.tiles, **counters}
        return GemmResult(program.assemble(output_words), cycles, counters, cycle_model="rtl")

    def spmm(self, w: np.ndarray, x: np.ndarray) -> GemmResult:
        """int8 w (N x K, zeros skipped) @ int8 x (K x M) on the simulated sparse engine.

        W is compressed with the golden CSR format inside (`sim.sparse_program.spmm_program`);
        the result's output is int32 N x M.
        """
        program = spmm_program(w, x, self.config)
        output_words, cycles, counters = self._run(program)
        counters = {
            "macs": program.nnz * program.m,
            "nnz": program.nnz,
            "passes": program.chunks * program.blocks,
            **counters,
        }
        return GemmResult(program.assemble(output_words), cycles, counters, cycle_model="rtl")

    def _run(self, program: StreamProgram) -> tuple[np.ndarray, int, dict[str, int]]:
        """Simulate `program`: (``out`` beats as uint32 words, cycles, simulator counters)."""
        raise NotImplementedError
