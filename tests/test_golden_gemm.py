"""Golden int8 GEMM: exactness, two's-complement wrap, the overflow bound, input checks."""

import numpy as np
import pytest

from sim.golden.gemm import MAX_K_NO_OVERFLOW, gemm, gemm_checked, wrap_int32


def reference(a, b):
    """Independent reference: a plain int64 matmul, element by element."""
    return np.einsum("mk,kn->mn", a.astype(np.int64), b.astype(np.int64))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (17, 1, 9), (64, 2048, 33)])
def test_random_gemm_equals_int64_reference(shape):
    rng = np.random.default_rng(sum(shape))
    m, k, n = shape
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    out = gemm(a, b)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, reference(a, b))


def test_extreme_values_at_the_overflow_bound_are_exact():
    k = MAX_K_NO_OVERFLOW
    a = np.full((2, k), -128, np.int8)
    a[1, :] = 127
    b = np.full((k, 2), -128, np.int8)
    out = gemm_checked(a, b)
    np.testing.assert_array_equal(out, reference(a, b))
    assert out[0, 0] == 131071 * 16384


def test_wrap_is_twos_complement():
    values = np.array([2**31, -(2**31) - 1, 2**32 + 5, -5, 2**31 - 1], np.int64)
    np.testing.assert_array_equal(
        wrap_int32(values), np.array([-(2**31), 2**31 - 1, 5, -5, 2**31 - 1], np.int32)
    )


def test_gemm_wraps_past_the_bound_and_checked_refuses():
    k = MAX_K_NO_OVERFLOW + 1
    a = np.full((1, k), -128, np.int8)
    b = np.full((k, 1), -128, np.int8)
    assert gemm(a, b)[0, 0] == -(2**31)  # 2**31 wraps to -2**31
    with pytest.raises(
        ValueError,
        match=r"^K = 131072 exceeds the int32 overflow bound K <= 131071 of int8 x int8 "
        r"accumulation; split K into chunks and add the partial sums in wider precision$",
    ):
        gemm_checked(a, b)


def test_bias_is_added_per_column_and_checked_for_overflow():
    a = np.array([[1, 2]], np.int8)
    b = np.array([[3, 4], [5, 6]], np.int8)
    bias = np.array([10, -20], np.int32)
    np.testing.assert_array_equal(gemm(a, b, bias), [[23, -4]])
    big = np.array([2**31 - 1, 0], np.int32)
    assert gemm(a, b, big)[0, 0] == -(2**31) + 12
    with pytest.raises(
        ValueError,
        match=r"^accumulator overflow at output \[0, 0\]: 2147483660 is outside the int32 range$",
    ):
        gemm_checked(a, b, big)


@pytest.mark.parametrize(
    ("a", "b", "error", "message"),
    [
        (
            np.zeros((2, 3), np.float32),
            np.zeros((3, 2), np.int8),
            TypeError,
            r"^a must have dtype int8, not float32$",
        ),
        (
            np.zeros((2, 3), np.int8),
            np.zeros((3, 2), np.int16),
            TypeError,
            r"^b must have dtype int8, not int16$",
        ),
        (
            [[1]],
            np.zeros((1, 1), np.int8),
            TypeError,
            r"^a must be a numpy array of int8, not <class 'list'>$",
        ),
        (
            np.zeros(3, np.int8),
            np.zeros((3, 2), np.int8),
            ValueError,
            r"^a must have 2 dimensions, not shape \(3,\)$",
        ),
        (
            np.zeros((2, 3), np.int8),
            np.zeros((4, 2), np.int8),
            ValueError,
            r"^inner dimensions differ: a is 2x3, b is 4x2$",
        ),
        (
            np.zeros((0, 3), np.int8),
            np.zeros((3, 2), np.int8),
            ValueError,
            r"^a must not be empty, not shape \(0, 3\)$",
        ),
    ],
)
def test_bad_inputs_are_refused(a, b, error, message):
    with pytest.raises(error, match=message):
        gemm(a, b)


def test_bias_shape_and_dtype_are_checked():
    a = np.zeros((1, 2), np.int8)
    b = np.zeros((2, 3), np.int8)
    with pytest.raises(TypeError, match=r"^bias must have dtype int32, not int64$"):
        gemm(a, b, np.zeros(3, np.int64))
    with pytest.raises(
        ValueError, match=r"^bias must have 3 entries \(one per output column\), not 2$"
    ):
        gemm(a, b, np.zeros(2, np.int32))
