"""Tiled, double-buffered accelerator programs for dense C = A @ B (MATMUL).

`gemm_schedule` returns the instruction list computing C = A @ B for int8 A (M x K) and B
(K x N) already in main memory, C written as int32 or, through the requantizer, as int8. It
works for both dataflows, any shape (ragged tiles load ``width`` < the row width and fewer
rows; the loads zero-fill the rest) and any configuration whose scratchpad banks hold one
tile. `gemm_memory` lays the operands out in a main-memory image the way the schedule expects
and returns a `GemmLayout` that schedules and reads back the result (the sparse W @ X is
`sim.spmm_schedule`). docs/schedule.md describes the scheme; in short:

Memory layout (byte addresses, everything row-major, no padding):

- A at ``a_addr``: weight-stationary, A itself (M x K, row stride K); output-stationary, A
  transposed (K x M, row stride M), because an OS activation row is column k of an A tile, and
  a load copies contiguous bytes;
- B at ``b_addr``: K x N, row stride N;
- C at ``c_addr``: M x N, row stride N (int8) or 4N bytes (int32, little-endian);
- requantized output: N parameter records of 16 bytes at ``requant``
  (`sim.golden.param_records.pack_param_records`).

Tiling: a *step* is one MATMUL with its loads; a *block* is the accumulator rows one STORE
drains. Weight-stationary: block = up to ``M_t`` rows of A by one N-tile of C columns; step =
one K-tile of R rows (``M_t`` activation rows of R bytes, R weight rows). Output-stationary:
block = R rows by C columns; step = one K-tile of up to ``K_t`` rows of A^T and of B. The steps
of a block add their products in the accumulator (C = sum_i A_i B_i); its STORE then writes it.
The N-tiles are the outer loop, so the requantizer's lanes are loaded once per N-tile.

Double buffering and tokens (VTA's pattern): step s puts its operands in bank s % 2 of both
scratchpads. Its last load pushes a token to compute, its MATMUL pops it; the MATMUL pushes a
token back when done with the bank, and the first load of step s + 2 (same bank) pops it. So
the loads of step s + 1 run while step s computes. A block's last MATMUL pushes a token to the
store queue, its STORE pops it. Accumulator rows come from a `sim.alloc.RowPool`; when the
pool is full, the next block reuses the rows of the oldest stored block: that STORE pushes a
token back and the new block's first MATMUL pops it, so stores overlap the next blocks'
compute. With int8 output, a FENCE precedes the LOAD_PARAMS of every N-tile after the first
(the previous N-tile's stores must finish with the old parameters). Every pushed token is
popped within the program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import MAX_ROWS, PARAM_RECORD_BYTES, Geometry, Instruction, Op
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import MAX_K_NO_OVERFLOW
from sim.golden.param_records import pack_param_records
from sim.golden.requant import RequantParams
from sim.program_builder import (
    Draft,
    ProgramBuilder,
    bank_rows,
    check_strides,
    place,
    require_config,
    require_int,
)

#: Weight buffers the activation-reuse schedule rotates through (steps of loads in flight).
REUSE_DEPTH = 8
#: Most N-tiles that share one resident slice of A (their blocks fill the accumulator).
REUSE_GROUP = 8


def gemm_schedule(
    a_addr: int,
    b_addr: int,
    c_addr: int,
    m: int,
    n: int,
    k: int,
    config: AccelConfig,
    *,
    requant: int | None = None,
) -> list[Instruction]:
    """The program computing C = A @ B with the memory layout of the module doc.

    Parameters
    ----------
    a_addr, b_addr, c_addr : int
        Byte addresses of A (WS) or A^T (OS), of B and of C in main memory.
    m, n, k : int
        The shape: A is M x K, B is K x N.
    config : AccelConfig
        The hardware; its dataflow decides the tiling and A's layout.
    requant : int or None
        None: C is int32. Otherwise the address of N parameter records
        (`sim.golden.param_records.pack_param_records`) and C is int8, requantized per column.

    Returns
    -------
    list of Instruction
        Passes `hdl.isa.check_program` for a memory holding every operand.

    Raises
    ------
    TypeError
        An argument has the wrong type.
    ValueError
        A negative address or a shape below 1; K above `MAX_K_NO_OVERFLOW` (the int32
        accumulator could wrap); a configuration whose scratchpad bank cannot hold one tile
        (WS: R weight rows; at least one activation row) or whose accumulator cannot hold one
        OS block (R rows); a row stride of 2**24 bytes or more; an address past 2**32.
    """
    config = require_config(config)
    addresses = [
        require_int(name, value, 0)
        for name, value in (("a_addr", a_addr), ("b_addr", b_addr), ("c_addr", c_addr))
    ]
    m, n, k = (require_int(name, value, 1) for name, value in (("m", m), ("n", n), ("k", k)))
    if requant is not None:
        requant = require_int("requant", requant, 0)
    if k > MAX_K_NO_OVERFLOW:
        raise ValueError(
            f"k must be at most {MAX_K_NO_OVERFLOW} (int32 accumulation of int8 products), "
            f"not {k!r}; split K and add the partial results in wider precision"
        )
    out_bytes = 4 if requant is None else 1
    a_stride = k if config.dataflow is Dataflow.WS else m
    check_strides({"A": a_stride, "B": n, "C": n * out_bytes})
    block_rows = _block_rows(config, m)  # also refuses configurations without room for a tile
    builder = ProgramBuilder(config)
    reuse_rows = _reuse_block_rows(config, m, n) if requant is None else 0
    if reuse_rows:
        groups = _reuse_groups(config, n)
        # Weight tiles rotate through `depth` buffers, so their loads run that many steps
        # ahead of the MATMULs and hide the memory latency; fewer than the N-tiles of every
        # group (see `_ws_reuse_block` for why the activation prefetch then stays safe).
        buffers = Geometry.of(config).wgt_rows // config.rows
        smallest = min(len(group) for group in groups)
        builder.depth = max(2, min(REUSE_DEPTH, smallest - 1, buffers))
        builder.weight_slots = [
            builder._pools[1].allocate(config.rows) for _ in range(builder.depth)
        ]
        for chosen in groups:
            for m0 in range(0, m, reuse_rows):
                rows = min(reuse_rows, m - m0)
                _ws_reuse_block(builder, addresses, (m0, rows, reuse_rows), (m, n, k), chosen)
        return builder.finish()
    for j0 in range(0, n, config.cols):
        width = min(config.cols, n - j0)
        if requant is not None:
            builder.load_params(requant + j0 * PARAM_RECORD_BYTES, width, fence=j0 > 0)
        for m0 in range(0, m, block_rows):
            rows = min(block_rows, m - m0)
            acc_row = builder.begin_block(block_rows)
            _matmul_block_steps(builder, addresses, (m0, rows, j0, width), (m, n, k), acc_row)
            builder.store(
                acc_row,
                rows=rows,
                dram_addr=addresses[2] + (m0 * n + j0) * out_bytes,
                dram_stride=n * out_bytes,
                int8=int(requant is not None),
                width=width,
            )
    return builder.finish()


def _block_rows(config: AccelConfig, m: int) -> int:
    """Output rows of one block: WS ``M_t`` (an activation bank, half the accumulator), OS R.

    Raises
    ------
    ValueError
        The configuration cannot hold one step's tile in a bank, or one OS block.
    """
    act_bank, wgt_bank = bank_rows(config)
    r = config.rows
    if min(act_bank, wgt_bank) < 1:
        raise ValueError(
            f"spad_bytes = {config.spad_bytes} leaves a scratchpad bank without rows for a "
            f"{config.rows} x {config.cols} array"
        )
    if config.dataflow is Dataflow.OS:
        if r > config.acc_rows:
            raise ValueError(
                f"acc_rows = {config.acc_rows} cannot hold an OS block of R = {r} rows"
            )
        return r
    if r > wgt_bank:
        raise ValueError(
            f"spad_bytes = {config.spad_bytes} gives weight banks of {wgt_bank} rows; a WS weight "
            f"tile needs R = {r} rows in each bank (spad_bytes >= {2 * r * config.cols})"
        )
    return min(m, act_bank, config.acc_rows // 2, MAX_ROWS)


def _reuse_group(config: AccelConfig, n: int) -> int:
    """Most N-tiles that share one resident slice of A in the activation-reuse schedule."""
    return min(math.ceil(n / config.cols), REUSE_GROUP)


def _reuse_groups(config: AccelConfig, n: int) -> list[list[int]]:
    """The N-tiles' first columns split into as few groups of at most `REUSE_GROUP` as
    possible, their sizes differing by one at most (so the smallest is as large as it can be:
    it bounds the weight buffers in flight, `_ws_reuse_block`)."""
    tiles = list(range(0, n, config.cols))
    count = math.ceil(len(tiles) / REUSE_GROUP)
    size, extra = divmod(len(tiles), count)
    groups, start = [], 0
    for g in range(count):
        end = start + size + (g < extra)
        groups.append(tiles[start:end])
        start = end
    return groups


def _reuse_block_rows(config: AccelConfig, m: int, n: int) -> int:
    """Rows of A kept resident per M-block by the activation-reuse schedule, or 0 to use the
    plain one: weight-stationary, groups of at least 3 N-tiles (see `_ws_reuse_block`), and
    blocks of at least 2R + C - 1 rows (so back-to-back tiles hide the array's latency) whose
    group of N-tiles fits the accumulator memory twice (one group computes while the previous
    one is stored)."""
    group = _reuse_group(config, n)
    if config.dataflow is not Dataflow.WS or group < 3:
        return 0
    act_bank, wgt_bank = bank_rows(config)
    if config.rows > wgt_bank:
        return 0
    rows = min(m, act_bank, config.acc_rows // (2 * group), MAX_ROWS)
    return rows if rows >= min(m, 2 * config.rows + config.cols - 1) else 0


def _ws_reuse_block(builder, addresses, block, shape, tiles: list[int]) -> None:
    """One M-block with A resident: for each K-tile, A's slice is loaded once (into the next
    activation bank, ahead of time) and every N-tile's weight tile streams against it,
    accumulating into that N-tile's block of the accumulator memory.

    The slice of K-tile t + 1 is loaded between the last two weight loads of K-tile t. The
    weight load of step s waits for the MATMUL of step s - D (D = ``builder.depth`` weight
    buffers, at most the number of N-tiles minus 1), so when the prefetch starts every MATMUL
    up to step tJ + J - 2 - D >= tJ - 1 has finished: all of the slice before, which read the
    same activation bank (slices alternate banks across M-blocks too). A block's STORE follows
    its last MATMUL.
    """
    (a_addr, b_addr, c_addr), (m0, rows, block_rows), (_, n, k) = addresses, block, shape
    config = builder.config
    r, cols = config.rows, config.cols
    activations = builder._pools[0]
    blocks = [builder.allocate_block(block_rows) for _ in tiles]
    k_tiles = list(range(0, k, r))
    held = builder.slice_rows
    weight_slots = builder.weight_slots

    def load_slice(t: int) -> int:
        """Emit the load of K-slice t into the next bank; returns its first row."""
        bank = builder.slices_loaded % 2
        builder.slices_loaded += 1
        if held[bank] is not None:
            activations.free(held[bank])
        held[bank] = activations.allocate(rows, bank=bank)
        k0 = k_tiles[t]
        fields = {
            "dram_addr": a_addr + m0 * k + k0,
            "dram_stride": k,
            "rows": rows,
            "width": min(r, k - k0),
            "spad_row": held[bank],
        }
        builder.drafts.append(Draft(Op.LOAD_ACT, fields))
        return held[bank]

    slice_row = load_slice(0)
    for t, k0 in enumerate(k_tiles):
        depth = min(r, k - k0)
        next_row = slice_row
        for j, j0 in enumerate(tiles):
            if j == len(tiles) - 1 and t + 1 < len(k_tiles):
                next_row = load_slice(t + 1)  # prefetch the next K-slice
            width = min(cols, n - j0)
            wgt_row = weight_slots[len(builder._computes) % len(weight_slots)]
            weights = {
                "dram_addr": b_addr + k0 * n + j0,
                "dram_stride": n,
                "rows": depth,
                "width": width,
                "spad_row": wgt_row,
            }
            acc_row, reuses = blocks[j]
            fields = {"act_row": slice_row, "wgt_row": wgt_row, "rows": rows, "acc_row": acc_row}
            compute = Draft(Op.MATMUL, {**fields, "accumulate": t > 0})
            last = t == len(k_tiles) - 1
            load = Draft(Op.LOAD_WGT, weights)
            builder.step([load], compute, first=t == 0, last=last, reuses=reuses)
            if last:
                builder.store(
                    acc_row,
                    rows=rows,
                    dram_addr=c_addr + (m0 * n + j0) * 4,
                    dram_stride=n * 4,
                    int8=0,
                    width=width,
                )
        slice_row = next_row


def _matmul_block_steps(builder, addresses, block, shape, acc_row: int) -> None:
    """The steps of one block: per K-tile, its slice of A and of B, then one MATMUL.

    WS: rows m0.. of A (the K-tile's R bytes of each) and an R-row weight tile; the block's
    rows stream. OS: the K-tile's rows of A^T (columns m0.. of A) and of B; they stream.
    """
    (a_addr, b_addr, _), (m0, rows, j0, width), (m, n, k) = addresses, block, shape
    ws = builder.config.dataflow is Dataflow.WS
    k_tile = _k_tile(builder.config, k)
    for k0 in range(0, k, k_tile):
        depth = min(k_tile, k - k0)
        if ws:
            act = dict(dram_addr=a_addr + m0 * k + k0, dram_stride=k, rows=rows, width=depth)
        else:
            act = dict(dram_addr=a_addr + k0 * m + m0, dram_stride=m, rows=depth, width=rows)
        act_row, wgt_row = builder.operand_rows(act["rows"], k_tile if ws else depth)
        wgt = dict(dram_addr=b_addr + k0 * n + j0, dram_stride=n, rows=depth, width=width)
        loads = [
            Draft(Op.LOAD_ACT, {**act, "spad_row": act_row}),
            Draft(Op.LOAD_WGT, {**wgt, "spad_row": wgt_row}),
        ]
        fields = dict(act_row=act_row, wgt_row=wgt_row, rows=act["rows"], acc_row=acc_row)
        compute = Draft(Op.MATMUL, {**fields, "accumulate": k0 > 0})
        builder.step(loads, compute, first=k0 == 0, last=k0 + k_tile >= k)


@dataclass(frozen=True)
class GemmLayout:
    """Where `gemm_memory` put a GEMM in main memory (see the module doc).

    Attributes
    ----------
    config : AccelConfig. m, n, k : int, the shape.
    a_addr : int, A (WS) or A^T (OS). b_addr : int, B. c_addr : int, C.
    params_addr : int or None, the N parameter records (int8 output), None for int32 output.
    size : int, bytes of the memory image.
    """

    config: AccelConfig
    m: int
    n: int
    k: int
    a_addr: int
    b_addr: int
    c_addr: int
    params_addr: int | None
    size: int

    def schedule(self) -> list[Instruction]:
        """`gemm_schedule` for this layout."""
        return gemm_schedule(
            self.a_addr,
            self.b_addr,
            self.c_addr,
            self.m,
            self.n,
            self.k,
            self.config,
            requant=self.params_addr,
        )

    def result(self, memory: np.ndarray) -> np.ndarray:
        """C from a memory image: int8 M x N with requantization, else int32 M x N."""
        dtype = np.dtype(np.int32 if self.params_addr is None else np.int8).newbyteorder("<")
        count = self.m * self.n
        data = memory[self.c_addr : self.c_addr + count * dtype.itemsize]
        return data.view(dtype).reshape(self.m, self.n).astype(dtype.newbyteorder("="))


def gemm_layout(
    m: int, n: int, k: int, config: AccelConfig, *, requant: bool = False, align: int = 16
) -> GemmLayout:
    """Where `gemm_memory` puts an M x K by K x N GEMM: A (or A^T for OS), B, the N parameter
    records (int8 output, `requant`) and C, in that order, each region aligned to `align`.

    Raises
    ------
    TypeError, ValueError
        A shape below 1, a bad `align` or config.
    """
    config = require_config(config)
    m, n, k = (require_int(name, value, 1) for name, value in (("m", m), ("n", n), ("k", k)))
    align = require_int("align", align, 1)
    out_bytes = 1 if requant else 4
    sizes = [m * k, k * n] + ([n * PARAM_RECORD_BYTES] if requant else []) + [m * n * out_bytes]
    starts, size = place(sizes, align)
    params_addr = starts[2] if requant else None
    return GemmLayout(config, m, n, k, starts[0], starts[1], starts[-1], params_addr, size)


def gemm_memory(
    a: np.ndarray,
    b: np.ndarray,
    config: AccelConfig,
    *,
    bias: np.ndarray | None = None,
    params: RequantParams | None = None,
    align: int = 16,
) -> tuple[np.ndarray, GemmLayout]:
    """A main-memory image holding A (or A^T for OS), B, the parameter records and room for C.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 M x K and K x N.
    config : AccelConfig
        The hardware (its dataflow decides whether A is stored transposed).
    bias, params
        Requantize C to int8 with these (bias: int32 [N], zeros when omitted); without
        `params`, C is int32 and `bias` must be omitted.
    align : int
        Every region starts at a multiple of this many bytes (`gemm_layout`).

    Returns
    -------
    (uint8 memory image, GemmLayout)

    Raises
    ------
    TypeError, ValueError
        Operands that are not int8 matrices of matching shapes, a bias without params, a bad
        `align`.
    """
    config = require_config(config)
    a, b = require_gemm_operands(a, b)
    (m, k), n = a.shape, b.shape[1]
    if params is None and bias is not None:
        raise ValueError("bias needs params: the requantizer adds it, int32 output has none")
    layout = gemm_layout(m, n, k, config, requant=params is not None, align=align)
    memory = np.zeros(layout.size, np.uint8)
    a_image = a if config.dataflow is Dataflow.WS else a.T
    pieces = [(layout.a_addr, a_image), (layout.b_addr, b)]
    if params is not None:
        bias = np.zeros(n, np.int32) if bias is None else bias
        pieces.append((layout.params_addr, pack_param_records(bias, params)))
    for start, piece in pieces:
        flat = np.ascontiguousarray(piece).reshape(-1).view(np.uint8)
        memory[start : start + flat.size] = flat
    return memory, layout


def _k_tile(config: AccelConfig, k: int) -> int:
    """Rows of K one step covers: WS one weight tile (R), OS what a bank of both holds."""
    if config.dataflow is Dataflow.WS:
        return config.rows
    return min(k, *bank_rows(config), MAX_ROWS)


def matmul_steps(m: int, n: int, k: int, config: AccelConfig, *, requant: bool = False) -> int:
    """MATMUL instructions `gemm_schedule` emits for an M x K by K x N product: N-tiles x
    blocks x K-tiles (`requant`: int8 output, which never takes the activation-reuse path)."""
    block_rows = 0 if requant else _reuse_block_rows(config, m, n)
    block_rows = block_rows or _block_rows(config, m)
    blocks = math.ceil(n / config.cols) * math.ceil(m / block_rows)
    return blocks * math.ceil(k / _k_tile(config, k))
