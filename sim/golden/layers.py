"""Golden quantized Linear and Conv2d layers: int8 in, int8 out, bit-exact with torch.ao.

A `QuantLayer` holds what the accelerator needs for one layer, all in the int8 domain (see
`sim.golden.zeropoint`): int8 weights [N, K], the int32 bias with the input zero point folded in,
and the requantization parameters. The forward functions are the whole pipeline:

    linear:  y = requant(x @ W.T + bias32)
    conv2d:  y = requant(im2col(x, pad_value=z') @ W.T + bias32), reshaped to NCHW

A grouped Conv2d (``groups`` = g > 1, depthwise when g = C) is g such convolutions side by side:
group i's output channels see only input channels [i * C/g, (i + 1) * C/g), and its weight
rows hold C/g * KH * KW entries (torch's [OC, C/g, KH, KW] reshaped). `conv2d_forward` computes
each group's GEMM and requantizes their concatenation (`sim.golden.grouped_conv` lowers a
grouped layer to dense GEMMs for the accelerator). A Conv1d is a Conv2d of kernel (1, K) on
inputs of height 1.

with `gemm_checked` (refuses an accumulator overflow instead of wrapping) and the integer-only
`requantize_int` the hardware implements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.golden.checks import require_array
from sim.golden.conv import col2im_output, conv_output_size, im2col
from sim.golden.gemm import gemm_checked
from sim.golden.requant import RequantParams, requantize_int


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stepping and groups of a Conv2d (zero padding)."""

    in_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        groups = self.groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be an int >= 1, not {groups!r}")
        if self.in_channels % groups:
            raise ValueError(
                f"in_channels = {self.in_channels} is not a multiple of groups = {groups}"
            )

    @classmethod
    def of(cls, in_channels, kernel, stride, padding, dilation, groups) -> ConvGeometry:
        """The geometry of a Conv2d or Conv1d given torch's per-axis sequences (or ints): a
        Conv1d's (K,) becomes a Conv2d's (1, K) on inputs of height 1."""
        dims = len(tuple(kernel))

        def pair(values, height: int) -> tuple[int, int]:
            values = (values,) * dims if isinstance(values, int) else tuple(values)
            values = tuple(int(v) for v in values) * (dims // len(values))
            return values if dims == 2 else (height, values[0])

        return cls(
            in_channels=int(in_channels),
            kernel=pair(kernel, 1),
            stride=pair(stride, 1),
            padding=pair(padding, 0),
            dilation=pair(dilation, 1),
            groups=int(groups),
        )

    @property
    def patch_size(self) -> int:
        """K of one group's GEMM (the weight's row length): C / groups * KH * KW."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]


@dataclass(frozen=True)
class QuantLayer:
    """Integer parameters of one quantized Linear or Conv2d layer.

    Attributes
    ----------
    weight: int8 [N, K] (a conv weight [OC, C, KH, KW] reshaped to [OC, C*KH*KW]).
    bias32: int32 [N], bq[n] - z' * sum_k weight[n, k].
    requant: per-channel multipliers, output zero point (int8 domain), fused ReLU.
    in_zero_point: int8-domain input zero point z' (the conv padding value).
    in_scale, out_scale: float scales of input and output (for dequantizing results).
    weight_scales: float32 [N] per-channel weight scales.
    conv: the geometry for a Conv2d, None for a Linear.
    """

    weight: np.ndarray
    bias32: np.ndarray
    requant: RequantParams
    in_zero_point: int
    in_scale: float
    out_scale: float
    weight_scales: np.ndarray
    conv: ConvGeometry | None = None

    def __post_init__(self) -> None:
        weight = require_array("weight", self.weight, np.int8, 2)
        require_array("bias32", self.bias32, np.int32, 1)
        n = weight.shape[0]
        if self.bias32.shape[0] != n or self.requant.channels != n:
            raise ValueError(
                f"weight has {n} output channels but bias32 has {self.bias32.shape[0]} and "
                f"requant has {self.requant.channels}"
            )
        if self.conv is not None and self.conv.patch_size != weight.shape[1]:
            raise ValueError(
                f"conv patch size {self.conv.patch_size} differs from weight K {weight.shape[1]}"
            )
        if self.conv is not None and n % self.conv.groups:
            groups = self.conv.groups
            raise ValueError(f"{n} output channels are not a multiple of groups = {groups}")

    @property
    def kind(self) -> str:
        """``"conv2d"`` or ``"linear"``."""
        return "linear" if self.conv is None else "conv2d"

    @property
    def out_features(self) -> int:
        """N: output features / channels."""
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        """K of the GEMM: input features, or C*KH*KW for a conv."""
        return self.weight.shape[1]


def output_channels(
    layer: QuantLayer, channels: range, conv: ConvGeometry | None, weight: np.ndarray | None = None
) -> QuantLayer:
    """`layer` restricted to the output `channels` (a step-1 range), with geometry `conv` and,
    when given, another int8 `weight` for those channels (bias32 and the requantization are the
    channels' own: a weight that adds only zero entries, as a block-diagonal one, keeps them)."""
    rows = slice(channels.start, channels.stop)
    return dataclasses.replace(
        layer,
        weight=np.ascontiguousarray(layer.weight[rows] if weight is None else weight),
        bias32=layer.bias32[rows].copy(),
        requant=dataclasses.replace(layer.requant, multiplier=layer.requant.multiplier[rows]),
        weight_scales=layer.weight_scales[rows],
        conv=conv,
    )


def linear_forward(x: np.ndarray, layer: QuantLayer) -> np.ndarray:
    """Quantized Linear: int8 x [M, K] -> int8 [M, N]."""
    x = require_array("x", x, np.int8, 2)
    if x.shape[1] != layer.in_features:
        raise ValueError(f"x has {x.shape[1]} features, the layer expects {layer.in_features}")
    acc = gemm_checked(x, np.ascontiguousarray(layer.weight.T), layer.bias32)
    return requantize_int(acc, layer.requant)


def conv_patches(x: np.ndarray, layer: QuantLayer) -> tuple[np.ndarray, tuple[int, int]]:
    """The im2col lowering of a quantized Conv2d's input: int8 patches [B*OH*OW, C*KH*KW]
    (padding with the input zero point z') and the output size (OH, OW); ungrouped layers
    only (`sim.golden.grouped_conv.group_chunks` splits a grouped one)."""
    x = require_array("x", x, np.int8, 4)
    geometry = layer.conv
    if geometry is None:
        raise ValueError("a conv layer is needed, this one is a linear layer")
    if geometry.groups != 1:
        raise ValueError(
            f"a conv of groups = {geometry.groups} has one patch matrix per group; split it "
            "with sim.golden.grouped_conv.group_chunks"
        )
    if x.shape[1] != geometry.in_channels:
        raise ValueError(f"x has {x.shape[1]} channels, the layer expects {geometry.in_channels}")
    out_hw = conv_output_size(
        x.shape[2:], geometry.kernel, geometry.stride, geometry.padding, geometry.dilation
    )
    patches = im2col(
        x,
        geometry.kernel,
        geometry.stride,
        geometry.padding,
        geometry.dilation,
        pad_value=layer.in_zero_point,
    )
    return patches, out_hw


def conv2d_forward(x: np.ndarray, layer: QuantLayer) -> np.ndarray:
    """Quantized Conv2d by im2col, one GEMM per group: int8 x [B, C, H, W] -> int8
    [B, OC, OH, OW]."""
    x = require_array("x", x, np.int8, 4)
    if layer.conv is None:
        raise ValueError("a conv layer is needed, this one is a linear layer")
    groups = layer.conv.groups
    if x.shape[1] != layer.conv.in_channels:
        raise ValueError(f"x has {x.shape[1]} channels, the layer expects {layer.conv.in_channels}")
    single = dataclasses.replace(layer.conv, in_channels=x.shape[1] // groups, groups=1)
    in_step, out_step = x.shape[1] // groups, layer.out_features // groups
    sums = []
    for g in range(groups):
        group = output_channels(layer, range(g * out_step, (g + 1) * out_step), single)
        patches, out_hw = conv_patches(x[:, g * in_step : (g + 1) * in_step], group)
        weight = np.ascontiguousarray(group.weight.T)
        sums.append(gemm_checked(patches, weight, group.bias32))
    acc = np.concatenate(sums, axis=1)
    return col2im_output(requantize_int(acc, layer.requant), x.shape[0], out_hw)
