"""Dynamic quantization of a Linear layer, as torch's int8 dynamic kernels compute it.

A dynamic-quantized Linear (``torch.ao.nn.quantized.dynamic.Linear``) keeps int8 weights and
quantizes each input batch when it arrives; the GEMM is integer, the rest float32:

1. the batch's scale and zero point come from its min and max (torch's
   ``ChooseQuantizationParams``: quint8, range [0, 127] when ``reduce_range`` on fbgemm (the
   x86 and fbgemm engines' kernel), [0, 255] on qnnpack, which ignores ``reduce_range``);
2. ``xq = clamp(rint(fma(x, fp32(1 / scale), zero_point)), 0, 255)`` (`quantize_input`: one
   rounding of ``x / scale + zero_point``, as fbgemm's ``QuantizeAvx2`` fused multiply-add and
   qnnpack alike; rounding ``x * (1/scale)`` first then adding the zero point differs on about
   one layer input in 200). The clamp is to the whole uint8 range even with ``reduce_range``:
   an input at the top of a [-40, 40] range lands on 127.5 and keeps code 128;
3. ``raw[m, n] = sum_k (xq[m, k] - zero_point) * (wq[n, k] - wz[n])`` exactly in int32
   (`raw_accumulators` from the accelerator's int8 GEMM, the zero points folded in);
4. ``y = raw * fp32(scale * ws[n]) + bias[n]`` in float32 (`float_output`), rounded as each
   kernel rounds: fbgemm fuses the multiply and the add (one rounding, AVX2 ``fmadd``);
   qnnpack multiplies, rounds, then adds (two roundings); a fused ReLU clamps at 0.

Measured against torch 2.13 (tests/test_dynamic_quant.py: random shapes, scales, offsets, biases,
per-tensor and per-channel weights, both kernels): every output equal bit for bit. The other
kernel's rounding, or a division by the scale, disagrees on most such cases (fbgemm: 186 of 300
random layers with two roundings), so the tests see it.
"""

from __future__ import annotations

import numpy as np

from sim.golden.checks import require_array

__all__ = [
    "KERNELS",
    "float_output",
    "fused_multiply_add_f32",
    "input_range",
    "quantize_input",
    "raw_accumulators",
]

#: The kernels whose dynamic Linear these numerics follow -> whether the multiply and the bias
#: add are fused (one rounding).
KERNELS = {"fbgemm": True, "qnnpack": False}


def input_range(kernel: str, reduce_range: bool) -> int:
    """The top of the code range a batch's scale and zero point are chosen for on `kernel`
    (qnnpack ignores `reduce_range`)."""
    if kernel not in KERNELS:
        known = ", ".join(KERNELS)
        raise ValueError(f"the dynamic-quantized kernel {kernel!r} is not modeled ({known} are)")
    return 127 if reduce_range and kernel != "qnnpack" else 255


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 `x` -> its quint8 codes (int16): clamp(rint(fma(x, fp32(1/scale), zp)), 0, 255)."""
    x = require_array("x", x, np.float32, 2)
    if not np.isfinite(x).all():
        raise ValueError("a dynamic-quantized layer's input holds NaN or infinity")
    inverse = np.float32(1.0) / np.float32(scale)
    codes = np.rint(fused_multiply_add_f32(x, inverse, np.float32(zero_point)))
    return np.clip(codes, 0, 255).astype(np.int16)


def raw_accumulators(
    product: np.ndarray,
    codes: np.ndarray,
    zero_point: int,
    weight: np.ndarray,
    weight_zero_points: np.ndarray,
) -> np.ndarray:
    """``sum_k (codes - zero_point) * (weight - wz)`` (int32 [M, N]) from the accelerator's
    ``product = (codes - 128) @ weight.T`` (int32 [M, N]; the int8 GEMM of the codes shifted
    into int8), with the zero points' terms added on the host in int64.

    With x8 = codes - 128: sum (x8 + 128 - zp)(w - wz) = product - wz * sum x8
    + (128 - zp) * (sum w - K * wz).
    """
    k = weight.shape[1]
    shifted_rows = codes.astype(np.int64).sum(axis=1, keepdims=True) - 128 * k
    column_sums = weight.astype(np.int64).sum(axis=1)
    wz = weight_zero_points.astype(np.int64)
    raw = product.astype(np.int64) - shifted_rows * wz + (128 - zero_point) * (column_sums - k * wz)
    if np.abs(raw).max(initial=0) > np.iinfo(np.int32).max:
        raise ValueError("the dynamic layer's int32 accumulators would overflow (K too large)")
    return raw.astype(np.int32)


def fused_multiply_add_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a * b + c`` rounded once (as an FMA instruction does), element-wise.

    The float64 product of two float32s is exact; the float64 sum is split exactly into
    ``high + low`` (Knuth's two-sum), and rounding ``high`` to float32 is the correct rounding
    of the exact sum except where ``high`` lies on a float32 midpoint, where ``low`` breaks
    the tie.
    """
    product = a.astype(np.float64) * b.astype(np.float64)
    addend = np.broadcast_to(c, product.shape).astype(np.float64)
    high = product + addend
    virtual = high - product
    low = (product - (high - virtual)) + (addend - virtual)
    rounded = high.astype(np.float32)
    error = high - rounded.astype(np.float64)
    neighbour = np.nextafter(rounded, np.where(error > 0, np.inf, -np.inf).astype(np.float32))
    midpoint = (error != 0) & (high == (rounded.astype(np.float64) + neighbour) / 2)
    past_midpoint = midpoint & (low != 0) & (np.sign(low) == np.sign(error))
    return np.where(past_midpoint, neighbour, rounded)


def float_output(
    raw: np.ndarray,
    scale: float,
    weight_scales: np.ndarray,
    bias: np.ndarray | None,
    kernel: str,
    relu: bool = False,
) -> np.ndarray:
    """float32 [M, N] ``raw * fp32(scale * ws[n]) + bias[n]`` rounded as `kernel` rounds
    (module doc), clamped at 0 for a fused ReLU."""
    input_range(kernel, False)  # names an unknown kernel
    multiplier = np.float32(scale) * weight_scales.astype(np.float32)
    raw = raw.astype(np.float32)
    if bias is None:
        out = raw * multiplier
    elif KERNELS[kernel]:
        out = fused_multiply_add_f32(raw, multiplier, bias.astype(np.float32))
    else:
        out = raw * multiplier + bias.astype(np.float32)
    return np.maximum(out, np.float32(0)) if relu else out
