"""What to stream into one hardware unit and how many output beats to expect: `StreamProgram`.

Every simulation driver (Amaranth simulator, cocotb, the native Verilator harness) runs the same
program: for each input stream of a unit (`hdl.units`) a sequence of beats, packed exactly as the
Verilog port lays out its bits (element 0 in the low bits, struct members in order), as uint32
words; and the number of beats to collect from ``out``. Unit-specific programs
(`sim.array_program.ArrayProgram`, `sim.sparse_program.SparseProgram`) add how to turn the
collected words into a result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hdl.config import AccelConfig


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
    """uint32 words in one int32 ``out`` beat (array, sparse engine): C values and ``last``."""
    return cols + 1


def check_last_flags(last: np.ndarray, expected: np.ndarray) -> None:
    """`ValueError` naming the first output beat whose ``last`` flag is out of place."""
    if not np.array_equal(last, expected):
        beat = int(np.argmax(last != expected))
        raise ValueError(f"output beat {beat} has last={bool(last[beat])}, expected otherwise")


def check_beat_count(beats: int, expected: int) -> None:
    """`ValueError` when a run produced another number of output beats than the program."""
    if beats != expected:
        raise ValueError(f"expected {expected} output beats, the unit produced {beats}")


@dataclass(frozen=True)
class StreamProgram:
    """Beats for each input stream of one unit and the number of ``out`` beats it produces.

    Attributes
    ----------
    inputs: stream name -> uint32 [beats, words] packed payloads, in send order.
    output_beats: number of ``out`` beats the program produces.
    config: the hardware it is for.
    UNIT: the `hdl.units` name of the unit that runs it (a class attribute).
    ORDERED: a class attribute; when true, input stream i (in `hdl.units` order) presents its
        first beat only in the cycle after stream i - 1 transferred its last one (a unit whose
        streams must not interleave, e.g. the requantizer's parameters before its data).
    """

    UNIT: ClassVar[str] = ""
    ORDERED: ClassVar[bool] = False
    inputs: dict[str, np.ndarray]
    output_beats: int
    config: AccelConfig
