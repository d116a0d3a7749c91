"""Seeded int8 GEMM operands with the int8 extremes planted, shared by the array tests."""

import numpy as np


def operands(seed: int, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """a (M x K) and b (K x N): random int8, row 0 of a and column 0 of b all -128 (the largest
    products), the last row of a all 127."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a[0, :], b[:, 0] = -128, -128
    a[-1, :] = 127
    return a, b
