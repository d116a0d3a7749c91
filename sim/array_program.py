"""What to stream into the systolic array for one GEMM, and how to read its answer back.

Every simulation driver (Amaranth simulator, cocotb, the native Verilator harness) runs the same
`ArrayProgram`: for each input stream a sequence of beats, packed exactly as the Verilog port
lays out its bits (element 0 in the low bits, struct members in order), as uint32 words; and
the number of beats to collect from ``out``. `ArrayProgram.assemble` turns the collected output
words into the int32 M x N result.

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

import numpy as np

from hdl.config import AccelConfig, Dataflow
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import wrap_int32


def pack_beats(fields: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Pack per-beat fields into uint32 words, low bits first.

    Parameters
    ----------
    fields: (values [beats, count] integers, bit width of each value), in port order.

    Returns
    -------
    uint32 [beats, words], words = ceil(total bits / 32).
    """
    bit_columns = []
    for values, width in fields:
        values = np.asarray(values, np.int64)
        shifts = np.arange(width, dtype=np.int64)
        bits = (values[:, :, None] >> shifts) & 1  # two's complement for negatives
        bit_columns.append(bits.reshape(values.shape[0], -1))
    bits = np.concatenate(bit_columns, axis=1).astype(np.uint8)
    words = math.ceil(bits.shape[1] / 32)
    bits = np.pad(bits, ((0, 0), (0, words * 32 - bits.shape[1])))
    packed = np.packbits(bits, axis=1, bitorder="little")
    return packed.view("<u4").astype(np.uint32)


def unpack_int32(words: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``out`` beats (uint32 words: ``count`` int32 values then a ``last`` bit)."""
    words = np.asarray(words, np.uint32)
    values = words[:, :count].view(np.int32).copy()
    last = (words[:, count] & 1).astype(bool) if words.shape[1] > count else np.zeros(0, bool)
    return values, last


def out_words(cols: int) -> int:
    """uint32 words in one ``out`` beat: C int32 values plus the ``last`` bit."""
    return cols + 1


@dataclass(frozen=True)
class ArrayProgram:
    """Beats for each input stream of the array and the shape of the expected output.

    Attributes
    ----------
    inputs: stream name -> uint32 [beats, words] packed payloads, in send order.
    output_beats: number of ``out`` beats the program produces.
    config, m, n, k: what it computes.
    """

    inputs: dict[str, np.ndarray]
    output_beats: int
    config: AccelConfig
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
        if values.shape[0] != self.output_beats:
            raise ValueError(
                f"expected {self.output_beats} output beats, the array produced {values.shape[0]}"
            )
        per_tile = self.m if self.config.dataflow is Dataflow.WS else rows
        expected_last = (np.arange(self.output_beats) % per_tile) == per_tile - 1
        if not np.array_equal(last, expected_last):
            beat = int(np.argmax(last != expected_last))
            raise ValueError(f"output beat {beat} has last={bool(last[beat])}, expected otherwise")
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
