"""What to stream into the systolic array for one GEMM, and how to read its answer back.

`gemm_program` builds an `ArrayProgram` (a `sim.stream_program.StreamProgram` for the ``array``
unit); `ArrayProgram.assemble` turns the collected output words into the int32 M x N result.

Tiling (partial tiles padded with zeros, their outputs dropped):

- weight-stationary: for each N-tile j, for each K-tile i: R weight beats (rows of the
  B[iR:iR+R, jC:jC+C] tile), then M activation beats (A[:, iR:iR+R], ``last`` on row M-1);
  the M output rows are int32 partial sums, added over i (wrapping like the accumulator memory
  that will hold them);
- output-stationary: for each M-tile i, for each N-tile j: K operand beats (column k of
  A[iR:iR+R, :] and row k of B[:, jC:jC+C], ``last`` on k = K-1); R output rows per tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hdl.config import AccelConfig, Dataflow
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import wrap_int32
from sim.stream_program import (
    StreamProgram,
    check_beat_count,
    check_last_flags,
    pack_beats,
    unpack_int32,
)


@dataclass(frozen=True)
class ArrayProgram(StreamProgram):
    """A GEMM as beats for the systolic array; ``m``, ``n``, ``k``: its shape."""

    UNIT: ClassVar[str] = "array"
    m: int
    n: int
    k: int

    @property
    def tiles(self) -> int:
        """Weight tiles (WS) or output tiles (OS) the GEMM is split into."""
        r, c = self.config.rows, self.config.cols
        if self.config.dataflow is Dataflow.WS:
            return math.ceil(self.k / r) * math.ceil(self.n / c)
        return math.ceil(self.m / r) * math.ceil(self.n / c)

    def assemble(self, output_words: np.ndarray) -> np.ndarray:
        """int32 M x N result from the ``out`` beats the array produced.

        Raises
        ------
        ValueError
            Wrong number of beats, or a ``last`` flag out of place (a lost or duplicated beat).
        """
        rows, cols = self.config.rows, self.config.cols
        values, last = unpack_int32(output_words, cols)
        check_beat_count(values.shape[0], self.output_beats)
        per_tile = self.m if self.config.dataflow is Dataflow.WS else rows
        check_last_flags(last, (np.arange(self.output_beats) % per_tile) == per_tile - 1)
        tiles = values.reshape(self.tiles, per_tile, cols)
        n_tiles = math.ceil(self.n / cols)
        result = np.zeros((self.m, n_tiles * cols), np.int64)
        if self.config.dataflow is Dataflow.WS:
            k_tiles = math.ceil(self.k / rows)
            for j in range(n_tiles):
                partial = tiles[j * k_tiles : (j + 1) * k_tiles].astype(np.int64).sum(axis=0)
                result[:, j * cols : (j + 1) * cols] = partial
        else:
            m_tiles = math.ceil(self.m / rows)
            grid = tiles.reshape(m_tiles, n_tiles, rows, cols).transpose(0, 2, 1, 3)
            result = grid.reshape(m_tiles * rows, n_tiles * cols)[: self.m].astype(np.int64)
        return wrap_int32(result[:, : self.n])


def gemm_program(a: np.ndarray, b: np.ndarray, config: AccelConfig) -> ArrayProgram:
    """The `ArrayProgram` computing int8 a (M x K) @ int8 b (K x N) on the array of `config`."""
    a, b = require_gemm_operands(a, b)
    (m, k), n = a.shape, b.shape[1]
    rows, cols = config.rows, config.cols
    k_pad = math.ceil(k / rows) * rows if config.dataflow is Dataflow.WS else k
    m_pad = math.ceil(m / rows) * rows if config.dataflow is Dataflow.OS else m
    n_pad = math.ceil(n / cols) * cols
    a_pad = np.zeros((m_pad, k_pad), np.int8)
    a_pad[:m, :k] = a
    b_pad = np.zeros((k_pad, n_pad), np.int8)
    b_pad[:k, :n] = b
    if config.dataflow is Dataflow.WS:
        inputs = _weight_stationary_beats(a_pad, b_pad, rows, cols)
        beats = m * (k_pad // rows) * (n_pad // cols)
    else:
        inputs = _output_stationary_beats(a_pad, b_pad, rows, cols)
        beats = m_pad * (n_pad // cols)
    return ArrayProgram(inputs, beats, config, m, n, k)


def _weight_stationary_beats(a, b, rows, cols) -> dict[str, np.ndarray]:
    m = a.shape[0]
    k_tiles, n_tiles = a.shape[1] // rows, b.shape[1] // cols
    weight_rows = [
        b[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
        for j in range(n_tiles)
        for i in range(k_tiles)
    ]
    act_rows = [a[:, i * rows : (i + 1) * rows] for _ in range(n_tiles) for i in range(k_tiles)]
    last = np.tile(np.arange(m) == m - 1, k_tiles * n_tiles)[:, None]
    return {
        "weights": pack_beats([(np.concatenate(weight_rows), 8)]),
        "acts": pack_beats([(np.concatenate(act_rows), 8), (last, 1)]),
    }


def _output_stationary_beats(a, b, rows, cols) -> dict[str, np.ndarray]:
    k = a.shape[1]
    m_tiles, n_tiles = a.shape[0] // rows, b.shape[1] // cols
    a_beats = [a[i * rows : (i + 1) * rows].T for i in range(m_tiles) for _ in range(n_tiles)]
    b_beats = [b[:, j * cols : (j + 1) * cols] for _ in range(m_tiles) for j in range(n_tiles)]
    last = np.tile(np.arange(k) == k - 1, m_tiles * n_tiles)[:, None]
    return {
        "operands": pack_beats(
            [(np.concatenate(a_beats), 8), (np.concatenate(b_beats), 8), (last, 1)]
        )
    }
