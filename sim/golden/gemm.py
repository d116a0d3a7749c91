"""Golden int8 x int8 -> int32 GEMM: what the systolic array computes, bit for bit.

Every product of two int8 values is exact in int16 and the array accumulates in a 32-bit two's
complement register, so the result is the exact integer sum wrapped modulo 2**32. With int8
operands that wrap can only happen for K > `MAX_K_NO_OVERFLOW` (131071): -128 * -128 = 2**14 is the
largest product and 131071 * 2**14 < 2**31 <= 131072 * 2**14.

The exact sums are computed with a float64 matrix product, which is exact here: every partial sum
is an integer of magnitude at most K * 2**14 < 2**53 for K < 2**39, so no rounding ever happens,
whatever order BLAS adds in.
"""

from __future__ import annotations

import numpy as np

from sim.golden.checks import require_array, require_gemm_operands

#: Largest K for which no int8 x int8 dot product can leave the int32 range.
MAX_K_NO_OVERFLOW = (2**31 - 1) // (128 * 128)

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values into int32 (what a 32-bit register keeps)."""
    return ((values.astype(np.int64) - _INT32_MIN) % 2**32 + _INT32_MIN).astype(np.int32)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer product of int8 matrices a (M x K) and b (K x N) as int64 (no wrap)."""
    a, b = require_gemm_operands(a, b)
    if a.shape[1] >= 2**39:
        raise ValueError(f"K = {a.shape[1]} is beyond the exact float64 range of this model")
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def gemm(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """C = a @ b (+ bias per column), int32 with two's-complement wrap, as a 32-bit accumulator.

    Parameters
    ----------
    a: int8 M x K.  b: int8 K x N.  bias: optional int32 vector of N, added to every row.

    Returns
    -------
    int32 M x N. Sums outside the int32 range wrap modulo 2**32 (see `gemm_checked` to refuse).
    """
    exact = exact_matmul(a, b)
    if bias is not None:
        exact = exact + _bias_vector(bias, exact.shape[1])
    return wrap_int32(exact)


def gemm_checked(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """`gemm` that refuses any input whose result could wrap, instead of wrapping.

    Raises
    ------
    ValueError
        K exceeds `MAX_K_NO_OVERFLOW`, or (with a bias) an actual sum leaves the int32 range; the
        message names K or the first offending output position.
    """
    k = np.shape(a)[1] if np.ndim(a) == 2 else None
    if k is not None and k > MAX_K_NO_OVERFLOW:
        raise ValueError(
            f"K = {k} exceeds the int32 overflow bound K <= {MAX_K_NO_OVERFLOW} of int8 x int8 "
            "accumulation; split K into chunks and add the partial sums in wider precision"
        )
    exact = exact_matmul(a, b)
    if bias is not None:
        exact = exact + _bias_vector(bias, exact.shape[1])
    outside = (exact < _INT32_MIN) | (exact > _INT32_MAX)
    if outside.any():
        row, col = (int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"accumulator overflow at output [{row}, {col}]: {int(exact[row, col])} "
            "is outside the int32 range"
        )
    return exact.astype(np.int32)


def _bias_vector(bias: np.ndarray, n: int) -> np.ndarray:
    bias = require_array("bias", bias, np.int32, 1)
    if bias.shape[0] != n:
        raise ValueError(f"bias must have {n} entries (one per output column), not {bias.shape[0]}")
    return bias.astype(np.int64)
