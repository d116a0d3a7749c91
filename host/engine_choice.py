"""Which engine runs a layer's GEMM: the systolic array or the sparse engine.

`choose_engine(weight, m, config, requested)` decides for one GEMM of M rows by an int8 weight
[N, K] (a Linear's, or an im2col conv's) from the analytical model's predicted cycles
(`sim.perf`):

- dense: `sim.perf.gemm_estimate` of the layer's GEMM with int8 output (requantized on the
  device), as `host.device.Device.linear` runs it;
- sparse: `sim.perf.spmm_estimate` of W @ X^T on the sparse engine with int32 output (the SPMM
  path of `host.device.Device.spmm_int32`, whose accumulators the host requantizes with the
  device's integer procedure), X^T's M padded to whole bus words as `host.layer_runner` lays it
  out (`padded_columns`).

``requested`` ``"auto"`` takes the engine with fewer predicted cycles (ties go to the dense
array); ``"dense"`` and ``"sparse"`` force one (a forced choice still reports both predictions).
When the sparse engine's compute alone (its X loads and nonzeros beats, `sim.sparse_program`)
already takes at least the dense prediction, the full sparse estimate is skipped. A
configuration without a sparse engine (``sparse_lanes=0``) runs every layer dense; forcing
``"sparse"`` there is a ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.config import AccelConfig
from sim.golden.checks import require_array
from sim.golden.sparse import csr_compress
from sim.perf import gemm_estimate, spmm_estimate
from sim.sparse_program import pass_beats

__all__ = ["ENGINES", "EngineChoice", "choose_engine", "padded_columns", "require_engine"]

#: What a caller may request for a layer.
ENGINES = ("auto", "dense", "sparse")


@dataclass(frozen=True)
class EngineChoice:
    """The engine a GEMM runs on and why.

    Attributes
    ----------
    engine: ``"dense"`` (the systolic array) or ``"sparse"`` (the sparse engine).
    requested: what the caller asked for (`ENGINES`).
    dense_cycles: predicted cycles on the dense array.
    sparse_cycles: predicted cycles on the sparse engine (its compute alone when that already
        lost; None without a sparse engine).
    nonzeros, entries: the weight's nonzero entries and all its entries (N x K).
    fallback: why the layer runs dense after all ("" if it does not): the sparse engine's
        operands did not fit in the device memory left.
    """

    engine: str
    requested: str
    dense_cycles: int
    sparse_cycles: int | None
    nonzeros: int
    entries: int
    fallback: str = ""

    @property
    def zeros(self) -> float:
        """Share of the weight's entries that are zero."""
        return 1 - self.nonzeros / self.entries

    @property
    def reason(self) -> str:
        """One line: the predictions and what decided."""
        zeros = f"{100 * self.zeros:.1f} % zero weights"
        if self.sparse_cycles is None:
            return f"no sparse engine in this configuration ({zeros})"
        predicted = f"predicted {self.sparse_cycles:,} sparse vs {self.dense_cycles:,} dense cycles"
        how = "forced" if self.requested != "auto" else "fewer cycles"
        if self.fallback:
            return f"{predicted}, {zeros}; dense: the sparse engine's {self.fallback}"
        return f"{predicted}, {zeros}; {self.engine} ({how})"


def require_engine(name: str, requested: object) -> str:
    """`requested` if it is one of `ENGINES`, else a ValueError naming `name` and the value."""
    if not isinstance(requested, str) or requested not in ENGINES:
        choices = ", ".join(map(repr, ENGINES))
        raise ValueError(f"engine for {name} must be one of {choices}, not {requested!r}")
    return requested


def choose_engine(
    weight: np.ndarray, m: int, config: AccelConfig, requested: str = "auto"
) -> EngineChoice:
    """The engine for M rows times the int8 `weight` [N, K] transposed (module docstring).

    Raises
    ------
    TypeError, ValueError
        `weight` not an int8 matrix, `m` below 1, `requested` not in `ENGINES`, or
        ``"sparse"`` requested of a configuration without a sparse engine.
    """
    weight = require_array("weight", weight, np.int8, 2)
    requested = require_engine("the layer", requested)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive int, not {m!r}")
    (n, k), nonzeros = weight.shape, int(np.count_nonzero(weight))
    dense = gemm_estimate(m, n, k, config, requant=True).cycles
    if config.sparse_lanes == 0:
        if requested == "sparse":
            raise ValueError("the sparse engine was requested but sparse_lanes = 0 builds none")
        return EngineChoice("dense", requested, dense, None, nonzeros, weight.size)
    columns = padded_columns(m, config)
    sparse = _sparse_compute_cycles(weight, columns, config)
    if sparse < dense or requested == "sparse":
        sparse = spmm_estimate(weight, columns, config).cycles
    engine = requested
    if requested == "auto":
        engine = "sparse" if sparse < dense else "dense"
    return EngineChoice(engine, requested, dense, sparse, nonzeros, weight.size)


def padded_columns(m: int, config: AccelConfig) -> int:
    """`m` rounded up to whole bus words: the columns of X^T as the sparse path lays it out, so
    that each row of a column block is one aligned word (an unaligned one takes two)."""
    return -(-m // config.bus_bytes) * config.bus_bytes


def _sparse_compute_cycles(weight: np.ndarray, m: int, config: AccelConfig) -> int:
    """The sparse engine's busy cycles alone for the product: per pass its X block (K-chunk
    rows) and its nonzeros beats (`sim.sparse_program.pass_beats`), a lower bound of
    `spmm_estimate`."""
    return sum(rows + beats for rows, beats in pass_beats(csr_compress(weight), m, config))
