"""Seeded random sparse int8 weights for tests and benchmarks: unstructured or 2:4."""

from __future__ import annotations

import numpy as np

from sim.golden.checks import require_shape
from sim.golden.sparse24 import padded_k


def _require_generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng)!r}")
    return rng


def _require_dims(n: object, k: object) -> tuple[int, int]:
    return require_shape((n, k))


def _nonzero_int8(rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform draws from the 255 nonzero int8 values, -128 and 127 included."""
    v = rng.integers(-128, 127, size=size, dtype=np.int16)  # -128..126
    v[v >= 0] += 1  # -128..-1, 1..127
    return v.astype(np.int8)


def random_sparse(rng: np.random.Generator, n: int, k: int, sparsity: float) -> np.ndarray:
    """Return a random int8 N x K matrix with exactly ``round((1 - sparsity) * n * k)`` nonzeros.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded generator (e.g. ``np.random.default_rng(0)``); the result depends only on it.
    n, k : int
        Shape, both >= 1.
    sparsity : float
        Fraction of zeros, 0 <= sparsity <= 1.

    Returns
    -------
    numpy.ndarray
        int8 N x K. The nonzeros sit at uniformly random distinct positions and are drawn
        uniformly from the 255 nonzero int8 values (-128 and 127 included).

    Raises
    ------
    TypeError
        `rng` is not a Generator, or a dimension is not an int.
    ValueError
        A dimension is < 1 or `sparsity` is outside [0, 1].
    """
    rng = _require_generator(rng)
    n, k = _require_dims(n, k)
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], not {sparsity!r}")
    nnz = round((1.0 - sparsity) * n * k)
    w = np.zeros(n * k, dtype=np.int8)
    w[rng.choice(n * k, size=nnz, replace=False)] = _nonzero_int8(rng, nnz)
    return w.reshape(n, k)


def random_24(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Return a random int8 N x K matrix with exactly two nonzeros in every group of four columns.

    The last group of a ragged K (K not a multiple of 4) holds min(2, its width) nonzeros.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded generator; the result depends only on it.
    n, k : int
        Shape, both >= 1.

    Returns
    -------
    numpy.ndarray
        int8 N x K, accepted by `compress_24`. Positions are uniformly random within each group;
        values are drawn uniformly from the 255 nonzero int8 values.

    Raises
    ------
    TypeError
        `rng` is not a Generator, or a dimension is not an int.
    ValueError
        A dimension is < 1.
    """
    rng = _require_generator(rng)
    n, k = _require_dims(n, k)
    kp = padded_k(k)
    keys = rng.random((n, kp))
    keys[:, k:] = 2.0  # padding positions are chosen last (and then zeroed)
    kept = np.argsort(keys.reshape(n, kp // 4, 4), axis=2)[..., :2]
    groups = np.zeros((n, kp // 4, 4), dtype=np.int8)
    np.put_along_axis(groups, kept, _nonzero_int8(rng, kept.shape), axis=2)
    return groups.reshape(n, kp)[:, :k].copy()
