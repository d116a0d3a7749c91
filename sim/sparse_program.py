"""What to stream into the sparse engine for one sparse GEMM Y = W @ X, and how to read Y back.

`spmm_program(w, x, config)` compresses W (N x K int8 with zeros) with the golden CSR format
(`sim.golden.sparse.csr_compress`) and lays the product out as passes of `hdl.sparse.SparseEngine`:

- K is split into chunks of at most ``sparse_depth`` rows of X (what one buffer bank holds), M
  into blocks of C columns; for each chunk, for each block, one pass:
- ``acts``: the chunk's rows of the block of X, C int8 each (columns beyond M are zeros),
  ``last`` on the chunk's final row;
- ``nonzeros``: every row of W restricted to the chunk, its nonzeros G at a time in column order
  (indices relative to the chunk), an empty row as one beat of zeros, ``row_end`` on each row's
  final beat, ``last`` on the pass's final beat;
- ``out``: N beats, row n's C int32 sums, ``last`` on row N-1.

The passes of one block are added over the K-chunks in int32 (wrapping, like the accumulator
memory that will hold them on the accelerator). A 2:4 matrix (`sim.golden.sparse.Sparse24Matrix`)
runs as its decompressed W. `pass_beats` gives the beat counts of every pass without building the
beats, for the cycle model `sim.cycles.sparse_cycles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hdl.config import AccelConfig
from hdl.sparse import index_bits
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import wrap_int32
from sim.golden.sparse import CsrMatrix, csr_compress
from sim.stream_program import (
    StreamProgram,
    check_beat_count,
    check_last_flags,
    pack_beats,
    unpack_int32,
)


@dataclass(frozen=True)
class SparseProgram(StreamProgram):
    """A sparse GEMM as beats for the sparse engine: W (``n`` x ``k``, ``nnz`` nonzeros) @ X
    (``k`` x ``m``), in ``chunks`` K-chunks times ``blocks`` column blocks of passes."""

    UNIT: ClassVar[str] = "sparse"
    n: int
    m: int
    k: int
    nnz: int

    @property
    def chunks(self) -> int:
        """K-chunks of at most ``sparse_depth`` rows."""
        return math.ceil(self.k / self.config.sparse_depth)

    @property
    def blocks(self) -> int:
        """Column blocks of C columns of X."""
        return math.ceil(self.m / self.config.cols)

    def assemble(self, output_words: np.ndarray) -> np.ndarray:
        """int32 N x M result from the ``out`` beats the engine produced.

        Raises
        ------
        ValueError
            Wrong number of beats, or a ``last`` flag out of place (a lost or duplicated beat).
        """
        cols = self.config.cols
        values, last = unpack_int32(output_words, cols)
        check_beat_count(values.shape[0], self.output_beats)
        check_last_flags(last, np.arange(self.output_beats) % self.n == self.n - 1)
        passes = values.reshape(self.chunks, self.blocks, self.n, cols).astype(np.int64)
        summed = passes.sum(axis=0)  # over K-chunks
        result = summed.transpose(1, 0, 2).reshape(self.n, self.blocks * cols)
        return wrap_int32(result[:, : self.m])


def _chunk_rows(csr: CsrMatrix, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """(row of each nonzero, its index relative to `start`, value) for columns [start, stop)."""
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.row_ptr))
    keep = (csr.col_idx >= start) & (csr.col_idx < stop)
    return rows[keep], csr.col_idx[keep].astype(np.int64) - start, csr.values[keep]


def _beats_per_row(rows: np.ndarray, n: int, groups: int) -> np.ndarray:
    """Beats of each row: ceil(nnz / G), at least one (an empty row is one beat of zeros)."""
    counts = np.bincount(rows, minlength=n)
    return np.maximum(1, -(-counts // groups))


def pass_beats(csr: CsrMatrix, m: int, config: AccelConfig) -> list[tuple[int, int]]:
    """(``acts`` beats, ``nonzeros`` beats) of every pass of W @ X with X having `m` columns."""
    n, k = csr.shape
    depth = config.sparse_depth
    passes = []
    for start in range(0, k, depth):
        stop = min(start + depth, k)
        rows, _, _ = _chunk_rows(csr, start, stop)
        beats = int(_beats_per_row(rows, n, config.sparse_groups).sum())
        passes += [(stop - start, beats)] * math.ceil(m / config.cols)
    return passes


def spmm_program(w: np.ndarray, x: np.ndarray, config: AccelConfig) -> SparseProgram:
    """The `SparseProgram` computing int8 w (N x K, zeros skipped) @ int8 x (K x M); a
    `ValueError` for a configuration without a sparse engine."""
    config.require_sparse_engine("spmm_program")
    w, x = require_gemm_operands(w, x, ("w", "x"))
    csr = csr_compress(w)
    (n, k), m = w.shape, x.shape[1]
    cols, depth = config.cols, config.sparse_depth
    blocks = math.ceil(m / cols)
    x_pad = np.zeros((k, blocks * cols), np.int8)
    x_pad[:, :m] = x
    acts, nonzeros = [], []
    for start in range(0, k, depth):
        stop = min(start + depth, k)
        chunk_acts = []
        for j in range(blocks):
            block = x_pad[start:stop, j * cols : (j + 1) * cols]
            last = (np.arange(stop - start) == stop - start - 1)[:, None]
            chunk_acts.append(pack_beats([(block, 8), (last, 1)]))
        acts += chunk_acts
        nonzeros += [nonzero_beats(csr, start, stop, config)] * blocks
    inputs = {"acts": np.concatenate(acts), "nonzeros": np.concatenate(nonzeros)}
    return SparseProgram(inputs, n * blocks * math.ceil(k / depth), config, n, m, k, csr.nnz)


def nonzero_beats(csr: CsrMatrix, start: int, stop: int, config: AccelConfig) -> np.ndarray:
    """Packed ``nonzeros`` beats of one pass: W's columns [start, stop), every row."""
    n = csr.shape[0]
    groups = config.sparse_groups
    rows, index, value = _chunk_rows(csr, start, stop)
    per_row = _beats_per_row(rows, n, groups)
    first_beat = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    total = int(per_row.sum())
    # Position of each nonzero within its row, then its beat and slot.
    row_start = np.searchsorted(rows, np.arange(n))
    position = np.arange(rows.shape[0]) - row_start[rows]
    beat = first_beat[rows] + position // groups
    slot = position % groups
    values = np.zeros((total, groups), np.int64)
    indices = np.zeros((total, groups), np.int64)
    values[beat, slot] = value
    indices[beat, slot] = index
    row_end = np.zeros((total, 1), np.int64)
    row_end[first_beat + per_row - 1] = 1
    last = np.zeros((total, 1), np.int64)
    last[-1] = 1
    bits = index_bits(config)
    # Entry g is (value, index) in that order; pack_beats takes whole columns per field, so
    # interleave them as one field per entry.
    fields = [
        field
        for g in range(groups)
        for field in ((values[:, g : g + 1], 8), (indices[:, g : g + 1], bits))
    ]
    return pack_beats([*fields, (row_end, 1), (last, 1)])
