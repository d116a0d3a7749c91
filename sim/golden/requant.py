"""Golden requantization: int32 accumulators -> int8 outputs, exactly as PyTorch computes them.

Two forms of one function, which agree on every input (tests/test_golden_requant.py):

`requantize_float` is torch's own arithmetic (x86/fbgemm and qnnpack engines): per output channel
n, with float32 scales,

    M[n] = fp32(fp32(sx * sw[n]) / sy)               (x86 / fbgemm)
    M[n] = fp32(fp32(sx * sw[n]) * fp32(1 / sy))     (qnnpack: it multiplies by the reciprocal)
    y    = clamp(rne(fp32(fp32(acc) * M[n])) + zy, lo, hi)

every intermediate rounded to float32 with round-half-to-even (rne), the zero point added after
rounding, and ReLU fused by lo = zy.

`requantize_int` is the integer-only form the hardware implements. Write M = m24 * 2**-shift with
a 24-bit mantissa m24 in [2**23, 2**24) (`decompose_multiplier`). Then:

1. round acc to 24 significant bits, ties to even (this is fp32(acc); a no-op while |acc| < 2**24);
2. multiply exactly by m24 (at most 2**31 * 2**24 = 2**55: an int64 holds it);
3. round the product to 24 significant bits, ties to even (this is the float32 multiply);
4. shift right by `shift`, ties to even (this is rne of the float value);
5. add the zero point, clamp.

Both steps 1 and 3 are needed: rounding the exact product once differs from torch in about 5e-6
of cases. The float32 product never leaves the normal float32 range for multipliers the hardware
can encode (`MIN_MULTIPLIER` <= M < `MAX_MULTIPLIER`), so steps 1-4 are the float32 operations
exactly. Everything here works in the accelerator's int8 domain: zero points in [-128, 127],
outputs int8 (see `sim.golden.zeropoint` for the quint8 <-> int8 mapping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.golden.checks import require_array

#: Width of the hardware multiplier mantissa.
MANTISSA_BITS = 24
#: Largest right shift the hardware encodes (6-bit field).
MAX_SHIFT = 63
#: Smallest multiplier the hardware encodes: 2**23 * 2**-63.
MIN_MULTIPLIER = 2.0**-40
#: Multipliers must stay below this (shift >= 0): 2**24.
MAX_MULTIPLIER = 2.0**24


@dataclass(frozen=True)
class RequantParams:
    """Per-output-channel requantization parameters of one layer, in the int8 domain.

    Attributes
    ----------
    multiplier: float32 [N], M[n] = fp32(fp32(sx * sw[n]) / sy), each in
        [`MIN_MULTIPLIER`, `MAX_MULTIPLIER`).
    out_zero_point: int, the int8-domain output zero point zy' = zy - 128, in [-128, 127].
    relu: bool, clamp at the zero point from below (fused ReLU).
    """

    multiplier: np.ndarray
    out_zero_point: int
    relu: bool = False

    def __post_init__(self) -> None:
        multiplier = require_array("multiplier", self.multiplier, np.float32, 1)
        if not np.all(np.isfinite(multiplier)):
            raise ValueError("multiplier must be finite")
        bad = (multiplier < MIN_MULTIPLIER) | (multiplier >= MAX_MULTIPLIER)
        if bad.any():
            n = int(np.argmax(bad))
            raise ValueError(
                f"multiplier[{n}] = {float(multiplier[n])!r} is outside the hardware range "
                f"[2**-40, 2**24)"
            )
        zero_point = self.out_zero_point
        if isinstance(zero_point, bool) or not isinstance(zero_point, int | np.integer):
            raise TypeError(f"out_zero_point must be an int, not {zero_point!r}")
        if not -128 <= zero_point <= 127:
            raise ValueError(f"out_zero_point must be in [-128, 127], not {zero_point!r}")
        object.__setattr__(self, "out_zero_point", int(zero_point))
        object.__setattr__(self, "relu", bool(self.relu))

    @property
    def channels(self) -> int:
        """Number of output channels N."""
        return self.multiplier.shape[0]

    @property
    def low(self) -> int:
        """Lowest output value: the zero point with fused ReLU, else -128."""
        return self.out_zero_point if self.relu else -128


#: How each torch engine forms its requantization multiplier from fp32(sx * sw[n]) and sy.
MULTIPLIER_FORMS = ("x86", "qnnpack")


def float_multiplier(
    in_scale: float, weight_scales: np.ndarray, out_scale: float, engine: str = "x86"
) -> np.ndarray:
    """Torch's requant multiplier, float32 [N]: fp32(fp32(sx * sw[n]) / sy) on the x86 engine
    (fbgemm), fp32(fp32(sx * sw[n]) * fp32(1 / sy)) on qnnpack. The two differ by an ulp for
    some scales, which moves an output by one step where acc * M is that close to a .5
    (measured against torch, docs/numeric-spec.md)."""
    if engine not in MULTIPLIER_FORMS:
        raise ValueError(f"engine must be one of {MULTIPLIER_FORMS}, not {engine!r}")
    sx = np.float32(in_scale)
    sw = np.asarray(weight_scales, dtype=np.float64).astype(np.float32)
    scaled = (sx * sw).astype(np.float32)
    if engine == "qnnpack":
        return (scaled * (np.float32(1) / np.float32(out_scale))).astype(np.float32)
    return (scaled / np.float32(out_scale)).astype(np.float32)


def decompose_multiplier(multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split float32 multipliers exactly into M = m24 * 2**-shift.

    Returns
    -------
    (m24, shift): int64 arrays; m24 in [2**23, 2**24), shift in [0, `MAX_SHIFT`].
    """
    multiplier = require_array("multiplier", multiplier, np.float32, 1)
    RequantParams(multiplier, 0)  # range check with a message naming the bad channel
    fraction, exponent = np.frexp(multiplier.astype(np.float64))  # M = f * 2**E, f in [0.5, 1)
    m24 = np.ldexp(fraction, MANTISSA_BITS).astype(np.int64)
    shift = (MANTISSA_BITS - exponent).astype(np.int64)
    return m24, shift


def requantize_float(acc: np.ndarray, params: RequantParams) -> np.ndarray:
    """Torch's float32 requantization of int32 accumulators acc [M, N] -> int8 [M, N]."""
    acc = _check_acc(acc, params)
    scaled = acc.astype(np.float32) * params.multiplier  # float32 * float32 -> float32, rne
    rounded = np.rint(scaled).astype(np.int64)  # rint: round half to even
    return np.clip(rounded + params.out_zero_point, params.low, 127).astype(np.int8)


def requantize_int(acc: np.ndarray, params: RequantParams) -> np.ndarray:
    """Integer-only requantization (the hardware's procedure), equal to `requantize_float`."""
    acc = _check_acc(acc, params)
    m24, shift = decompose_multiplier(params.multiplier)
    magnitude = np.abs(acc.astype(np.int64))
    magnitude = round_to_significant_bits(magnitude, MANTISSA_BITS)
    product = round_to_significant_bits(magnitude * m24, MANTISSA_BITS)
    rounded = shift_right_half_even(product, np.broadcast_to(shift, product.shape))
    signed = np.where(acc < 0, -rounded, rounded)
    return np.clip(signed + params.out_zero_point, params.low, 127).astype(np.int8)


def round_to_significant_bits(magnitude: np.ndarray, bits: int) -> np.ndarray:
    """Round non-negative int64 values to `bits` significant bits, ties to even.

    Values below 2**bits are unchanged; others keep their top `bits` bits, rounded half to even,
    and are returned at their original scale (the result may reach the next power of two).
    """
    length = bit_length(magnitude)
    drop = np.maximum(length - bits, 0)
    return shift_right_half_even(magnitude, drop) << drop


def shift_right_half_even(magnitude: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """magnitude / 2**shift rounded half to even, for non-negative int64 below 2**61."""
    shift = np.minimum(shift, 62)  # x < 2**61 <= half of 2**62: every larger shift gives 0 too
    quotient = magnitude >> shift
    remainder = magnitude - (quotient << shift)
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 1)
    round_up = (remainder > half) | ((remainder == half) & (quotient & 1 == 1))
    return quotient + (round_up & (shift > 0))


def bit_length(magnitude: np.ndarray) -> np.ndarray:
    """Bit length of each non-negative int64 below 2**62 (0 for 0), vectorized and exact."""
    _, exponent = np.frexp(magnitude.astype(np.float64))
    exponent = exponent.astype(np.int64)
    # float64 rounding can carry a value just below 2**e up to 2**e: correct that case.
    too_long = (exponent > 0) & (magnitude < np.left_shift(1, np.maximum(exponent - 1, 0)))
    return exponent - too_long


def _check_acc(acc: np.ndarray, params: RequantParams) -> np.ndarray:
    acc = require_array("acc", acc, np.int32, 2)
    if acc.shape[1] != params.channels:
        raise ValueError(
            f"acc has {acc.shape[1]} columns but the requant parameters have "
            f"{params.channels} channels"
        )
    return acc
