"""The golden backend: numpy results (the numeric spec) with the accelerator's modeled cycles."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.backends.result import GemmResult
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import gemm
from sim.golden.sparse import csr_compress, csr_spmm
from sim.perf import gemm_estimate, spmm_estimate


class GoldenBackend:
    """Functional GEMMs from `sim.golden`; cycles from `sim.perf`, the analytical model of the
    whole accelerator running the program `sim.schedule` makes (operands and result in main
    memory, ``config.mem_latency`` and ``config.bus_bytes`` bytes per cycle).

    The model is within 5 % of the RTL backends' cycles for GEMMs, and its ``macs``,
    ``bytes_read`` and ``bytes_written`` equal the hardware's counters (tests/test_perf.py,
    docs/performance.md).
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
        estimate = gemm_estimate(m, n, k, self.config)
        return GemmResult(output, estimate.cycles, estimate.counters(), "perf")

    def spmm(self, w: np.ndarray, x: np.ndarray) -> GemmResult:
        """int8 w (N x K, zeros skipped) @ int8 x (K x M) as on the sparse engine -> int32 N x M.

        W is compressed with the golden CSR format and multiplied by the golden sparse GEMM;
        the cycles are `sim.perf.spmm_estimate`'s for the SPMM program.
        """
        w, x = require_gemm_operands(w, x, ("w", "x"))
        output = csr_spmm(csr_compress(w), x)
        estimate = spmm_estimate(w, x.shape[1], self.config)
        return GemmResult(output, estimate.cycles, estimate.counters(), "perf")
