"""Golden sparse int8 weight formats and sparse GEMM: the spec the sparse engine is checked against.

A sparse int8 weight matrix W (N x K) multiplies dense int8 activations X (K x M) into int32
outputs Y = W @ X (N x M), with the same two's-complement wrap as the dense array
(`sim.golden.gemm.gemm`). Two compressed formats are defined here, each with a compressor, a
decompressor and a golden product:

`CsrMatrix` (`csr_compress`, `csr_decompress`, `csr_spmm`)
    The sparse engine's format: compressed sparse rows. Only the nonzeros are stored, as int8
    ``values`` with uint16 column indices ``col_idx`` (so K <= 65536), row by row in increasing
    column order, and an int32 ``row_ptr`` of N + 1 offsets. Storage is exactly 3 bytes per
    nonzero (1 value byte + 2 index bytes) plus 4 bytes per row pointer:
    ``3 * nnz + 4 * (N + 1)`` bytes.

`Sparse24Matrix` (`compress_24`, `decompress_24`, `spmm_24`)
    2:4 structured sparsity, the dense array's sparse mode: in every group of four consecutive
    columns at most two entries are nonzero, and exactly two entries per group are kept, as int8
    ``values`` [N, Kp/2] with the 2-bit position of each inside its group, ``indices`` [N, Kp/2]
    (held here one per uint8; `Sparse24Matrix.packed_indices` packs them four to a byte). Kp is
    K rounded up to a multiple of 4; the padding columns are zero. Storage is
    ``Kp/2 + ceil(Kp/8)`` bytes per row: 1.25 bytes per kept value (2.5 per group of four),
    which is 1.25 bytes per nonzero when every group holds two nonzeros and 5/8 of the dense
    int8 size when Kp is a multiple of 8. A matrix that breaks the pattern is refused, naming
    the first offending row and group; nothing is ever dropped silently
    (``torch.sparse.to_sparse_semi_structured`` drops; this compressor refuses).

The golden product of both formats is defined as *decompress, then the dense golden GEMM*, so it
is bit-exact with `gemm` by construction, whatever order the hardware adds the products in.
A CSR product can never wrap (K <= 65536 bounds every sum by 65536 * 2**14 = 2**30); a 2:4
product can from Kp >= 2**18 on, and wraps exactly like `gemm`.

Both dataclasses validate every field on construction, copy the arrays and make the copies
read-only, so a malformed or later-mutated matrix cannot yield a silently wrong number.
`random_sparse` and `random_24` make seeded random test and benchmark inputs.

See ``docs/sparse-formats.md`` for layouts with a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.golden.checks import require_array
from sim.golden.gemm import gemm

__all__ = [
    "CSR_BYTES_PER_NONZERO",
    "CSR_BYTES_PER_ROW_POINTER",
    "CSR_MAX_K",
    "CsrMatrix",
    "Sparse24Matrix",
    "compress_24",
    "csr_compress",
    "csr_decompress",
    "csr_spmm",
    "decompress_24",
    "is_24_sparse",
    "padded_k",
    "random_24",
    "random_sparse",
    "spmm_24",
]

#: Largest K the CSR format can index: column indices are uint16 (0..65535).
CSR_MAX_K = 2**16

#: CSR storage: bytes per stored nonzero (1 int8 value + 2 uint16 column index bytes).
CSR_BYTES_PER_NONZERO = 3
#: CSR storage: bytes per row pointer (int32); there are N + 1 of them.
CSR_BYTES_PER_ROW_POINTER = 4


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


# --------------------------------------------------------------------------------------------------
# Validation helpers


def _require_shape(shape: object) -> tuple[int, int]:
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


def _require_vector(name: str, value: object, dtype: type) -> np.ndarray:
    """Like `require_array` for one dimension, but an empty vector is allowed (nnz may be 0)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {np.dtype(dtype)}, not {type(value)!r}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, not {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must have 1 dimension, not shape {value.shape}")
    return value


def _frozen_copy(value: np.ndarray) -> np.ndarray:
    """Return a C-contiguous read-only copy, so a validated matrix cannot be mutated later."""
    copy = np.array(value, copy=True, order="C")
    copy.setflags(write=False)
    return copy


def _require_csr_k(k: int) -> None:
    if k > CSR_MAX_K:
        raise ValueError(
            f"K = {k} exceeds the CSR column index range K <= {CSR_MAX_K} (uint16 col_idx); "
            "split K into chunks of at most 65536 columns"
        )


def _require_x(x: object, k: int) -> np.ndarray:
    """Check the dense activations X (int8 K x M) against the K of the weight matrix."""
    x = require_array("x", x, np.int8, 2)
    if x.shape[0] != k:
        raise ValueError(f"x must have K = {k} rows (one per column of W), not shape {x.shape}")
    return x


# --------------------------------------------------------------------------------------------------
# CSR: the sparse engine's format


@dataclass(frozen=True, eq=False)
class CsrMatrix:
    """A sparse int8 matrix W (N x K) in compressed sparse rows: the sparse engine's format.

    The nonzeros of row ``r`` are ``values[row_ptr[r]:row_ptr[r + 1]]`` at columns
    ``col_idx[row_ptr[r]:row_ptr[r + 1]]``, in strictly increasing column order. Only nonzeros
    are stored (an explicit zero is refused), so the representation of a W is unique and
    ``csr_compress(csr_decompress(m)) == m``.

    Parameters
    ----------
    values : numpy.ndarray
        int8 [nnz], the nonzero values, row by row. May be empty (an all-zero W).
    col_idx : numpy.ndarray
        uint16 [nnz], the column of each value, < K.
    row_ptr : numpy.ndarray
        int32 [N + 1], nondecreasing, ``row_ptr[0] == 0`` and ``row_ptr[N] == nnz``.
    shape : tuple of int
        (N, K) with N >= 1 and 1 <= K <= 65536 (`CSR_MAX_K`).

    Raises
    ------
    TypeError
        A field has the wrong type or dtype (nothing is coerced).
    ValueError
        A field has the wrong shape or breaks an invariant above; the message names the first
        offending position and value.

    Notes
    -----
    Storage (`nbytes`) is exactly ``3 * nnz + 4 * (N + 1)`` bytes: 1 value byte and 2 column
    index bytes per nonzero, 4 bytes per row pointer. The arrays are copied and made read-only.
    """

    values: np.ndarray
    col_idx: np.ndarray
    row_ptr: np.ndarray
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        n, k = _require_shape(self.shape)
        _require_csr_k(k)
        values = _require_vector("values", self.values, np.int8)
        col_idx = _require_vector("col_idx", self.col_idx, np.uint16)
        row_ptr = _require_vector("row_ptr", self.row_ptr, np.int32)
        nnz = values.shape[0]
        if col_idx.shape[0] != nnz:
            raise ValueError(
                f"col_idx must have one entry per value ({nnz}), not {col_idx.shape[0]}"
            )
        if row_ptr.shape[0] != n + 1:
            raise ValueError(f"row_ptr must have N + 1 = {n + 1} entries, not {row_ptr.shape[0]}")
        if row_ptr[0] != 0:
            raise ValueError(f"row_ptr[0] must be 0, not {int(row_ptr[0])}")
        steps = np.diff(row_ptr.astype(np.int64))
        if (steps < 0).any():
            r = int(np.argmax(steps < 0))
            raise ValueError(
                f"row_ptr must be nondecreasing; row_ptr[{r + 1}] = {int(row_ptr[r + 1])} "
                f"< row_ptr[{r}] = {int(row_ptr[r])}"
            )
        if row_ptr[n] != nnz:
            raise ValueError(f"row_ptr[{n}] must equal nnz = {nnz}, not {int(row_ptr[n])}")
        if (col_idx >= k).any():
            i = int(np.argmax(col_idx >= k))
            raise ValueError(f"col_idx[{i}] = {int(col_idx[i])} is out of range for K = {k}")
        if nnz > 1:
            starts = np.zeros(nnz, dtype=bool)
            starts[row_ptr[:-1][row_ptr[:-1] < nnz]] = True
            bad = ~starts[1:] & (col_idx[1:] <= col_idx[:-1])
            if bad.any():
                i = int(np.argmax(bad)) + 1
                r = int(np.searchsorted(row_ptr, i, side="right")) - 1
                raise ValueError(
                    f"col_idx must be strictly increasing within a row; row {r} has "
                    f"col_idx[{i}] = {int(col_idx[i])} after col_idx[{i - 1}] = "
                    f"{int(col_idx[i - 1])}"
                )
        if (values == 0).any():
            i = int(np.argmax(values == 0))
            raise ValueError(f"values[{i}] is an explicit zero; CSR stores nonzeros only")
        object.__setattr__(self, "shape", (n, k))
        object.__setattr__(self, "values", _frozen_copy(values))
        object.__setattr__(self, "col_idx", _frozen_copy(col_idx))
        object.__setattr__(self, "row_ptr", _frozen_copy(row_ptr))

    @property
    def nnz(self) -> int:
        """Number of stored nonzeros."""
        return int(self.values.shape[0])

    @property
    def nbytes(self) -> int:
        """Storage in bytes: ``3 * nnz + 4 * (N + 1)`` (value + uint16 index, int32 row_ptr)."""
        return CSR_BYTES_PER_NONZERO * self.nnz + CSR_BYTES_PER_ROW_POINTER * (self.shape[0] + 1)

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (shape and exact array contents)."""
        if not isinstance(other, CsrMatrix):
            return NotImplemented
        return (
            self.shape == other.shape
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.col_idx, other.col_idx)
            and np.array_equal(self.row_ptr, other.row_ptr)
        )

    __hash__ = None  # type: ignore[assignment]


def csr_compress(w: np.ndarray) -> CsrMatrix:
    """Compress a dense int8 matrix W (N x K) into a `CsrMatrix`.

    Parameters
    ----------
    w : numpy.ndarray
        int8 N x K, 1 <= K <= 65536. Any sparsity, including none and all-zero.

    Returns
    -------
    CsrMatrix
        Its nonzeros in row-major order.

    Raises
    ------
    TypeError
        `w` is not an int8 ndarray.
    ValueError
        `w` is not 2-D, is empty, or K > 65536 (the message names K).
    """
    w = require_array("w", w, np.int8, 2)
    n, k = w.shape
    _require_csr_k(k)
    rows, cols = np.nonzero(w)  # row-major order: rows ascending, columns ascending within a row
    row_ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=row_ptr[1:])
    return CsrMatrix(
        values=w[rows, cols],
        col_idx=cols.astype(np.uint16),
        row_ptr=row_ptr,
        shape=(n, k),
    )


def csr_decompress(csr: CsrMatrix) -> np.ndarray:
    """Expand a `CsrMatrix` back into the dense int8 matrix W (N x K) it represents.

    Parameters
    ----------
    csr : CsrMatrix

    Returns
    -------
    numpy.ndarray
        int8 N x K, zero wherever no value is stored.

    Raises
    ------
    TypeError
        `csr` is not a `CsrMatrix`.
    """
    if not isinstance(csr, CsrMatrix):
        raise TypeError(f"csr must be a CsrMatrix, not {type(csr)!r}")
    n, k = csr.shape
    w = np.zeros((n, k), dtype=np.int8)
    rows = np.repeat(np.arange(n), np.diff(csr.row_ptr))
    w[rows, csr.col_idx] = csr.values
    return w


def csr_spmm(csr: CsrMatrix, x: np.ndarray) -> np.ndarray:
    """Golden sparse product Y = W @ X of a CSR weight matrix and dense int8 activations.

    Defined as ``gemm(csr_decompress(csr), x)``: int32 with two's-complement wrap, bit-exact
    with the dense array by construction. With K <= 65536 no sum can leave the int32 range
    (|Y| <= 65536 * 2**14 = 2**30), so in this format the wrap never happens.

    Parameters
    ----------
    csr : CsrMatrix
        W, N x K.
    x : numpy.ndarray
        int8 K x M.

    Returns
    -------
    numpy.ndarray
        int32 N x M.

    Raises
    ------
    TypeError
        `csr` is not a `CsrMatrix` or `x` is not an int8 ndarray.
    ValueError
        `x` is not 2-D, is empty, or does not have K rows.
    """
    w = csr_decompress(csr)
    x = _require_x(x, csr.shape[1])
    return gemm(w, x)


# --------------------------------------------------------------------------------------------------
# 2:4 structured sparsity


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
        n, k = _require_shape(self.shape)
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
        object.__setattr__(self, "values", _frozen_copy(values))
        object.__setattr__(self, "indices", _frozen_copy(indices))

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
    x = _require_x(x, m.shape[1])
    return gemm(w, x)


# --------------------------------------------------------------------------------------------------
# Seeded random inputs for tests and benchmarks


def _require_generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng)!r}")
    return rng


def _require_dims(n: object, k: object) -> tuple[int, int]:
    return _require_shape((n, k))


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
