"""What to stream into the requantizer to requantize int32 accumulators, and how to read int8 back.

`requant_program(acc, bias, params, config)` requantizes acc (M x N int32, N <= C channels) with
per-channel bias and multipliers and the layer's output zero point and ReLU
(`sim.golden.requant.RequantParams`) on `hdl.requant.Requantizer`:

- ``params``: one beat per lane c = 0..C-1: channel c's bias, m24 and shift
  (`sim.golden.requant.decompose_multiplier`), the zero point and the ReLU flag; lanes beyond N
  get zeros (their outputs are dropped);
- ``acc``: M beats, row m = acc[m, :] (zero-padded to C), ``last`` on row M-1;
- ``out``: M beats of C int8, ``last`` on row M-1.

The program is ORDERED: ``acc`` starts in the cycle after the last ``params`` beat, so every row
sees the new parameters. Without flow control it takes C + M + `hdl.requant.LATENCY` cycles
(`requant_cycles`): one row per cycle. More than C channels are several programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hdl.config import AccelConfig
from hdl.requant import LATENCY
from sim.golden.checks import require_array
from sim.golden.requant import RequantParams, decompose_multiplier
from sim.stream_program import StreamProgram, check_beat_count, check_last_flags, pack_beats


@dataclass(frozen=True)
class RequantProgram(StreamProgram):
    """Requantization of ``rows`` x ``channels`` accumulators as beats for the requantizer."""

    UNIT: ClassVar[str] = "requant"
    ORDERED: ClassVar[bool] = True
    rows: int
    channels: int

    def assemble(self, output_words: np.ndarray) -> np.ndarray:
        """int8 rows x channels result from the ``out`` beats.

        Raises
        ------
        ValueError
            Wrong number of beats, or a ``last`` flag out of place.
        """
        cols = self.config.cols
        words = np.asarray(output_words, np.uint32)
        check_beat_count(words.shape[0], self.output_beats)
        data = words.view("<u1").reshape(words.shape[0], -1)  # bytes, element 0 lowest
        check_last_flags(data[:, cols] & 1 == 1, np.arange(self.rows) == self.rows - 1)
        return data[:, : self.channels].view(np.int8).copy()


def requant_cycles(rows: int, config: AccelConfig) -> int:
    """Exact RTL cycles of a `RequantProgram` of `rows` rows without flow control: the C
    parameter beats, a row every ``requant_chunks`` cycles, the pipeline's latency."""
    return config.cols + rows * config.requant_chunks + LATENCY


def requant_program(
    acc: np.ndarray, bias: np.ndarray, params: RequantParams, config: AccelConfig
) -> RequantProgram:
    """The `RequantProgram` computing requantize(acc + bias) with `params` on `config`'s lanes.

    Parameters
    ----------
    acc: int32 [M, N], N <= ``config.cols``.
    bias: int32 [N], added to every row (exactly, in 33 bits: a sum outside int32 sets the
        requantizer's ``overflow`` flag).
    params: per-channel multipliers, the output zero point and ReLU.
    """
    acc = require_array("acc", acc, np.int32, 2)
    bias = require_array("bias", bias, np.int32, 1)
    if not isinstance(params, RequantParams):
        raise TypeError(f"params must be a RequantParams, not {type(params)!r}")
    rows, channels = acc.shape
    if rows < 1:
        raise ValueError("acc has no rows")
    if not 1 <= channels <= config.cols:
        raise ValueError(
            f"acc has {channels} channels; one program holds 1 to cols = {config.cols}"
        )
    if bias.shape[0] != channels or params.channels != channels:
        raise ValueError(
            f"acc has {channels} channels, bias {bias.shape[0]}, params {params.channels}"
        )
    cols = config.cols
    m24, shift = decompose_multiplier(params.multiplier)
    lane_bits = max(1, (cols - 1).bit_length())

    def per_lane(values: np.ndarray) -> np.ndarray:
        padded = np.zeros((cols, 1), np.int64)
        padded[:channels, 0] = values
        return padded

    configured = np.arange(cols) < channels
    param_beats = pack_beats(
        [
            (np.arange(cols)[:, None], lane_bits),
            (per_lane(bias), 32),
            (per_lane(m24), 24),
            (per_lane(shift), 6),
            ((configured * params.out_zero_point)[:, None], 8),
            ((configured & params.relu)[:, None], 1),
        ]
    )
    data = np.zeros((rows, cols), np.int64)
    data[:, :channels] = acc
    last = (np.arange(rows) == rows - 1)[:, None]
    inputs = {"params": param_beats, "acc": pack_beats([(data, 32), (last, 1)])}
    return RequantProgram(inputs, rows, config, rows, channels)
