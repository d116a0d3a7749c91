"""Lower a grouped Conv2d (depthwise included) to dense GEMMs that fill an array's columns.

A conv of g groups is g independent convolutions, each of OC/g output channels over C/g input
channels. One GEMM per group would give the array N = OC/g columns of work: 1 of 16 for a
depthwise conv on a 16-column array. `group_chunks` instead joins ``per_chunk`` consecutive
groups into one ungrouped conv over their C/g * per_chunk input channels whose weight is
block-diagonal: group j of the chunk has its own weights in the columns of its input channels
and zeros elsewhere. The zeros add nothing to any sum, so each chunk's int32 accumulation, and
so its requantized output, is exactly that of its groups (bit-exact with torch); the chunks'
outputs, concatenated along the channels, are the layer's output.

`groups_per_chunk(layer, cols)` picks the number of groups whose output channels fill ``cols``
array columns (at least one group, at most all of them). The array then does per_chunk times
the MACs a grouped conv needs (the zero blocks), so a depthwise conv on a C-column array reaches
at most 1/C of the array's MAC rate in useful work, with every column busy: the price of
lowering a conv with one input channel per output channel to a GEMM (docs/offload.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.golden.layers import QuantLayer, output_channels


@dataclass(frozen=True)
class GroupChunk:
    """Consecutive groups of a grouped conv as one ungrouped conv.

    Attributes
    ----------
    in_channels : range, the input channels the chunk reads.
    out_channels : range, the output channels it produces.
    layer : QuantLayer, the ungrouped conv (``groups`` = 1) over `in_channels` with the
        block-diagonal weight [len(out_channels), len(in_channels) * KH * KW].
    """

    in_channels: range
    out_channels: range
    layer: QuantLayer


def _require_grouped(layer: object) -> QuantLayer:
    if not isinstance(layer, QuantLayer):
        raise TypeError(f"layer must be a sim.golden.layers.QuantLayer, not {layer!r}")
    if layer.conv is None:
        raise ValueError("a conv layer is needed, this one is a linear layer")
    return layer


def groups_per_chunk(layer: QuantLayer, cols: int) -> int:
    """Groups per chunk so that a chunk's output channels fill `cols` array columns: ``cols //
    (OC / g)`` clamped to [1, g] (1 when a group alone has `cols` channels or more)."""
    layer = _require_grouped(layer)
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be an int >= 1, not {cols!r}")
    groups = layer.conv.groups
    return max(1, min(groups, cols // (layer.out_features // groups)))


def group_chunks(layer: QuantLayer, per_chunk: int) -> list[GroupChunk]:
    """The chunks of `per_chunk` consecutive groups covering `layer` (the last may hold fewer).

    Raises
    ------
    TypeError, ValueError
        `layer` is not a conv `QuantLayer`, or `per_chunk` is not an int in [1, groups].
    """
    layer = _require_grouped(layer)
    conv = layer.conv
    if isinstance(per_chunk, bool) or not isinstance(per_chunk, int):
        raise TypeError(f"per_chunk must be an int, not {per_chunk!r}")
    if not 1 <= per_chunk <= conv.groups:
        raise ValueError(f"per_chunk must be in [1, groups = {conv.groups}], not {per_chunk!r}")
    in_step = conv.in_channels // conv.groups
    out_step = layer.out_features // conv.groups
    patch = layer.in_features  # one group's row: in_step * KH * KW
    chunks = []
    for first in range(0, conv.groups, per_chunk):
        count = min(per_chunk, conv.groups - first)
        weight = np.zeros((count * out_step, count * patch), np.int8)
        for j in range(count):
            rows = slice((first + j) * out_step, (first + j + 1) * out_step)
            weight[j * out_step : (j + 1) * out_step, j * patch : (j + 1) * patch] = layer.weight[
                rows
            ]
        geometry = dataclasses.replace(conv, in_channels=count * in_step, groups=1)
        outputs = range(first * out_step, (first + count) * out_step)
        chunk_layer = output_channels(layer, outputs, geometry, weight)
        inputs = range(first * in_step, (first + count) * in_step)
        chunks.append(GroupChunk(inputs, outputs, chunk_layer))
    return chunks
