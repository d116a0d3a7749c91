"""Seeded sparse-GEMM operands with the edge cases planted, shared by the sparse-engine tests."""

import numpy as np

from sim.golden.sparse import random_24, random_sparse

#: Sparsities the acceptance tests sweep (fraction of zeros in W).
SPARSITIES = (0.0, 0.5, 0.75, 0.9, 0.99)


def sparse_operands(
    seed: int, n: int, k: int, m: int, sparsity: float, *, edges: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """w (N x K, the given fraction of zeros) and x (K x M), random int8.

    With `edges`, rows of w are overwritten where N allows: row 0 empty, row 1 fully dense with
    -128 (times x's -128 column: the largest products), row 2 a single 127 in the last column;
    x's column 0 is all -128 and its last row all 127.
    """
    rng = np.random.default_rng(seed)
    w = random_sparse(rng, n, k, sparsity)
    x = rng.integers(-128, 128, (k, m), dtype=np.int8)
    if edges:
        x[:, 0] = -128
        x[-1, :] = 127
        w[0, :] = 0
        if n > 1:
            w[1, :] = -128
        if n > 2:
            w[2, :] = 0
            w[2, -1] = 127
    return w, x


def pattern_24_operands(seed: int, n: int, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """w (N x K) with exactly two nonzeros in every group of four columns, and x (K x M)."""
    rng = np.random.default_rng(seed)
    return random_24(rng, n, k), rng.integers(-128, 128, (k, m), dtype=np.int8)
