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
