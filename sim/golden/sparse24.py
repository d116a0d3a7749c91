"""2:4 structured sparse weights (at most two nonzeros in every four columns) and their product.

`Sparse24Matrix` keeps exactly two entries per group of four columns, as int8 ``values``
[N, Kp/2] and their 2-bit positions ``indices`` (Kp = `padded_k` (K), the padding columns
zero): ``Kp/2 + ceil(Kp/8)`` bytes per row. `compress_24` refuses a matrix that breaks the
pattern, naming the first offending row and group. `spmm_24` is *decompress, then the dense
golden GEMM*, so bit-exact with `sim.golden.gemm.gemm`; it wraps like it from Kp >= 2**18 on.
The spec of both sparse formats is `sim.golden.sparse`; docs/sparse-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.golden.checks import frozen_copy, require_array, require_shape, require_x
from sim.golden.gemm import gemm


def padded_k(k: int) -> int:
    """Return K rounded up to a multiple of 4: the padded width Kp of the 2:4 format.

    Parameters
    ----------
    k : int
        The number of columns of W (K >= 1).

    Returns
    -------
    int
        ``4 * ceil(k / 4)``.
    """
    return -(-k // 4) * 4


@dataclass(frozen=True, eq=False)
class Sparse24Matrix:
    """An int8 matrix W (N x K) in 2:4 structured sparse form: two kept values per group of four.

    Columns are split into G = Kp / 4 groups of four (Kp = K rounded up to a multiple of 4; the
    padding columns K..Kp-1 are zero). Group ``g`` of row ``r`` keeps the two values
    ``values[r, 2g]`` and ``values[r, 2g + 1]``, which sit at columns ``4g + indices[r, 2g]`` and
    ``4g + indices[r, 2g + 1]``; the other two entries of the group are zero. Kept values may be
    zero (a group with fewer than two nonzeros; `compress_24` then keeps zeros at the lowest
    unused positions).

    Parameters
    ----------
    values : numpy.ndarray
        int8 [N, Kp/2], the kept values.
    indices : numpy.ndarray
        uint8 [N, Kp/2], each 0..3, strictly increasing within a group:
        ``indices[r, 2g] < indices[r, 2g + 1]``.
    shape : tuple of int
        (N, K) with N >= 1 and K >= 1.

    Raises
    ------
    TypeError
        A field has the wrong type or dtype (nothing is coerced).
    ValueError
        A field has the wrong shape, an index is not 0..3, a group's indices are not strictly
        increasing, or a nonzero value sits in a padding column (>= K); the message names the
        first offending position and value.

    Notes
    -----
    Storage (`nbytes`) is ``Kp/2`` value bytes plus ``ceil(Kp/8)`` index bytes per row: each
    index is 2 bits, packed four to a byte (`packed_indices`). That is 1.25 bytes per kept value
    and ``5 * Kp / 8`` bytes per row when Kp is a multiple of 8. The arrays are copied and made
    read-only.
    """

    values: np.ndarray
    indices: np.ndarray
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        n, k = require_shape(self.shape)
        half = padded_k(k) // 2
        values = require_array("values", self.values, np.int8, 2)
        indices = require_array("indices", self.indices, np.uint8, 2)
        for name, array in (("values", values), ("indices", indices)):
            if array.shape != (n, half):
                raise ValueError(
                    f"{name} must have shape (N, Kp/2) = {(n, half)} for shape {(n, k)}, "
                    f"not {array.shape}"
                )
        if (indices > 3).any():
            r, j = (int(i) for i in np.argwhere(indices > 3)[0])
            raise ValueError(
                f"indices[{r}, {j}] = {int(indices[r, j])} is not a position in a group of "
                "four (0..3)"
            )
        unordered = indices[:, 0::2] >= indices[:, 1::2]
        if unordered.any():
            r, g = (int(i) for i in np.argwhere(unordered)[0])
            raise ValueError(
                f"row {r}, group {g}: indices ({int(indices[r, 2 * g])}, "
                f"{int(indices[r, 2 * g + 1])}) must be strictly increasing"
            )
        columns = _kept_columns(indices)
        in_padding = (columns >= k) & (values != 0)
        if in_padding.any():
            r, j = (int(i) for i in np.argwhere(in_padding)[0])
            raise ValueError(
                f"values[{r}, {j}] = {int(values[r, j])} sits at column {int(columns[r, j])}, "
                f"in the padding beyond K = {k}; padding columns must hold zeros"
            )
        object.__setattr__(self, "shape", (n, k))
        object.__setattr__(self, "values", frozen_copy(values))
        object.__setattr__(self, "indices", frozen_copy(indices))

    @property
    def padded_k(self) -> int:
        """Kp: K rounded up to a multiple of 4."""
        return padded_k(self.shape[1])

    @property
    def nnz(self) -> int:
        """Number of nonzero kept values (kept zeros do not count)."""
        return int(np.count_nonzero(self.values))

    @property
    def packed_indices(self) -> np.ndarray:
        """The 2-bit indices as stored: uint8 [N, ceil(Kp/8)], four per byte, per row.

        Kept value ``j`` of a row lands in byte ``j // 4`` at bits ``2 * (j % 4)`` and up (least
        significant first); each row starts on a new byte and unused high bits of its last byte
        are zero.
        """
        n, half = self.indices.shape
        nbytes_row = -(-half // 4)
        padded = np.zeros((n, nbytes_row * 4), dtype=np.uint8)
        padded[:, :half] = self.indices
        quads = padded.reshape(n, nbytes_row, 4)
        return (
            quads[..., 0] | quads[..., 1] << 2 | quads[..., 2] << 4 | quads[..., 3] << 6
        ).astype(np.uint8)

    @property
    def nbytes(self) -> int:
        """Storage in bytes: ``N * (Kp/2 + ceil(Kp/8))`` (values plus packed 2-bit indices)."""
        return int(self.values.nbytes + self.packed_indices.nbytes)

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (shape and exact array contents)."""
        if not isinstance(other, Sparse24Matrix):
            return NotImplemented
        return (
            self.shape == other.shape
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.indices, other.indices)
        )

    __hash__ = None  # type: ignore[assignment]


def _kept_columns(indices: np.ndarray) -> np.ndarray:
    """Column of every kept value: 4 * group + index, as int64 [N, Kp/2]."""
    groups = np.arange(indices.shape[1], dtype=np.int64) // 2
    return 4 * groups + indices.astype(np.int64)


def _groups_of_four(w: np.ndarray) -> np.ndarray:
    """W zero-padded to Kp columns and viewed as [N, G, 4] groups."""
    n, k = w.shape
    kp = padded_k(k)
    padded = np.zeros((n, kp), dtype=np.int8)
    padded[:, :k] = w
    return padded.reshape(n, kp // 4, 4)


def is_24_sparse(w: np.ndarray) -> bool:
    """Return whether every group of four columns of W (zero-padded) holds at most two nonzeros.

    Parameters
    ----------
    w : numpy.ndarray
        int8 N x K.

    Returns
    -------
    bool
        True exactly when `compress_24` accepts `w`.

    Raises
    ------
    TypeError, ValueError
        `w` is not a non-empty 2-D int8 ndarray.
    """
    w = require_array("w", w, np.int8, 2)
    return bool((np.count_nonzero(_groups_of_four(w), axis=2) <= 2).all())


def compress_24(w: np.ndarray) -> Sparse24Matrix:
    """Compress a 2:4-sparse int8 matrix W (N x K) into a `Sparse24Matrix`, or refuse it.

    Each group of four columns keeps its nonzeros, topped up to two with zeros at the lowest
    unused positions, in increasing position order. K need not be a multiple of 4: W is padded
    with zero columns to Kp.

    Parameters
    ----------
    w : numpy.ndarray
        int8 N x K with at most two nonzeros in every group of four columns.

    Returns
    -------
    Sparse24Matrix

    Raises
    ------
    TypeError
        `w` is not an int8 ndarray.
    ValueError
        `w` is not 2-D or is empty; or a group holds more than two nonzeros. The message names
        the first such group in row-major order, e.g. ``"row 3, group 5 (columns 20..23) holds
        3 nonzeros; 2:4 sparsity allows at most 2"`` (the last group of a ragged K names only
        the real columns). Nothing is ever dropped.
    """
    w = require_array("w", w, np.int8, 2)
    n, k = w.shape
    groups = _groups_of_four(w)
    nonzero = groups != 0
    counts = np.count_nonzero(nonzero, axis=2)
    if (counts > 2).any():
        r, g = (int(i) for i in np.argwhere(counts > 2)[0])
        last = min(4 * g + 3, k - 1)
        raise ValueError(
            f"row {r}, group {g} (columns {4 * g}..{last}) holds {int(counts[r, g])} nonzeros; "
            "2:4 sparsity allows at most 2"
        )
    # Nonzeros rank first (by position), then zeros (by position); keep the first two, in order.
    rank = np.where(nonzero, 0, 4) + np.arange(4, dtype=np.int64)
    kept = np.sort(np.argsort(rank, axis=2, kind="stable")[..., :2], axis=2)
    values = np.take_along_axis(groups, kept, axis=2)
    return Sparse24Matrix(
        values=values.reshape(n, -1),
        indices=kept.astype(np.uint8).reshape(n, -1),
        shape=(n, k),
    )


def decompress_24(m: Sparse24Matrix) -> np.ndarray:
    """Expand a `Sparse24Matrix` back into the dense int8 matrix W (N x K) it represents.

    Parameters
    ----------
    m : Sparse24Matrix

    Returns
    -------
    numpy.ndarray
        int8 N x K (the padding columns are dropped).

    Raises
    ------
    TypeError
        `m` is not a `Sparse24Matrix`.
    """
    if not isinstance(m, Sparse24Matrix):
        raise TypeError(f"m must be a Sparse24Matrix, not {type(m)!r}")
    n, k = m.shape
    kp = m.padded_k
    groups = np.zeros((n, kp // 4, 4), dtype=np.int8)
    np.put_along_axis(
        groups,
        m.indices.reshape(n, -1, 2).astype(np.intp),
        m.values.reshape(n, -1, 2),
        axis=2,
    )
    return groups.reshape(n, kp)[:, :k].copy()


def spmm_24(m: Sparse24Matrix, x: np.ndarray) -> np.ndarray:
    """Golden 2:4 sparse product Y = W @ X with dense int8 activations.

    Defined as ``gemm(decompress_24(m), x)``: int32 with two's-complement wrap, bit-exact with
    the dense array by construction. A wrap needs Kp/2 * 2**14 >= 2**31, i.e. Kp >= 2**18.

    Parameters
    ----------
    m : Sparse24Matrix
        W, N x K.
    x : numpy.ndarray
        int8 K x M (the unpadded K).

    Returns
    -------
    numpy.ndarray
        int32 N x M.

    Raises
    ------
    TypeError
        `m` is not a `Sparse24Matrix` or `x` is not an int8 ndarray.
    ValueError
        `x` is not 2-D, is empty, or does not have K rows.
    """
    w = decompress_24(m)
    x = require_x(x, m.shape[1])
    return gemm(w, x)
