"""The golden backend: numpy results (the numeric spec) with the units' analytical cycles."""

from __future__ import annotations

import math

import numpy as np

from hdl.config import AccelConfig, Dataflow
from sim.backends.result import GemmResult
from sim.cycles import array_cycles, sparse_cycles
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import gemm
from sim.golden.sparse import csr_compress, csr_spmm
from sim.sparse_program import pass_beats


def tile_count(m: int, n: int, k: int, config: AccelConfig) -> int:
    """Weight tiles (WS) or output tiles (OS) a GEMM is split into on the array."""
    rows, cols = config.rows, config.cols
    spatial = k if config.dataflow is Dataflow.WS else m
    return math.ceil(spatial / rows) * math.ceil(n / cols)


class GoldenBackend:
    """Functional GEMMs from `sim.golden`; cycles from `sim.cycles`.

    The cycle models are exact for the RTL units with inputs always valid and the output
    always ready (tests/test_systolic_*.py and tests/test_sparse_*.py check them against
    simulation).
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

    def spmm(self, w: np.ndarray, x: np.ndarray) -> GemmResult:
        """int8 w (N x K, zeros skipped) @ int8 x (K x M) as on the sparse engine -> int32 N x M.

        W is compressed with the golden CSR format and multiplied by the golden sparse GEMM;
        the cycles are `sim.cycles.sparse_cycles` of the engine's passes.
        """
        w, x = require_gemm_operands(w, x, ("w", "x"))
        csr = csr_compress(w)
        passes = pass_beats(csr, x.shape[1], self.config)
        counters = {"macs": csr.nnz * x.shape[1], "nnz": csr.nnz, "passes": len(passes)}
        output = csr_spmm(csr, x)
        return GemmResult(output, sparse_cycles(passes), counters, cycle_model="analytical")
