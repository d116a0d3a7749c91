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

The code is in `sim.golden.csr`, `sim.golden.sparse24` and `sim.golden.sparse_random`; this
module is the spec and re-exports their public names.

See ``docs/sparse-formats.md`` for layouts with a worked example.
"""

from sim.golden.csr import (
    CSR_BYTES_PER_NONZERO,
    CSR_BYTES_PER_ROW_POINTER,
    CSR_MAX_K,
    CsrMatrix,
    csr_compress,
    csr_decompress,
    csr_spmm,
)
from sim.golden.sparse24 import (
    Sparse24Matrix,
    compress_24,
    decompress_24,
    is_24_sparse,
    padded_k,
    spmm_24,
)
from sim.golden.sparse_random import random_24, random_sparse

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
