"""Golden im2col: Conv2d (stride, padding, dilation, groups=1) lowered to one GEMM.

For input x [B, C, H, W] and a kernel KH x KW, `im2col` returns the patch matrix
P [B*OH*OW, C*KH*KW] whose row (b, oh, ow) holds the input pixels under the kernel at that output
position, ordered (c, kh, kw) like a torch weight [OC, C, KH, KW] reshaped to [OC, C*KH*KW]. Then

    conv(x, w)[b, oc, oh, ow] = (P @ w.reshape(OC, -1).T)[(b, oh, ow), oc]

with OH = (H + 2*pad_h - dil_h*(KH - 1) - 1) // stride_h + 1 (and likewise OW), torch's formula.
Padding uses `pad_value`: for quantized convolution that is the input zero point (the real value
0), not the integer 0.
"""

from __future__ import annotations

import numpy as np

from sim.golden.checks import require_array


def _pair(name: str, value: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        pair = (value, value)
    else:
        pair = tuple(value) if isinstance(value, tuple | list) else ()
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, not {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{name} must be >= {minimum}, not {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> tuple[int, int]:
    """(OH, OW) of a convolution, torch's formula; ValueError if the kernel does not fit."""
    stride, padding, dilation = (
        _pair("stride", stride, 1),
        _pair("padding", padding, 0),
        _pair("dilation", dilation, 1),
    )
    out = tuple(
        (size[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
        for i in range(2)
    )
    if min(out) < 1:
        raise ValueError(
            f"kernel {kernel} with dilation {dilation} does not fit input {size} "
            f"padded by {padding}"
        )
    return out


def im2col(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    pad_value: int = 0,
) -> np.ndarray:
    """Patch matrix [B*OH*OW, C*KH*KW] of int8 input x [B, C, H, W] (see module docstring)."""
    x = require_array("x", x, np.int8, 4)
    kh, kw = _pair("kernel", kernel, 1)
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    dh, dw = _pair("dilation", dilation, 1)
    if not -128 <= pad_value <= 127:
        raise ValueError(f"pad_value must be an int8 value, not {pad_value!r}")
    batch, channels, height, width = x.shape
    oh, ow = conv_output_size((height, width), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    padded = np.full((batch, channels, height + 2 * ph, width + 2 * pw), pad_value, np.int8)
    padded[:, :, ph : ph + height, pw : pw + width] = x
    patches = np.empty((batch, oh, ow, channels, kh, kw), np.int8)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            patches[:, :, :, :, i, j] = padded[:, :, rows, cols].transpose(0, 2, 3, 1)
    return patches.reshape(batch * oh * ow, channels * kh * kw)


def col2im_output(gemm_out: np.ndarray, batch: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Reshape the GEMM result [B*OH*OW, OC] back to NCHW [B, OC, OH, OW]."""
    oh, ow = out_hw
    return gemm_out.reshape(batch, oh, ow, -1).transpose(0, 3, 1, 2)
