"""A transposed convolution (ConvTranspose2d) as an ordinary convolution, by zero insertion.

ConvTranspose2d of stride s, padding p, output padding op, dilation d and kernel k gives
(H - 1) * s - 2p + d(k - 1) + op + 1 rows. The same numbers come out of a stride-1 convolution
of dilation d with the kernel flipped in both axes and its in/out channels swapped, over the
input with s - 1 "zeros" inserted between neighbours and d(k - 1) - p rows (columns) added
before, d(k - 1) - p + op after. The "zeros" are the input's zero point (z' in the int8
domain), so they add nothing to a sum of (x - z') * w: the int32 accumulators, and so the
requantized outputs, are exactly those of the transposed conv (tests/test_golden_layers.py
checks them against torch's quantized ConvTranspose2d).

`TransposeGeometry` holds the transposed conv's stepping; `flipped_weight` turns its weight
[C_in, C_out / g, KH, KW] into the convolution's [C_out, C_in / g * KH * KW]; `zero_insert`
builds the convolution's input. `conv_geometry` is the `ConvGeometry` of that convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.golden.checks import require_array
from sim.golden.layers import ConvGeometry


@dataclass(frozen=True)
class TransposeGeometry:
    """Kernel and stepping of a ConvTranspose2d (zero padding)."""

    in_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        for axis in range(2):
            reach = self.dilation[axis] * (self.kernel[axis] - 1)
            if self.padding[axis] > reach:
                raise ValueError(
                    f"padding {self.padding} is more than dilation * (kernel - 1) = {reach} on "
                    f"axis {axis}: such a transposed conv crops its output, which is not lowered"
                )
            if not 0 <= self.output_padding[axis] < max(self.stride[axis], self.dilation[axis]):
                raise ValueError(
                    f"output_padding {self.output_padding} must be below the stride or dilation"
                )

    @property
    def conv_geometry(self) -> ConvGeometry:
        """The stride-1 convolution over `zero_insert`'s output that computes this layer."""
        return ConvGeometry(
            in_channels=self.in_channels,
            kernel=self.kernel,
            dilation=self.dilation,
            groups=self.groups,
        )


def flipped_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """int8 ConvTranspose2d weight [C_in, C_out / g, KH, KW] -> the convolution's weight rows
    [C_out, C_in / g * KH * KW]: channels swapped within each group, kernel flipped."""
    weight = require_array("weight", weight, np.int8, 4)
    c_in, out_per_group, kh, kw = weight.shape
    if c_in % groups:
        raise ValueError(f"{c_in} input channels are not a multiple of groups = {groups}")
    in_per_group = c_in // groups
    grouped = weight.reshape(groups, in_per_group, out_per_group, kh, kw)
    swapped = grouped.transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]  # [g, O/g, I/g, KH, KW]
    return np.ascontiguousarray(swapped.reshape(groups * out_per_group, in_per_group * kh * kw))


def zero_insert(x: np.ndarray, geometry: TransposeGeometry, fill: int) -> np.ndarray:
    """The convolution's input: int8 x [B, C, H, W] with stride - 1 `fill` values between
    neighbours and the borders of the module doc, also `fill`."""
    x = require_array("x", x, np.int8, 4)
    if x.shape[1] != geometry.in_channels:
        raise ValueError(f"x has {x.shape[1]} channels, the layer expects {geometry.in_channels}")
    batch, channels, height, width = x.shape
    sh, sw = geometry.stride
    before = [geometry.dilation[a] * (geometry.kernel[a] - 1) - geometry.padding[a] for a in (0, 1)]
    after = [before[a] + geometry.output_padding[a] for a in (0, 1)]
    rows = (height - 1) * sh + 1 + before[0] + after[0]
    cols = (width - 1) * sw + 1 + before[1] + after[1]
    out = np.full((batch, channels, rows, cols), fill, np.int8)
    rows_at = slice(before[0], before[0] + (height - 1) * sh + 1, sh)
    cols_at = slice(before[1], before[1] + (width - 1) * sw + 1, sw)
    out[:, :, rows_at, cols_at] = x
    return out
