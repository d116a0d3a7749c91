"""Tests of the golden sparse formats (sim/golden/sparse.py): round trips, products, refusals.

Every product is checked three ways: against `gemm(decompress(...), x)` (the definition), against
an int64 numpy matmul wrapped to int32 here (independent of `gemm`), and against a loop over the
compressed fields themselves (independent of the decompressors). All inputs are seeded.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sim.golden.gemm import gemm
from sim.golden.sparse import (
    CSR_MAX_K,
    CsrMatrix,
    Sparse24Matrix,
    compress_24,
    csr_compress,
    csr_decompress,
    csr_spmm,
    decompress_24,
    is_24_sparse,
    padded_k,
    random_24,
    random_sparse,
    spmm_24,
)

SPARSITIES = [0.0, 0.5, 0.75, 0.9, 0.99]
RAGGED_K = [1, 2, 3, 4, 5, 7, 8, 17, 64, 1023]
SEEDED = settings(derandomize=True, database=None, deadline=None, max_examples=150)


# --------------------------------------------------------------------------------------------------
# Independent references


def wrap32(exact: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 into int32, written here independently of sim.golden.gemm."""
    return ((exact.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def reference(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact int64 numpy integer matmul (no BLAS, no floats), then wrapped."""
    return wrap32(w.astype(np.int64) @ x.astype(np.int64))


def csr_loop_product(csr: CsrMatrix, x: np.ndarray) -> np.ndarray:
    """Y = W @ X straight from the CSR fields, without csr_decompress."""
    n, _ = csr.shape
    y = np.zeros((n, x.shape[1]), dtype=np.int64)
    for r in range(n):
        for p in range(int(csr.row_ptr[r]), int(csr.row_ptr[r + 1])):
            y[r] += int(csr.values[p]) * x[int(csr.col_idx[p])].astype(np.int64)
    return wrap32(y)


def sparse24_loop_product(m: Sparse24Matrix, x: np.ndarray) -> np.ndarray:
    """Y = W @ X straight from the 2:4 fields, without decompress_24."""
    n, k = m.shape
    y = np.zeros((n, x.shape[1]), dtype=np.int64)
    for r in range(n):
        for j in range(m.values.shape[1]):
            column = 4 * (j // 2) + int(m.indices[r, j])
            if column < k:
                y[r] += int(m.values[r, j]) * x[column].astype(np.int64)
    return wrap32(y)


def random_int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 127, size=shape, endpoint=True, dtype=np.int16).astype(np.int8)


def edge_matrix(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Random matrix of only -128, 127 and 0."""
    return rng.choice(np.array([-128, 127, 0], dtype=np.int8), size=(n, k))


def assert_csr_roundtrip(w: np.ndarray) -> CsrMatrix:
    csr = csr_compress(w)
    back = csr_decompress(csr)
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, w)
    assert csr.nnz == np.count_nonzero(w)
    assert csr.nbytes == 3 * csr.nnz + 4 * (w.shape[0] + 1)
    assert csr_compress(back) == csr
    return csr


def assert_24_roundtrip(w: np.ndarray) -> Sparse24Matrix:
    m = compress_24(w)
    back = decompress_24(m)
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, w)
    kp = padded_k(w.shape[1])
    assert m.values.shape == m.indices.shape == (w.shape[0], kp // 2)
    assert m.nnz == np.count_nonzero(w)
    assert m.nbytes == w.shape[0] * (kp // 2 + -(-kp // 8))
    assert compress_24(back) == m
    return m


def assert_products(w: np.ndarray, x: np.ndarray) -> None:
    expected = reference(w, x)
    csr = csr_compress(w)
    y = csr_spmm(csr, x)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, gemm(csr_decompress(csr), x))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y, csr_loop_product(csr, x))
    if is_24_sparse(w):
        m = compress_24(w)
        y24 = spmm_24(m, x)
        assert y24.dtype == np.int32
        np.testing.assert_array_equal(y24, gemm(decompress_24(m), x))
        np.testing.assert_array_equal(y24, expected)
        np.testing.assert_array_equal(y24, sparse24_loop_product(m, x))


# --------------------------------------------------------------------------------------------------
# Random generators


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("k", RAGGED_K)
def test_random_sparse_has_exact_nonzero_count(sparsity: float, k: int) -> None:
    rng = np.random.default_rng(1000 + k)
    w = random_sparse(rng, 9, k, sparsity)
    assert w.dtype == np.int8 and w.shape == (9, k)
    assert np.count_nonzero(w) == round((1 - sparsity) * 9 * k)


def test_random_sparse_is_seeded_and_spans_int8() -> None:
    a = random_sparse(np.random.default_rng(7), 64, 64, 0.0)
    b = random_sparse(np.random.default_rng(7), 64, 64, 0.0)
    np.testing.assert_array_equal(a, b)
    assert np.count_nonzero(a) == a.size
    assert a.min() == -128 and a.max() == 127
    assert np.count_nonzero(random_sparse(np.random.default_rng(7), 5, 5, 1.0)) == 0


@pytest.mark.parametrize("k", RAGGED_K)
def test_random_24_fills_every_group(k: int) -> None:
    rng = np.random.default_rng(2000 + k)
    w = random_24(rng, 11, k)
    assert w.dtype == np.int8 and w.shape == (11, k)
    kp = padded_k(k)
    groups = np.zeros((11, kp), dtype=np.int8)
    groups[:, :k] = w
    counts = np.count_nonzero(groups.reshape(11, kp // 4, 4), axis=2)
    full_width = [min(4, k - 4 * g) for g in range(kp // 4)]
    np.testing.assert_array_equal(counts, np.minimum(2, full_width)[None, :].repeat(11, axis=0))
    np.testing.assert_array_equal(w, random_24(np.random.default_rng(2000 + k), 11, k))


def test_random_24_spans_int8() -> None:
    w = random_24(np.random.default_rng(3), 64, 64)
    assert w.min() == -128 and w.max() == 127


# --------------------------------------------------------------------------------------------------
# CSR round trips


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("k", RAGGED_K)
def test_csr_roundtrip_random(sparsity: float, k: int) -> None:
    rng = np.random.default_rng(int(sparsity * 100) * 10_000 + k)
    assert_csr_roundtrip(random_sparse(rng, 13, k, sparsity))


def test_csr_roundtrip_edge_values() -> None:
    w = edge_matrix(np.random.default_rng(4), 17, 33)
    csr = assert_csr_roundtrip(w)
    assert set(np.unique(csr.values).tolist()) == {-128, 127}


def test_csr_empty_and_dense_rows() -> None:
    rng = np.random.default_rng(5)
    w = np.zeros((6, 9), dtype=np.int8)
    w[1] = random_sparse(rng, 1, 9, 0.0)[0]  # dense row
    w[4] = random_sparse(rng, 1, 9, 0.0)[0]  # dense row
    w[3, 8] = -128  # last column only
    csr = assert_csr_roundtrip(w)
    np.testing.assert_array_equal(csr.row_ptr, [0, 0, 9, 9, 10, 19, 19])
    np.testing.assert_array_equal(csr.col_idx[9], 8)


def test_csr_single_nonzero() -> None:
    w = np.zeros((4, 5), dtype=np.int8)
    w[2, 3] = 127
    csr = assert_csr_roundtrip(w)
    np.testing.assert_array_equal(csr.values, [127])
    np.testing.assert_array_equal(csr.col_idx, [3])
    np.testing.assert_array_equal(csr.row_ptr, [0, 0, 0, 1, 1])
    assert csr.nbytes == 3 + 4 * 5


def test_csr_all_zero() -> None:
    w = np.zeros((3, 4), dtype=np.int8)
    csr = assert_csr_roundtrip(w)
    assert csr.nnz == 0 and csr.values.shape == (0,) and csr.col_idx.shape == (0,)
    np.testing.assert_array_equal(csr.row_ptr, [0, 0, 0, 0])
    assert csr.nbytes == 16
    x = random_int8(np.random.default_rng(6), (4, 2))
    np.testing.assert_array_equal(csr_spmm(csr, x), np.zeros((3, 2), dtype=np.int32))


def test_csr_field_dtypes_and_layout() -> None:
    w = np.array([[0, 5, 0, -3], [0, 0, 0, 0], [7, 0, 0, 0]], dtype=np.int8)
    csr = csr_compress(w)
    assert csr.values.dtype == np.int8
    assert csr.col_idx.dtype == np.uint16
    assert csr.row_ptr.dtype == np.int32
    assert csr.shape == (3, 4)
    np.testing.assert_array_equal(csr.values, [5, -3, 7])
    np.testing.assert_array_equal(csr.col_idx, [1, 3, 0])
    np.testing.assert_array_equal(csr.row_ptr, [0, 2, 2, 3])
    assert csr.nbytes == 3 * 3 + 4 * 4


def test_csr_max_k() -> None:
    w = np.zeros((2, CSR_MAX_K), dtype=np.int8)
    w[0, -1] = 1
    w[1, 0] = -1
    csr = assert_csr_roundtrip(w)
    np.testing.assert_array_equal(csr.col_idx, [65535, 0])


@given(
    arrays(
        np.int8,
        st.tuples(st.integers(1, 6), st.integers(1, 19)),
        elements=st.one_of(st.just(0), st.integers(-128, 127)),
    )
)
@SEEDED
def test_csr_roundtrip_property(w: np.ndarray) -> None:
    assert_csr_roundtrip(w)


# --------------------------------------------------------------------------------------------------
# 2:4 round trips


@pytest.mark.parametrize("k", RAGGED_K)
def test_24_roundtrip_random(k: int) -> None:
    assert_24_roundtrip(random_24(np.random.default_rng(3000 + k), 13, k))


@pytest.mark.parametrize("sparsity", [0.75, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("k", RAGGED_K)
def test_24_roundtrip_sparser_than_pattern(sparsity: float, k: int) -> None:
    """Random matrices that happen to satisfy 2:4 (fewer than two nonzeros in many groups)."""
    rng = np.random.default_rng(4000 + k)
    w = random_sparse(rng, 13, k, sparsity)
    w = decompress_24_masked(w)
    assert_24_roundtrip(w)


def decompress_24_masked(w: np.ndarray) -> np.ndarray:
    """Zero all but the first two nonzeros of each group, so `w` satisfies 2:4."""
    w = w.copy()
    n, k = w.shape
    for r in range(n):
        for g in range(0, k, 4):
            nz = np.flatnonzero(w[r, g : g + 4])
            w[r, g + nz[2:]] = 0
    return w


def test_24_edge_values() -> None:
    w = decompress_24_masked(edge_matrix(np.random.default_rng(8), 9, 31))
    m = assert_24_roundtrip(w)
    assert set(np.unique(m.values).tolist()) <= {-128, 0, 127}
    assert {-128, 127} <= set(np.unique(m.values).tolist())


def test_24_all_zero_single_nonzero_and_full_rows() -> None:
    zero = np.zeros((2, 6), dtype=np.int8)
    m = assert_24_roundtrip(zero)
    np.testing.assert_array_equal(m.indices, [[0, 1, 0, 1]] * 2)
    np.testing.assert_array_equal(m.values, np.zeros((2, 4), dtype=np.int8))
    assert m.nnz == 0

    single = zero.copy()
    single[1, 5] = -128
    m = assert_24_roundtrip(single)
    np.testing.assert_array_equal(m.indices, [[0, 1, 0, 1], [0, 1, 0, 1]])
    np.testing.assert_array_equal(m.values, [[0, 0, 0, 0], [0, 0, 0, -128]])

    full = np.array([[1, 0, 2, 0, 0, 3, 0, 4], [0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int8)
    m = assert_24_roundtrip(full)
    np.testing.assert_array_equal(m.values, [[1, 2, 3, 4], [0, 0, 0, 0]])
    np.testing.assert_array_equal(m.indices, [[0, 2, 1, 3], [0, 1, 0, 1]])


@pytest.mark.parametrize(
    ("group", "values", "indices"),
    [
        ([0, 0, 0, 0], [0, 0], [0, 1]),
        ([5, 0, 0, 0], [5, 0], [0, 1]),
        ([0, 5, 0, 0], [0, 5], [0, 1]),
        ([0, 0, 5, 0], [0, 5], [0, 2]),
        ([0, 0, 0, 5], [0, 5], [0, 3]),
        ([0, 0, 6, 5], [6, 5], [2, 3]),
        ([6, 0, 0, 5], [6, 5], [0, 3]),
        ([0, 6, 0, 5], [6, 5], [1, 3]),
    ],
)
def test_24_zero_fill_is_lowest_unused(
    group: list[int], values: list[int], indices: list[int]
) -> None:
    m = compress_24(np.array([group], dtype=np.int8))
    np.testing.assert_array_equal(m.values, [values])
    np.testing.assert_array_equal(m.indices, [indices])


def test_24_packed_indices_layout() -> None:
    w = np.array([[0, 0, 7, 9, 1, 0, 0, 2, 0, 3, 4, 0]], dtype=np.int8)  # K = 12, 6 kept values
    m = compress_24(w)
    np.testing.assert_array_equal(m.indices, [[2, 3, 0, 3, 1, 2]])
    # byte 0: indices 2, 3, 0, 3 at bits 0, 2, 4, 6; byte 1: 1, 2 then zero bits.
    expected = [2 | 3 << 2 | 0 << 4 | 3 << 6, 1 | 2 << 2]
    np.testing.assert_array_equal(m.packed_indices, np.array([expected], dtype=np.uint8))
    assert m.nbytes == 6 + 2


@given(
    arrays(
        np.int8,
        st.tuples(st.integers(1, 5), st.integers(1, 13)),
        elements=st.one_of(st.just(0), st.just(0), st.integers(-128, 127)),
    )
)
@SEEDED
def test_24_accepts_exactly_the_pattern(w: np.ndarray) -> None:
    if is_24_sparse(w):
        assert_24_roundtrip(w)
    else:
        with pytest.raises(ValueError, match=r"^row \d+, group \d+ \(columns \d+\.\.\d+\) holds"):
            compress_24(w)


# --------------------------------------------------------------------------------------------------
# Products


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("k", [1, 3, 5, 17, 130])
def test_csr_spmm_matches_references(sparsity: float, k: int) -> None:
    rng = np.random.default_rng(5000 + k + int(sparsity * 100))
    w = random_sparse(rng, 7, k, sparsity)
    x = random_int8(rng, (k, 5))
    assert_products(w, x)


@pytest.mark.parametrize("k", [1, 3, 5, 17, 130])
def test_spmm_24_matches_references(k: int) -> None:
    rng = np.random.default_rng(6000 + k)
    w = random_24(rng, 7, k)
    x = random_int8(rng, (k, 5))
    assert_products(w, x)


def test_products_edge_values() -> None:
    rng = np.random.default_rng(9)
    w = decompress_24_masked(edge_matrix(rng, 8, 21))
    x = edge_matrix(rng, 21, 6)
    assert_products(w, x)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 6),
    k=st.integers(1, 40),
    m=st.integers(1, 4),
    sparsity=st.sampled_from(SPARSITIES),
    structured=st.booleans(),
)
@SEEDED
def test_products_property(
    seed: int, n: int, k: int, m: int, sparsity: float, structured: bool
) -> None:
    rng = np.random.default_rng(seed)
    w = random_24(rng, n, k) if structured else random_sparse(rng, n, k, sparsity)
    assert_products(w, random_int8(rng, (k, m)))


def test_csr_largest_sum_does_not_wrap() -> None:
    """K <= 65536 bounds every CSR sum by 2**30, so the format never wraps."""
    w = np.full((2, CSR_MAX_K), -128, dtype=np.int8)
    w[1] = 127
    x = np.full((CSR_MAX_K, 2), -128, dtype=np.int8)
    x[:, 1] = 127
    y = csr_spmm(csr_compress(w), x)
    expected = np.array([[2**30, -(2**23) * 127], [-(2**23) * 127, 127 * 127 * 2**16]])
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y, gemm(w, x))


def test_spmm_24_wraps_like_gemm() -> None:
    """Kp = 2**18 with every kept value -128 against x = -128 sums to 2**31, which wraps."""
    k = 2**18
    w = np.zeros((2, k), dtype=np.int8)
    w[0, 0::4] = w[0, 1::4] = -128
    w[1, 2::4] = w[1, 3::4] = -128
    w[1, 2] = 0  # one product short of the wrap: 2**31 - 2**14
    x = np.full((k, 2), -128, dtype=np.int8)
    x[:, 1] = 127
    y = spmm_24(compress_24(w), x)
    np.testing.assert_array_equal(y, gemm(w, x))
    np.testing.assert_array_equal(y, reference(w, x))
    assert y[0, 0] == -(2**31)  # 2**31 wrapped
    assert y[1, 0] == 2**31 - 2**14
    assert y[0, 1] == -128 * 127 * 2**17


# --------------------------------------------------------------------------------------------------
# Immutability and equality


def test_matrices_are_frozen_copies() -> None:
    w = np.array([[1, 0, 2, 0]], dtype=np.int8)
    values = np.array([1, 2], dtype=np.int8)
    csr = CsrMatrix(
        values, np.array([0, 2], dtype=np.uint16), np.array([0, 2], dtype=np.int32), (1, 4)
    )
    values[0] = 0  # the caller's array; the matrix kept a copy
    np.testing.assert_array_equal(csr_decompress(csr), w)
    with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
        csr.values[0] = 0
    m = compress_24(w)
    with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
        m.indices[0, 0] = 3
    with pytest.raises(AttributeError):
        m.shape = (2, 2)  # type: ignore[misc]


def test_equality() -> None:
    a = np.array([[1, 0, 2, 0], [0, 0, 0, 3]], dtype=np.int8)
    b = a.copy()
    b[1, 3] = 4
    assert csr_compress(a) == csr_compress(a.copy())
    assert csr_compress(a) != csr_compress(b)
    assert compress_24(a) == compress_24(a.copy())
    assert compress_24(a) != compress_24(b)
    assert csr_compress(a) != compress_24(a)
    assert compress_24(a) != "a"


# --------------------------------------------------------------------------------------------------
# Refusals: input arrays


COMPRESSORS = [csr_compress, compress_24, is_24_sparse]


@pytest.mark.parametrize("compress", COMPRESSORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.int32])
def test_w_wrong_dtype(compress, dtype) -> None:
    with pytest.raises(TypeError, match=rf"^w must have dtype int8, not {np.dtype(dtype)}$"):
        compress(np.zeros((2, 4), dtype=dtype))


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_w_not_an_array(compress) -> None:
    with pytest.raises(TypeError, match=r"^w must be a numpy array of int8, not <class 'list'>$"):
        compress([[1, 0], [0, 1]])


@pytest.mark.parametrize("compress", COMPRESSORS)
@pytest.mark.parametrize("shape", [(4,), (1, 2, 4)])
def test_w_wrong_ndim(compress, shape) -> None:
    text = re.escape(str(shape))
    with pytest.raises(ValueError, match=rf"^w must have 2 dimensions, not shape {text}$"):
        compress(np.zeros(shape, dtype=np.int8))


@pytest.mark.parametrize("compress", COMPRESSORS)
@pytest.mark.parametrize("shape", [(0, 4), (3, 0)])
def test_w_empty(compress, shape) -> None:
    text = re.escape(str(shape))
    with pytest.raises(ValueError, match=rf"^w must not be empty, not shape {text}$"):
        compress(np.zeros(shape, dtype=np.int8))


def test_csr_k_too_large() -> None:
    msg = (
        r"^K = 65537 exceeds the CSR column index range K <= 65536 \(uint16 col_idx\); "
        r"split K into chunks of at most 65536 columns$"
    )
    with pytest.raises(ValueError, match=msg):
        csr_compress(np.zeros((1, 65537), dtype=np.int8))
    empty = np.zeros(0, dtype=np.int8)
    with pytest.raises(ValueError, match=msg):
        CsrMatrix(empty, empty.astype(np.uint16), np.zeros(2, dtype=np.int32), (1, 65537))


def both_formats(k: int) -> list[tuple[object, object]]:
    w = random_24(np.random.default_rng(10), 3, k)
    return [(csr_spmm, csr_compress(w)), (spmm_24, compress_24(w))]


@pytest.mark.parametrize(("spmm", "matrix"), both_formats(6))
def test_x_k_mismatch(spmm, matrix) -> None:
    with pytest.raises(
        ValueError, match=r"^x must have K = 6 rows \(one per column of W\), not shape \(8, 2\)$"
    ):
        spmm(matrix, np.zeros((8, 2), dtype=np.int8))
    # The padded width is not accepted in place of K.
    with pytest.raises(ValueError, match=r"^x must have K = 6 rows .* not shape \(5, 2\)$"):
        spmm(matrix, np.zeros((5, 2), dtype=np.int8))


@pytest.mark.parametrize(("spmm", "matrix"), both_formats(6))
def test_x_wrong_dtype_ndim(spmm, matrix) -> None:
    with pytest.raises(TypeError, match=r"^x must have dtype int8, not float32$"):
        spmm(matrix, np.zeros((6, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=r"^x must have dtype int8, not int16$"):
        spmm(matrix, np.zeros((6, 2), dtype=np.int16))
    with pytest.raises(ValueError, match=r"^x must have 2 dimensions, not shape \(6,\)$"):
        spmm(matrix, np.zeros(6, dtype=np.int8))


def test_decompress_and_spmm_wrong_matrix_type() -> None:
    w = np.zeros((2, 4), dtype=np.int8)
    x = np.zeros((4, 1), dtype=np.int8)
    msg_csr = r"^csr must be a CsrMatrix, not <class 'sim\.golden\.sparse24\.Sparse24Matrix'>$"
    msg_24 = r"^m must be a Sparse24Matrix, not <class 'sim\.golden\.csr\.CsrMatrix'>$"
    with pytest.raises(TypeError, match=msg_csr):
        csr_decompress(compress_24(w))
    with pytest.raises(TypeError, match=msg_csr):
        csr_spmm(compress_24(w), x)
    with pytest.raises(TypeError, match=msg_24):
        decompress_24(csr_compress(w))
    with pytest.raises(TypeError, match=msg_24):
        spmm_24(csr_compress(w), x)
    with pytest.raises(TypeError, match=r"^csr must be a CsrMatrix, not <class 'numpy\.ndarray'>$"):
        csr_spmm(w, x)


# --------------------------------------------------------------------------------------------------
# Refusals: 2:4 violations name the first offending group


def test_24_violation_names_first_group_row_major() -> None:
    w = np.zeros((4, 24), dtype=np.int8)
    w[2, 4:7] = [1, 2, 3]  # row 2, group 1
    w[1, 20:24] = [1, -1, 1, -1]  # row 1, group 5: first in row-major order
    w[1, 23] = 0
    w[3, 0:4] = [5, 5, 5, 5]
    msg = r"^row 1, group 5 \(columns 20\.\.23\) holds 3 nonzeros; 2:4 sparsity allows at most 2$"
    with pytest.raises(ValueError, match=msg):
        compress_24(w)
    assert not is_24_sparse(w)
    w[1, 20:24] = 0
    msg = r"^row 2, group 1 \(columns 4\.\.7\) holds 3 nonzeros; 2:4 sparsity allows at most 2$"
    with pytest.raises(ValueError, match=msg):
        compress_24(w)
    w[2] = 0
    msg = r"^row 3, group 0 \(columns 0\.\.3\) holds 4 nonzeros; 2:4 sparsity allows at most 2$"
    with pytest.raises(ValueError, match=msg):
        compress_24(w)
    w[3, 0] = 0
    w[3, 2] = 0
    assert is_24_sparse(w)
    assert_24_roundtrip(w)


def test_24_violation_within_row_names_lowest_group() -> None:
    w = np.zeros((1, 16), dtype=np.int8)
    w[0, 12:15] = [-128, 127, -128]
    w[0, 8:12] = [127, 0, 127, 127]
    msg = r"^row 0, group 2 \(columns 8\.\.11\) holds 3 nonzeros; 2:4 sparsity allows at most 2$"
    with pytest.raises(ValueError, match=msg):
        compress_24(w)


@pytest.mark.parametrize(("k", "first", "last"), [(7, 4, 6), (11, 8, 10), (1023, 1020, 1022)])
def test_24_violation_in_padded_last_group(k: int, first: int, last: int) -> None:
    w = random_24(np.random.default_rng(11), 3, k)
    w[2, first : last + 1] = [1, -128, 127]
    group = first // 4
    msg = (
        rf"^row 2, group {group} \(columns {first}\.\.{last}\) holds 3 nonzeros; "
        r"2:4 sparsity allows at most 2$"
    )
    with pytest.raises(ValueError, match=msg):
        compress_24(w)
    assert not is_24_sparse(w)


# --------------------------------------------------------------------------------------------------
# Refusals: malformed CsrMatrix


def csr_fields(**changes: object) -> dict[str, object]:
    """Fields of a valid 3 x 5 CSR matrix (rows: 2 nonzeros, none, 3 nonzeros), with changes."""
    fields: dict[str, object] = {
        "values": np.array([4, -5, 1, 2, 3], dtype=np.int8),
        "col_idx": np.array([1, 4, 0, 2, 3], dtype=np.uint16),
        "row_ptr": np.array([0, 2, 2, 5], dtype=np.int32),
        "shape": (3, 5),
    }
    fields.update(changes)
    return fields


def test_csr_fields_valid() -> None:
    csr = CsrMatrix(**csr_fields())
    np.testing.assert_array_equal(
        csr_decompress(csr), [[0, 4, 0, 0, -5], [0, 0, 0, 0, 0], [1, 0, 2, 3, 0]]
    )
    assert CsrMatrix(**csr_fields(shape=(np.int64(3), np.int32(5)))).shape == (3, 5)


@pytest.mark.parametrize(
    ("changes", "error", "msg"),
    [
        (
            {"values": np.array([4, -5, 1, 2, 3], dtype=np.int16)},
            TypeError,
            r"values must have dtype int8, not int16",
        ),
        (
            {"values": [4, -5, 1, 2, 3]},
            TypeError,
            r"values must be a numpy array of int8, not <class 'list'>",
        ),
        (
            {"col_idx": np.array([1, 4, 0, 2, 3], dtype=np.int32)},
            TypeError,
            r"col_idx must have dtype uint16, not int32",
        ),
        (
            {"row_ptr": np.array([0, 2, 2, 5], dtype=np.int64)},
            TypeError,
            r"row_ptr must have dtype int32, not int64",
        ),
        (
            {"values": np.array([[4, -5, 1, 2, 3]], dtype=np.int8)},
            ValueError,
            r"values must have 1 dimension, not shape \(1, 5\)",
        ),
        (
            {"col_idx": np.array([1, 4, 0, 2], dtype=np.uint16)},
            ValueError,
            r"col_idx must have one entry per value \(5\), not 4",
        ),
        (
            {"row_ptr": np.array([0, 2, 5], dtype=np.int32)},
            ValueError,
            r"row_ptr must have N \+ 1 = 4 entries, not 3",
        ),
        (
            {"row_ptr": np.array([1, 2, 2, 5], dtype=np.int32)},
            ValueError,
            r"row_ptr\[0\] must be 0, not 1",
        ),
        (
            {"row_ptr": np.array([0, 3, 2, 5], dtype=np.int32)},
            ValueError,
            r"row_ptr must be nondecreasing; row_ptr\[2\] = 2 < row_ptr\[1\] = 3",
        ),
        (
            {"row_ptr": np.array([0, 2, 2, 4], dtype=np.int32)},
            ValueError,
            r"row_ptr\[3\] must equal nnz = 5, not 4",
        ),
        (
            {"row_ptr": np.array([0, 2, 2, 6], dtype=np.int32)},
            ValueError,
            r"row_ptr\[3\] must equal nnz = 5, not 6",
        ),
        (
            {"col_idx": np.array([1, 5, 0, 2, 9], dtype=np.uint16)},
            ValueError,
            r"col_idx\[1\] = 5 is out of range for K = 5",
        ),
        (
            {"col_idx": np.array([1, 4, 0, 3, 2], dtype=np.uint16)},
            ValueError,
            r"col_idx must be strictly increasing within a row; "
            r"row 2 has col_idx\[4\] = 2 after col_idx\[3\] = 3",
        ),
        (
            {"col_idx": np.array([1, 1, 0, 2, 3], dtype=np.uint16)},
            ValueError,
            r"col_idx must be strictly increasing within a row; "
            r"row 0 has col_idx\[1\] = 1 after col_idx\[0\] = 1",
        ),
        (
            {"values": np.array([4, -5, 1, 0, 3], dtype=np.int8)},
            ValueError,
            r"values\[3\] is an explicit zero; CSR stores nonzeros only",
        ),
        (
            {"shape": (3, 5, 1)},
            TypeError,
            r"shape must be a tuple of two ints \(N, K\), not \(3, 5, 1\)",
        ),
        ({"shape": [3, 5]}, TypeError, r"shape must be a tuple of two ints \(N, K\), not \[3, 5\]"),
        (
            {"shape": (3.0, 5)},
            TypeError,
            r"shape must be a tuple of two ints \(N, K\), not \(3\.0, 5\)",
        ),
        (
            {"shape": (True, 5)},
            TypeError,
            r"shape must be a tuple of two ints \(N, K\), not \(True, 5\)",
        ),
        ({"shape": (0, 5)}, ValueError, r"shape must have N >= 1 and K >= 1, not \(0, 5\)"),
        (
            {"shape": (2, 5)},
            ValueError,
            r"row_ptr must have N \+ 1 = 3 entries, not 4",
        ),
    ],
)
def test_csr_malformed(changes: dict[str, object], error: type, msg: str) -> None:
    with pytest.raises(error, match=rf"^{msg}$"):
        CsrMatrix(**csr_fields(**changes))


def test_csr_row_boundary_allows_column_reset() -> None:
    """Columns restart at a row boundary, also after empty rows and at the last row."""
    csr = CsrMatrix(
        values=np.array([1, 2, 3, 4], dtype=np.int8),
        col_idx=np.array([3, 3, 0, 0], dtype=np.uint16),
        row_ptr=np.array([0, 1, 1, 2, 3, 4, 4], dtype=np.int32),
        shape=(6, 4),
    )
    assert csr == csr_compress(csr_decompress(csr))
    with pytest.raises(ValueError, match=r"^col_idx must be strictly increasing within a row; "):
        CsrMatrix(
            values=np.array([1, 2, 3, 4], dtype=np.int8),
            col_idx=np.array([3, 3, 0, 0], dtype=np.uint16),
            row_ptr=np.array([0, 1, 1, 2, 4, 4, 4], dtype=np.int32),
            shape=(6, 4),
        )


# --------------------------------------------------------------------------------------------------
# Refusals: malformed Sparse24Matrix


def fields_24(**changes: object) -> dict[str, object]:
    """Fields of a valid 2 x 7 2:4 matrix (Kp = 8, so 4 kept values per row), with changes."""
    fields: dict[str, object] = {
        "values": np.array([[1, 2, 3, 0], [0, -4, 5, 6]], dtype=np.int8),
        "indices": np.array([[0, 3, 1, 2], [0, 1, 0, 2]], dtype=np.uint8),
        "shape": (2, 7),
    }
    fields.update(changes)
    return fields


def test_24_fields_valid() -> None:
    m = Sparse24Matrix(**fields_24())
    np.testing.assert_array_equal(decompress_24(m), [[1, 0, 0, 2, 0, 3, 0], [0, -4, 0, 0, 5, 0, 6]])
    assert m.padded_k == 8
    # A kept zero in the padding column is fine.
    Sparse24Matrix(**fields_24(indices=np.array([[0, 3, 1, 3], [0, 1, 0, 2]], dtype=np.uint8)))


@pytest.mark.parametrize(
    ("changes", "error", "msg"),
    [
        (
            {"values": np.array([[1, 2, 3, 0], [0, -4, 5, 6]], dtype=np.int16)},
            TypeError,
            r"values must have dtype int8, not int16",
        ),
        (
            {"indices": np.array([[0, 3, 1, 2], [0, 1, 0, 2]], dtype=np.int8)},
            TypeError,
            r"indices must have dtype uint8, not int8",
        ),
        (
            {"values": np.array([1, 2, 3, 0], dtype=np.int8)},
            ValueError,
            r"values must have 2 dimensions, not shape \(4,\)",
        ),
        (
            {"values": np.zeros((2, 3), dtype=np.int8)},
            ValueError,
            r"values must have shape \(N, Kp/2\) = \(2, 4\) for shape \(2, 7\), not \(2, 3\)",
        ),
        (
            {"shape": (2, 9)},
            ValueError,
            r"values must have shape \(N, Kp/2\) = \(2, 6\) for shape \(2, 9\), not \(2, 4\)",
        ),
        (
            {"indices": np.zeros((3, 4), dtype=np.uint8)},
            ValueError,
            r"indices must have shape \(N, Kp/2\) = \(2, 4\) for shape \(2, 7\), not \(3, 4\)",
        ),
        (
            {"indices": np.array([[0, 3, 1, 2], [0, 4, 0, 7]], dtype=np.uint8)},
            ValueError,
            r"indices\[1, 1\] = 4 is not a position in a group of four \(0\.\.3\)",
        ),
        (
            {"indices": np.array([[0, 3, 2, 2], [1, 0, 0, 2]], dtype=np.uint8)},
            ValueError,
            r"row 0, group 1: indices \(2, 2\) must be strictly increasing",
        ),
        (
            {"indices": np.array([[0, 3, 1, 2], [1, 0, 0, 2]], dtype=np.uint8)},
            ValueError,
            r"row 1, group 0: indices \(1, 0\) must be strictly increasing",
        ),
        (
            {"indices": np.array([[0, 3, 1, 2], [0, 1, 0, 3]], dtype=np.uint8)},
            ValueError,
            r"values\[1, 3\] = 6 sits at column 7, in the padding beyond K = 7; "
            r"padding columns must hold zeros",
        ),
        ({"shape": (2,)}, TypeError, r"shape must be a tuple of two ints \(N, K\), not \(2,\)"),
        ({"shape": (2, 0)}, ValueError, r"shape must have N >= 1 and K >= 1, not \(2, 0\)"),
    ],
)
def test_24_malformed(changes: dict[str, object], error: type, msg: str) -> None:
    with pytest.raises(error, match=rf"^{msg}$"):
        Sparse24Matrix(**fields_24(**changes))


# --------------------------------------------------------------------------------------------------
# Refusals: random generators


def test_random_refusals() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(
        TypeError, match=r"^rng must be a numpy\.random\.Generator, not <class 'int'>$"
    ):
        random_sparse(0, 2, 2, 0.5)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^rng must be a numpy\.random\.Generator, not <class 'int'>$"
    ):
        random_24(0, 2, 2)  # type: ignore[arg-type]
    for sparsity in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=rf"^sparsity must be in \[0, 1\], not {sparsity!r}$"):
            random_sparse(rng, 2, 2, sparsity)
    with pytest.raises(ValueError, match=r"^shape must have N >= 1 and K >= 1, not \(0, 2\)$"):
        random_24(rng, 0, 2)
    with pytest.raises(
        TypeError, match=r"^shape must be a tuple of two ints \(N, K\), not \(2, 2\.5\)$"
    ):
        random_sparse(rng, 2, 2.5, 0.5)  # type: ignore[arg-type]
