"""Seeded requantization cases (accumulators, bias, parameters) shared by the Verilator tests."""

import numpy as np

from sim.golden.requant import MAX_SHIFT, RequantParams

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def random_case(
    seed: int, rows: int, channels: int, zero_point: int, relu: bool
) -> tuple[np.ndarray, np.ndarray, RequantParams]:
    """Accumulators over all of int32 (edges planted), biases, log-uniform multipliers.

    Multipliers span the hardware's whole range [2**-40, 2**24); the accumulators are scaled per
    channel so that about half the outputs land inside int8 and half saturate. Sums acc + bias
    stay inside int32. Rows 0-2 are edge cases: accumulators at the int32 extreme the bias
    points away from, sums exactly at an int32 extreme, and zero accumulators.
    """
    rng = np.random.default_rng(seed)
    exponents = rng.uniform(-40, 24, channels)
    multiplier = np.exp2(exponents).astype(np.float32)
    multiplier = np.clip(multiplier, np.float32(2.0**-40), np.float32(2.0**24 - 2.0**0))
    bias = rng.integers(-(2**20), 2**20, channels).astype(np.int32)
    # |acc * M| around 2**rng(-2, 9): inside int8 and beyond, plus some full-range values.
    magnitude = np.exp2(rng.uniform(-2, 9, (rows, channels)) - exponents)
    acc = rng.choice([-1, 1], (rows, channels)) * np.minimum(magnitude, 2.0**31 - 2.0**21)
    acc = acc.astype(np.int64)
    full = rng.random((rows, channels)) < 0.2
    acc[full] = rng.integers(INT32_MIN + 2**20, INT32_MAX - 2**20, int(full.sum()))
    if rows > 2:
        acc[0, :] = np.where(bias >= 0, INT32_MIN, INT32_MAX)
        acc[1, :] = np.where(bias <= 0, INT32_MIN, INT32_MAX) - bias.astype(np.int64)
        acc[2, :] = 0
    return acc.astype(np.int32), bias, RequantParams(multiplier, zero_point, relu)


def tie_case(
    seed: int, rows: int, channels: int, zero_point: int
) -> tuple[np.ndarray, np.ndarray, RequantParams]:
    """Exact .5 ties: M = 2**-e per channel and acc + bias = (2k + 1) * 2**(e - 1).

    acc * M is then k + 1/2 exactly (k in [-130, 129], so some saturate), which must round to
    the even neighbour. e runs over 1..24 so the tie sits at every bit position of the rounding.
    """
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, 25, channels)
    multiplier = np.exp2(-shift.astype(np.float64)).astype(np.float32)
    bias = rng.integers(-1000, 1000, channels).astype(np.int32)
    k = rng.integers(-130, 130, (rows, channels))
    acc = (2 * k + 1) * np.left_shift(1, shift - 1) - bias
    return acc.astype(np.int32), bias, RequantParams(multiplier, zero_point, False)


def shift_case(
    shifts: np.ndarray, seed: int, rows: int
) -> tuple[np.ndarray, np.ndarray, RequantParams]:
    """One channel per encoded shift (0..63), random mantissas, accumulators spanning int32."""
    rng = np.random.default_rng(seed)
    channels = shifts.shape[0]
    assert shifts.max() <= MAX_SHIFT
    m24 = rng.integers(2**23, 2**24, channels)
    multiplier = np.ldexp(m24.astype(np.float64), -shifts).astype(np.float32)
    acc = rng.integers(INT32_MIN, INT32_MAX, (rows, channels), dtype=np.int64)
    small = rng.random((rows, channels)) < 0.5
    acc[small] >>= rng.integers(0, 31, int(small.sum()))
    return acc.astype(np.int32), np.zeros(channels, np.int32), RequantParams(multiplier, -3)
