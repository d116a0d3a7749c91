"""Sparse Y = W @ X through the SPMM instruction: the memory image and the program.

`spmm_memory` lays X (K x M int8) and W's CSR nonzeros, packed into the sparse engine's
``nonzeros`` beats (`sim.sparse_program.nonzero_beats`), out in a main-memory image and
returns a `SpmmLayout`; `spmm_schedule` returns the program computing Y (N x M int32) for it.
W's rows are split into groups of at most half the accumulator and K into chunks of at most
``sparse_depth`` rows (and one weight bank); each (column block, row group) is one accumulator
block with one step per chunk: LOAD_WGT of the chunk's rows of X, then one SPMM. The tokens and
double buffering are those of `sim.program_builder.ProgramBuilder`, as for the dense GEMM
(`sim.schedule`); docs/schedule.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import MAX_ROWS, Instruction, NzCache, Op
from sim.golden.checks import require_array, require_gemm_operands
from sim.golden.sparse import csr_compress
from sim.program_builder import (
    Draft,
    ProgramBuilder,
    bank_rows,
    check_strides,
    place,
    require_config,
    require_int,
)
from sim.sparse_program import nonzero_beats


@dataclass(frozen=True)
class SpmmLayout:
    """Where `spmm_memory` put a sparse product Y = W @ X in main memory.

    X (K x M int8, row stride M) at `x_addr`; Y (N x M int32 LE, row stride 4M) at `y_addr`.
    W's rows are split into `row_groups` ((first row, rows); at most half the accumulator
    each) and K into `chunks` ((first k, rows); at most ``sparse_depth`` and one weight bank);
    ``nonzeros[g][c]`` = (address, beats) of the packed ``nonzeros`` beats of group g restricted
    to chunk c, indices relative to the chunk (as `sim.sparse_program` packs a pass).
    """

    config: AccelConfig
    n: int
    k: int
    m: int
    x_addr: int
    y_addr: int
    row_groups: tuple[tuple[int, int], ...]
    chunks: tuple[tuple[int, int], ...]
    nonzeros: tuple[tuple[tuple[int, int], ...], ...]
    size: int

    def result(self, memory: np.ndarray) -> np.ndarray:
        """Y, int32 N x M, from a memory image."""
        data = memory[self.y_addr : self.y_addr + 4 * self.n * self.m]
        return data.view("<i4").reshape(self.n, self.m).astype(np.int32)


@dataclass(frozen=True)
class PackedSparseWeight:
    """A sparse int8 W (N x K) as the SPMM instructions read it, packed once (`pack_sparse_weight`).

    W's rows are split into `row_groups` ((first row, rows); at most half the accumulator each)
    and K into `chunks` ((first k, rows); at most ``sparse_depth`` and one weight bank);
    ``beats[g][c]`` is the uint32 array of the ``nonzeros`` beats of group g restricted to chunk
    c (`sim.sparse_program.nonzero_beats`, indices relative to the chunk).
    """

    config: AccelConfig
    n: int
    k: int
    row_groups: tuple[tuple[int, int], ...]
    chunks: tuple[tuple[int, int], ...]
    beats: tuple[tuple[np.ndarray, ...], ...]

    @cached_property
    def pieces(self) -> tuple[np.ndarray, ...]:
        """The beats of every (group, chunk) as bytes, in the order of `beats` (made once)."""
        return tuple(b.astype("<u4").view(np.uint8).reshape(-1) for g in self.beats for b in g)


def pack_sparse_weight(w: np.ndarray, config: AccelConfig) -> PackedSparseWeight:
    """W's nonzeros packed into the sparse engine's beats, per row group and K-chunk.

    Raises
    ------
    TypeError, ValueError
        `w` is not an int8 matrix, K > 65536, or a configuration whose weight banks have no rows
        or that has no sparse engine.
    """
    config = require_config(config)
    config.require_sparse_engine("pack_sparse_weight")
    w = require_array("w", w, np.int8, 2)
    n, k = w.shape
    group_rows = min(n, config.acc_rows // 2, MAX_ROWS)
    depth = min(config.sparse_depth, bank_rows(config)[1], MAX_ROWS)
    if depth < 1:
        raise ValueError(f"spad_bytes = {config.spad_bytes} leaves weight banks without rows")
    groups = tuple((r0, min(group_rows, n - r0)) for r0 in range(0, n, group_rows))
    chunks = tuple((k0, min(depth, k - k0)) for k0 in range(0, k, depth))
    beats = tuple(
        tuple(
            nonzero_beats(csr_compress(w[r0 : r0 + rows]), k0, k0 + kc, config) for k0, kc in chunks
        )
        for r0, rows in groups
    )
    return PackedSparseWeight(config, n, k, groups, chunks, beats)


def spmm_layout(
    packed: PackedSparseWeight,
    m: int,
    x_addr: int,
    y_addr: int,
    nonzeros_addr: list[int],
    size: int | None = None,
) -> SpmmLayout:
    """The `SpmmLayout` of `packed` times a K x `m` X at `x_addr` into Y at `y_addr`, the beats
    of each (group, chunk) at the addresses `nonzeros_addr` (in `PackedSparseWeight.pieces`
    order). ``size``: the memory image's size, by default the end of the highest region."""
    m = require_int("m", m, 1)
    pieces = packed.pieces
    if len(nonzeros_addr) != len(pieces):
        raise ValueError(
            f"{len(pieces)} nonzeros regions need as many addresses, not {len(nonzeros_addr)}"
        )
    addresses = iter(nonzeros_addr)
    nonzeros = tuple(tuple((next(addresses), b.shape[0]) for b in g) for g in packed.beats)
    ends = [x_addr + packed.k * m, y_addr + 4 * packed.n * m]
    ends += [a + piece.size for a, piece in zip(nonzeros_addr, pieces, strict=True)]
    return SpmmLayout(
        packed.config,
        packed.n,
        packed.k,
        m,
        x_addr,
        y_addr,
        packed.row_groups,
        packed.chunks,
        nonzeros,
        max(ends) if size is None else size,
    )


def spmm_memory(
    w: np.ndarray, x: np.ndarray, config: AccelConfig, *, align: int = 16
) -> tuple[np.ndarray, SpmmLayout]:
    """A main-memory image holding X, W's packed nonzeros beats and room for Y = W @ X.

    Parameters
    ----------
    w : numpy.ndarray
        int8 N x K (zeros are not stored), K <= 65536.
    x : numpy.ndarray
        int8 K x M.
    config : AccelConfig
        The hardware (sparse lanes and depth decide the beat format; banks the chunks).
    align : int
        Every region starts at a multiple of this many bytes.

    Raises
    ------
    TypeError, ValueError
        Operands that are not int8 matrices of matching shapes, K > 65536, or a configuration
        whose weight banks have no rows or that has no sparse engine.
    """
    config = require_config(config)
    config.require_sparse_engine("spmm_memory")
    w, x = require_gemm_operands(w, x, ("w", "x"))
    align = require_int("align", align, 1)
    packed = pack_sparse_weight(w, config)
    (n, _), m = w.shape, x.shape[1]
    pieces = packed.pieces
    flat = [x.reshape(-1), *pieces]
    starts, end = place([piece.size for piece in flat] + [4 * n * m], align)
    memory = np.zeros(end, np.uint8)
    for start, piece in zip(starts[:-1], flat, strict=True):
        memory[start : start + piece.size] = piece.view(np.uint8)
    return memory, spmm_layout(packed, m, starts[0], starts[-1], starts[1:-1], size=end)


def spmm_schedule(layout: SpmmLayout, *, cache: bool = True) -> list[Instruction]:
    """The program computing Y = W @ X for a `spmm_memory` layout, int32 output.

    For each row group of W, the column blocks of C columns of X, each one accumulator block:
    per K-chunk one step (LOAD_WGT of the chunk's rows of the block of X into bank step % 2,
    one SPMM, accumulating after the first chunk), and one STORE per block. Tokens as for
    `gemm_schedule`.

    W's nonzeros are fetched from memory once per group and chunk for as many column blocks as
    can use them (`cache`, when the chunk's beats fit ``config.sparse_cache_beats``): the first
    block's SPMM FILLs the sparse engine's cache, the next blocks' REPLAY it
    (`hdl.isa.NzCache`). With one K-chunk every block of a group replays the one fetch, each
    block stored as soon as its SPMM is done; with several, the blocks go in sets that fit half
    the accumulator together, each set's blocks accumulating chunk after chunk (so a chunk's
    nonzeros serve the whole set) and stored after its last chunk. Without `cache` (or beats
    that do not fit) every SPMM streams its nonzeros from memory.

    Raises
    ------
    TypeError
        `layout` is not a `SpmmLayout`.
    ValueError
        A row stride of 2**24 bytes or more.
    """
    if not isinstance(layout, SpmmLayout):
        raise TypeError(f"layout must be a SpmmLayout, not {layout!r}")
    config = layout.config
    check_strides({"X": layout.m, "Y": 4 * layout.m})
    builder = ProgramBuilder(config)
    block_rows = max(rows for _, rows in layout.row_groups)
    blocks = [(j0, min(config.cols, layout.m - j0)) for j0 in range(0, layout.m, config.cols)]
    together = len(blocks)
    if len(layout.chunks) > 1:
        together = max(1, config.acc_rows // 2 // block_rows)
    for group, nonzeros in zip(layout.row_groups, layout.nonzeros, strict=True):
        for first in range(0, len(blocks), together):
            chosen = blocks[first : first + together]
            if len(layout.chunks) == 1:
                for index, columns in enumerate(chosen):
                    acc_row = builder.begin_block(block_rows)
                    mode = _cache_mode(config, cache, nonzeros[0][1], index, len(chosen))
                    step = _spmm_step(builder, layout, 0, nonzeros[0], columns, acc_row, mode)
                    builder.step(*step, first=True, last=True)
                    _store(builder, layout, group, columns, acc_row)
                continue
            opened = [builder.allocate_block(block_rows) for _ in chosen]
            last = len(layout.chunks) - 1
            for c, chunk_nonzeros in enumerate(nonzeros):
                for index, (columns, (acc_row, reuses)) in enumerate(
                    zip(chosen, opened, strict=True)
                ):
                    mode = _cache_mode(config, cache, chunk_nonzeros[1], index, len(chosen))
                    step = _spmm_step(builder, layout, c, chunk_nonzeros, columns, acc_row, mode)
                    builder.step(*step, first=c == 0, last=c == last, reuses=reuses)
            for columns, (acc_row, _) in zip(chosen, opened, strict=True):
                _store(builder, layout, group, columns, acc_row)
    return builder.finish()


def _cache_mode(config: AccelConfig, cache: bool, beats: int, index: int, blocks: int) -> int:
    """The ``nz_cache`` of the `index`-th of `blocks` SPMMs that share one chunk's nonzeros."""
    if not cache or blocks == 1 or beats > config.sparse_cache_beats:
        return NzCache.STREAM
    return NzCache.FILL if index == 0 else NzCache.REPLAY


def _spmm_step(builder, layout: SpmmLayout, c: int, nonzeros, columns, acc_row: int, mode):
    """The loads and the SPMM of K-chunk `c` of one block (its rows of X's column block), for
    `ProgramBuilder.step`."""
    (k0, depth), (nz_addr, beats), (j0, width) = layout.chunks[c], nonzeros, columns
    _, x_row = builder.operand_rows(0, depth)
    x_addr = layout.x_addr + k0 * layout.m + j0
    load = Draft(
        Op.LOAD_WGT,
        dict(dram_addr=x_addr, dram_stride=layout.m, rows=depth, spad_row=x_row, width=width),
    )
    fields = dict(nz_addr=nz_addr, nz_beats=beats, x_row=x_row, k=depth, acc_row=acc_row)
    return [load], Draft(Op.SPMM, {**fields, "accumulate": c > 0, "nz_cache": int(mode)})


def _store(builder, layout: SpmmLayout, group, columns, acc_row: int) -> None:
    """The STORE of one block: the group's rows of Y's column block, int32."""
    (r0, rows), (j0, width) = group, columns
    builder.store(
        acc_row,
        rows=rows,
        dram_addr=layout.y_addr + 4 * (r0 * layout.m + j0),
        dram_stride=4 * layout.m,
        int8=0,
        width=width,
    )
