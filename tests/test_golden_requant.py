"""Golden requantization: the integer-only form equals torch's float32 form on every input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.golden.requant import (
    MAX_MULTIPLIER,
    MIN_MULTIPLIER,
    RequantParams,
    bit_length,
    decompose_multiplier,
    float_multiplier,
    requantize_float,
    requantize_int,
    shift_right_half_even,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
EDGE_ACC = st.sampled_from([0, 1, -1, 2**24 - 1, 2**24 + 1, 2**31 - 1, -(2**31), -(2**31) + 1])
MULTIPLIER = st.floats(MIN_MULTIPLIER, MAX_MULTIPLIER, exclude_max=True, width=32)


def both(acc, multiplier, zero_point=0, relu=False):
    params = RequantParams(np.asarray(multiplier, np.float32), zero_point, relu)
    acc = np.asarray(acc, np.int32)
    return requantize_float(acc, params), requantize_int(acc, params)


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(
    acc=st.lists(INT32 | EDGE_ACC, min_size=1, max_size=8),
    multiplier=MULTIPLIER,
    zero_point=st.integers(-128, 127),
    relu=st.booleans(),
)
def test_int_equals_float_property(acc, multiplier, zero_point, relu):
    as_float, as_int = both([[a] for a in acc], [multiplier], zero_point, relu)
    np.testing.assert_array_equal(as_int, as_float)


@settings(derandomize=True, max_examples=1000, deadline=None)
@given(
    quotient=st.integers(-(2**20), 2**20),
    octave=st.integers(1, 40),
    zero_point=st.integers(-128, 127),
)
def test_exact_ties_round_half_to_even(quotient, octave, zero_point):
    # acc * 2**-octave = quotient + 0.5 exactly; |acc| < 2**31 keeps it in range.
    acc = (2 * quotient + 1) << (octave - 1)
    if not -(2**31) <= acc < 2**31:
        return
    as_float, as_int = both([[acc]], [2.0**-octave], zero_point)
    low, high = quotient, quotient + 1
    expected = np.clip((low if low % 2 == 0 else high) + zero_point, -128, 127)
    assert as_float[0, 0] == as_int[0, 0] == expected


def test_many_random_cases_across_octaves():
    rng = np.random.default_rng(2026)
    cases = 1_000_000
    channels = 64
    multiplier = np.ldexp(rng.uniform(0.5, 1.0, channels), rng.integers(-39, 25, channels))
    multiplier = multiplier.astype(np.float32)
    acc = rng.integers(-(2**31), 2**31, (cases // channels, channels), dtype=np.int64)
    small = rng.integers(-(2**20), 2**20, acc.shape)
    acc = np.where(rng.random(acc.shape) < 0.5, small, acc).astype(np.int32)
    for zero_point, relu in [(0, False), (-7, True), (100, False)]:
        as_float, as_int = both(acc, multiplier, zero_point, relu)
        assert np.array_equal(as_int, as_float)


def test_rounding_the_product_once_would_differ():
    """Both 24-bit steps matter: rounding the exact product once disagrees with torch sometimes."""
    rng = np.random.default_rng(5)
    channels = 64
    multiplier = np.ldexp(rng.uniform(0.5, 1.0, channels), rng.integers(-30, -5, channels))
    multiplier = multiplier.astype(np.float32)
    acc = rng.integers(2**24, 2**31, (2_000_000 // channels, channels)).astype(np.int32)
    as_float, as_int = both(acc, multiplier)
    m24, shift = decompose_multiplier(multiplier)
    once = shift_right_half_even(acc.astype(np.int64) * m24, np.broadcast_to(shift, acc.shape))
    once = np.clip(once, -128, 127)
    assert np.array_equal(as_int, as_float)
    assert np.count_nonzero(once != as_float) > 0


def test_decompose_is_exact():
    multiplier = np.array(
        [1.0, 0.5, 2.0**-40, np.nextafter(np.float32(2**24), np.float32(0)), 0.1], np.float32
    )
    m24, shift = decompose_multiplier(multiplier)
    assert np.all((m24 >= 2**23) & (m24 < 2**24))
    assert np.all((shift >= 0) & (shift <= 63))
    np.testing.assert_array_equal(np.ldexp(m24.astype(np.float64), -shift), multiplier)


def test_bit_length_is_exact_near_powers_of_two():
    values = np.array([0, 1, 2, 3, 2**53 - 1, 2**53, 2**55 - 1, 2**60 + 1, 2**61 - 1], np.int64)
    expected = [int(v).bit_length() for v in values]
    np.testing.assert_array_equal(bit_length(values), expected)


def test_float_multiplier_is_torch_formula():
    m = float_multiplier(0.1, np.array([0.02, 0.003]), 0.7)
    sx, sy = np.float32(0.1), np.float32(0.7)
    expected = [np.float32(np.float32(sx * np.float32(w)) / sy) for w in (0.02, 0.003)]
    np.testing.assert_array_equal(m, np.array(expected, np.float32))


def test_relu_clamps_at_zero_point_and_saturation():
    params = RequantParams(np.array([1.0], np.float32), -10, relu=True)
    acc = np.array([[-1000], [-5], [0], [50], [1000]], np.int32)
    np.testing.assert_array_equal(requantize_int(acc, params).ravel(), [-10, -10, -10, 40, 127])
    params = RequantParams(np.array([1.0], np.float32), -10)
    np.testing.assert_array_equal(requantize_int(acc, params).ravel(), [-128, -15, -10, 40, 127])


@pytest.mark.parametrize(
    ("multiplier", "zero_point", "error", "message"),
    [
        (
            [2.0**-41],
            0,
            ValueError,
            r"^multiplier\[0\] = 4\.547473508864641e-13 is outside the hardware range "
            r"\[2\*\*-40, 2\*\*24\)$",
        ),
        (
            [1.0, 2.0**24],
            0,
            ValueError,
            r"^multiplier\[1\] = 16777216\.0 is outside the hardware range \[2\*\*-40, 2\*\*24\)$",
        ),
        ([np.nan], 0, ValueError, r"^multiplier must be finite$"),
        ([1.0], 128, ValueError, r"^out_zero_point must be in \[-128, 127\], not 128$"),
        ([1.0], 1.5, TypeError, r"^out_zero_point must be an int, not 1\.5$"),
    ],
)
def test_bad_params_are_refused(multiplier, zero_point, error, message):
    with pytest.raises(error, match=message):
        RequantParams(np.array(multiplier, np.float32), zero_point)


def test_bad_accumulators_are_refused():
    params = RequantParams(np.array([1.0, 1.0], np.float32), 0)
    with pytest.raises(TypeError, match=r"^acc must have dtype int32, not int64$"):
        requantize_int(np.zeros((1, 2), np.int64), params)
    with pytest.raises(
        ValueError, match=r"^acc has 3 columns but the requant parameters have 2 channels$"
    ):
        requantize_float(np.zeros((1, 3), np.int32), params)
    with pytest.raises(TypeError, match=r"^multiplier must have dtype float32, not float64$"):
        RequantParams(np.array([1.0]), 0)
