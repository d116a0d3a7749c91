"""Input checks shared by the golden models: refuse, never coerce.

A golden model that silently casts a float or int16 array to int8 would return a wrong number
instead of an error, so every entry point checks dtype and shape first and names the bad value.
"""

from __future__ import annotations

import numpy as np


def require_array(name: str, value: object, dtype: type, ndim: int) -> np.ndarray:
    """Return `value` if it is an ndarray of exactly `dtype` and `ndim` dimensions.

    Raises
    ------
    TypeError
        `value` is not an ndarray, or its dtype is not `dtype`.
    ValueError
        `value` has the wrong number of dimensions or a zero-sized dimension.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {np.dtype(dtype)}, not {type(value)!r}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, not {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not shape {value.shape}")
    if 0 in value.shape:
        raise ValueError(f"{name} must not be empty, not shape {value.shape}")
    return value


def require_gemm_operands(
    a: object, b: object, names: tuple[str, str] = ("a", "b")
) -> tuple[np.ndarray, np.ndarray]:
    """Return int8 matrices a (M x K) and b (K x N), refusing anything else.

    `names` are the operands' names in messages (e.g. ``("w", "x")`` for a sparse product).

    Raises
    ------
    TypeError, ValueError
        As `require_array`, or the inner dimensions differ (both shapes named).
    """
    a = require_array(names[0], a, np.int8, 2)
    b = require_array(names[1], b, np.int8, 2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"inner dimensions differ: {names[0]} is {a.shape[0]}x{a.shape[1]}, "
            f"{names[1]} is {b.shape[0]}x{b.shape[1]}"
        )
    return a, b


def require_shape(shape: object) -> tuple[int, int]:
    """Return `shape` as a tuple of two Python ints >= 1, or raise naming it."""
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(d, int | np.integer) and not isinstance(d, bool) for d in shape)
    ):
        raise TypeError(f"shape must be a tuple of two ints (N, K), not {shape!r}")
    n, k = (int(d) for d in shape)
    if n < 1 or k < 1:
        raise ValueError(f"shape must have N >= 1 and K >= 1, not {(n, k)!r}")
    return n, k


def require_vector(name: str, value: object, dtype: type) -> np.ndarray:
    """Like `require_array` for one dimension, but an empty vector is allowed (nnz may be 0)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {np.dtype(dtype)}, not {type(value)!r}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, not {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must have 1 dimension, not shape {value.shape}")
    return value


def frozen_copy(value: np.ndarray) -> np.ndarray:
    """Return a C-contiguous read-only copy, so a validated matrix cannot be mutated later."""
    copy = np.array(value, copy=True, order="C")
    copy.setflags(write=False)
    return copy


def require_x(x: object, k: int) -> np.ndarray:
    """Check the dense activations X (int8 K x M) against the K of the weight matrix."""
    x = require_array("x", x, np.int8, 2)
    if x.shape[0] != k:
        raise ValueError(f"x must have K = {k} rows (one per column of W), not shape {x.shape}")
    return x
