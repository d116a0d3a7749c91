"""Golden zero-point handling: the quint8 <-> int8 mapping and folding the input zero point.

Torch activations are quint8 (q in [0, 255], zero point z); the accelerator works in int8 with
q' = q - 128 and z' = z - 128 (flipping the top bit). Outputs map back the same way.

With weights symmetric (zero point 0) a quantized layer computes, per output n,

    acc[n] = sum_k w[n, k] * (q[k] - z) + bq[n] = sum_k w[n, k] * q'[k] + bias32[n]
    bias32[n] = bq[n] - z' * sum_k w[n, k]

so the array does plain int8 x int8 MACs and the zero point lives in the bias (`fold_bias`).
"""

from __future__ import annotations

import numpy as np

from sim.golden.checks import require_array


def quint8_to_int8(q: np.ndarray) -> np.ndarray:
    """Map torch quint8 values (uint8 array) to the accelerator's int8: q' = q - 128."""
    if not isinstance(q, np.ndarray) or q.dtype != np.uint8:
        raise TypeError(f"q must be a numpy uint8 array, not {getattr(q, 'dtype', type(q))}")
    return (q ^ 0x80).view(np.int8)


def int8_to_quint8(q: np.ndarray) -> np.ndarray:
    """Inverse of `quint8_to_int8`: q = q' + 128, as uint8."""
    if not isinstance(q, np.ndarray) or q.dtype != np.int8:
        raise TypeError(f"q must be a numpy int8 array, not {getattr(q, 'dtype', type(q))}")
    return q.view(np.uint8) ^ 0x80


def zero_point_to_int8(zero_point: int) -> int:
    """Map a quint8 zero point in [0, 255] to the int8 domain: z' = z - 128."""
    if isinstance(zero_point, bool) or not isinstance(zero_point, int | np.integer):
        raise TypeError(f"zero point must be an int, not {zero_point!r}")
    if not 0 <= zero_point <= 255:
        raise ValueError(f"quint8 zero point must be in [0, 255], not {zero_point!r}")
    return int(zero_point) - 128


def quantize_bias(bias: np.ndarray, in_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """Integer bias bq[n] = rne(fp32(b[n]) / fp32(sx * sw[n])) in float32, as int64 [N].

    This is how torch's int8 kernels turn a float bias into int32; for a bias pre-rounded by
    `dequantize_bias` it returns the integers that produced it.
    """
    bias = np.asarray(bias)
    if bias.dtype != np.float32 or bias.ndim != 1:
        raise TypeError(f"bias must be a float32 vector, not {bias.dtype} of shape {bias.shape}")
    scale = _bias_scale(in_scale, weight_scales)
    if scale.shape != bias.shape:
        raise ValueError(f"bias has {bias.shape[0]} entries but there are {scale.shape[0]} scales")
    quantized = np.rint(bias / scale).astype(np.float64)
    if np.any(np.abs(quantized) > 2**31 - 1):
        n = int(np.argmax(np.abs(quantized) > 2**31 - 1))
        raise ValueError(f"bias[{n}] = {float(bias[n])!r} does not fit int32 at scale {scale[n]!r}")
    return quantized.astype(np.int64)


def dequantize_bias(bias_q: np.ndarray, in_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """The float32 bias fp32(bq[n] * fp32(sx * sw[n])) that torch must hold to agree exactly."""
    scale = _bias_scale(in_scale, weight_scales)
    return (np.asarray(bias_q, dtype=np.int64).astype(np.float32) * scale).astype(np.float32)


def fold_bias(bias_q: np.ndarray, weight: np.ndarray, in_zero_point: int) -> np.ndarray:
    """bias32[n] = bq[n] - z' * sum_k w[n, k] for int8 weights [N, K] and int8-domain z'.

    Raises
    ------
    ValueError
        A folded bias leaves the int32 range (the message names the channel).
    """
    weight = require_array("weight", weight, np.int8, 2)
    bias_q = np.asarray(bias_q, dtype=np.int64)
    if bias_q.shape != (weight.shape[0],):
        raise ValueError(f"bias has shape {bias_q.shape}, expected ({weight.shape[0]},)")
    if not -128 <= in_zero_point <= 127:
        raise ValueError(f"int8-domain zero point must be in [-128, 127], not {in_zero_point!r}")
    folded = bias_q - in_zero_point * weight.astype(np.int64).sum(axis=1)
    outside = (folded < -(2**31)) | (folded > 2**31 - 1)
    if outside.any():
        n = int(np.argmax(outside))
        raise ValueError(f"folded bias of channel {n} = {int(folded[n])} does not fit int32")
    return folded.astype(np.int32)


def _bias_scale(in_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    sw = np.asarray(weight_scales, dtype=np.float64).astype(np.float32)
    return (np.float32(in_scale) * sw).astype(np.float32)
