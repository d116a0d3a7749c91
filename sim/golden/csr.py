"""The sparse engine's weight format, compressed sparse rows (CSR), and its golden product.

Only the nonzeros of W (N x K int8) are stored, as int8 ``values`` with uint16 column indices
``col_idx`` (so K <= 65536), row by row in increasing column order, and an int32 ``row_ptr`` of
N + 1 offsets: ``3 * nnz + 4 * (N + 1)`` bytes. `csr_spmm` is *decompress, then the dense
golden GEMM*, so bit-exact with `sim.golden.gemm.gemm` by construction; it can never wrap
(K <= 65536 bounds every sum by 65536 * 2**14 = 2**30). The spec of both sparse formats is
`sim.golden.sparse`; docs/sparse-formats.md has a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.golden.checks import frozen_copy, require_array, require_shape, require_vector, require_x
from sim.golden.gemm import gemm

#: Largest K the CSR format can index: column indices are uint16 (0..65535).
CSR_MAX_K = 2**16

#: CSR storage: bytes per stored nonzero (1 int8 value + 2 uint16 column index bytes).
CSR_BYTES_PER_NONZERO = 3
#: CSR storage: bytes per row pointer (int32); there are N + 1 of them.
CSR_BYTES_PER_ROW_POINTER = 4


def _require_csr_k(k: int) -> None:
    if k > CSR_MAX_K:
        raise ValueError(
            f"K = {k} exceeds the CSR column index range K <= {CSR_MAX_K} (uint16 col_idx); "
            "split K into chunks of at most 65536 columns"
        )


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
        n, k = require_shape(self.shape)
        _require_csr_k(k)
        values = require_vector("values", self.values, np.int8)
        col_idx = require_vector("col_idx", self.col_idx, np.uint16)
        row_ptr = require_vector("row_ptr", self.row_ptr, np.int32)
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
        object.__setattr__(self, "values", frozen_copy(values))
        object.__setattr__(self, "col_idx", frozen_copy(col_idx))
        object.__setattr__(self, "row_ptr", frozen_copy(row_ptr))

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
    x = require_x(x, csr.shape[1])
    return gemm(w, x)
