"""A MobileNet-style CNN for the digits: depthwise-separable blocks, global average pool, logits.

``MobileNet`` is an ``nn.Sequential`` of named children: ``stem`` (Conv2d 1->C0, 3x3,
padding 1) + ``relu0``; then per block i = 1, 2, 3 a depthwise 3x3 conv ``dw{i}`` (groups =
channels, padding 1; block 2 has stride 2) + ``dw{i}_relu`` and a pointwise 1x1 conv ``pw{i}``
+ ``pw{i}_relu``; ``pool`` (``AdaptiveAvgPool2d(1)``), ``flatten`` and ``fc`` (Linear -> 10
logits). No BatchNorm: `host.quantize` fuses Conv + ReLU pairs only, so a BatchNorm would be
quantized on its own; without it every conv fuses with its ReLU and the whole network runs in
int8. The convolutions (depthwise ones included) run on the accelerator (`host.offload`); the
average pool runs in torch on the quantized tensor.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from torch import nn

__all__ = ["MobileNet"]


class MobileNet(nn.Sequential):
    """Stem conv, three depthwise-separable blocks, global average pool, Linear: [B, classes].

    Parameters
    ----------
    channels:
        Output channels of the stem and of the three pointwise convolutions (C0, C1, C2, C3);
        each depthwise conv keeps the channels it receives.
    classes:
        Number of logits.

    The network takes any image size >= 2 (the pool is global); the digits are 8x8.
    """

    def __init__(
        self, channels: tuple[int, int, int, int] = (16, 32, 64, 64), classes: int = 10
    ) -> None:
        if len(channels) != 4 or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ValueError(f"channels must be four positive integers, not {channels!r}")
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive integer, not {classes!r}")
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            stem=nn.Conv2d(1, channels[0], 3, padding=1), relu0=nn.ReLU()
        )
        for block, (width, out) in enumerate(itertools.pairwise(channels), start=1):
            stride = 2 if block == 2 else 1
            layers[f"dw{block}"] = nn.Conv2d(
                width, width, 3, stride=stride, padding=1, groups=width
            )
            layers[f"dw{block}_relu"] = nn.ReLU()
            layers[f"pw{block}"] = nn.Conv2d(width, out, 1)
            layers[f"pw{block}_relu"] = nn.ReLU()
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(channels[-1], classes)
        super().__init__(layers)
