"""Tiled, double-buffered accelerator programs: dense C = A @ B (MATMUL), sparse Y = W @ X (SPMM).

`gemm_schedule` returns the instruction list computing C = A @ B for int8 A (M x K) and B
(K x N) already in main memory, C written as int32 or, through the requantizer, as int8. It
works for both dataflows, any shape (ragged tiles load ``width`` < the row width and fewer
rows; the loads zero-fill the rest) and any configuration whose scratchpad banks hold one
tile. `gemm_memory` lays the operands out in a main-memory image the way the schedule expects
and returns a `GemmLayout` that schedules and reads back the result. `spmm_memory` and
`spmm_schedule` do the same for a sparse W (CSR nonzeros packed into ``nonzeros`` beats) times
dense X. docs/schedule.md describes the scheme; in short:

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
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import MAX_ROWS, PARAM_RECORD_BYTES, STRIDE_BITS, Geometry, Instruction, Op
from sim.alloc import RowPool
from sim.golden.checks import require_gemm_operands
from sim.golden.gemm import MAX_K_NO_OVERFLOW
from sim.golden.param_records import pack_param_records
from sim.golden.requant import RequantParams
from sim.golden.sparse import csr_compress
from sim.sparse_program import nonzero_beats

#: Weight buffers the activation-reuse schedule rotates through (steps of loads in flight).
REUSE_DEPTH = 8
#: Most N-tiles that share one resident slice of A (their blocks fill the accumulator).
REUSE_GROUP = 8


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")
    return int(value)


def _require_config(config: object) -> AccelConfig:
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    return config


@dataclass
class _Draft:
    """An instruction under construction: its token flags are settled when the program ends."""

    op: Op
    fields: dict[str, int]
    flags: dict[str, bool] = field(default_factory=dict)


class _ProgramBuilder:
    """Emits steps (loads, then one compute instruction) and block stores with the token
    pattern of the module doc, placing operands and accumulator blocks with `RowPool`s."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.drafts: list[_Draft] = []
        self._pools = (RowPool.activations(config), RowPool.weights(config))
        self._acc = RowPool.accumulator(config)
        self._held: list[list[tuple[RowPool, int]]] = [[], []]  # per bank: its step's rows
        self._computes: list[_Draft] = []  # one per step
        self._stored: deque[tuple[int, _Draft]] = deque()  # (acc row, STORE) still holding rows
        self._reuses_stored_rows = False  # the next block's first compute must pop a STORE token
        # Resident activation slices (activation-reuse schedule): how many were loaded, and
        # the first row each bank holds (slice g goes to bank g % 2, across M-blocks).
        self.slices_loaded = 0
        self.slice_rows: list[int | None] = [None, None]
        #: Steps whose operands may be in flight at once: step s's first load waits for the
        #: MATMUL of step s - depth to release its buffer (2: the two banks).
        self.depth = 2

    def load_params(self, dram_addr: int, lanes: int, *, fence: bool) -> None:
        """LOAD_PARAMS of `lanes` records, behind a FENCE when earlier stores used old ones."""
        if fence:
            self.drafts.append(_Draft(Op.FENCE, {}))
        self.drafts.append(_Draft(Op.LOAD_PARAMS, {"dram_addr": dram_addr, "lanes": lanes}))

    def begin_block(self, rows: int) -> int:
        """First accumulator row of a new block of `rows` rows (every block of a program has
        the same size, so freeing the oldest stored block always makes room)."""
        try:
            return self._acc.allocate(rows)
        except ValueError:
            start, store = self._stored.popleft()
            self._acc.free(start)
            store.flags["push_prev"] = True
            self._reuses_stored_rows = True
            return self._acc.allocate(rows)

    def allocate_block(self, rows: int) -> tuple[int, bool]:
        """Like `begin_block`, for a caller that opens several blocks at once: returns the first
        row and whether the block reuses a stored block's rows (its first MATMUL must then pop
        the STORE's token, `step(..., reuses=...)`)."""
        try:
            return self._acc.allocate(rows), False
        except ValueError:
            start, store = self._stored.popleft()
            self._acc.free(start)
            store.flags["push_prev"] = True
            return self._acc.allocate(rows), True

    def operand_rows(self, act_rows: int, wgt_rows: int) -> tuple[int, int]:
        """First activation and weight rows for the next step's operands, in bank step % 2
        (the step two before, in the same bank, gives its rows up; 0 rows: none, row 0)."""
        bank = len(self._computes) % 2
        for pool, start in self._held[bank]:
            pool.free(start)
        wanted = zip(self._pools, (act_rows, wgt_rows), strict=True)
        self._held[bank] = [(pool, pool.allocate(n, bank=bank)) for pool, n in wanted if n]
        starts = iter(start for _, start in self._held[bank])
        return tuple(next(starts) if n else 0 for n in (act_rows, wgt_rows))

    def step(
        self,
        loads: list[_Draft],
        compute: _Draft,
        *,
        first: bool,
        last: bool,
        reuses: bool | None = None,
    ) -> None:
        """Append one step; `first` / `last`: the step opens / closes its block; `reuses`: the
        block's rows were a stored block's (default: as `begin_block` last said)."""
        loads[0].flags["pop_next"] = len(self._computes) >= self.depth  # its buffer is free
        loads[-1].flags["push_next"] = True  # operands ready
        if reuses is None:
            reuses = self._reuses_stored_rows
        compute.flags.update(
            pop_prev=True,
            pop_next=first and reuses,
            push_prev=True,  # bank released; the last two are cleared in `finish`
            push_next=last,  # block done: the STORE may drain it
        )
        if first:
            self._reuses_stored_rows = False
        self.drafts += [*loads, compute]
        self._computes.append(compute)

    def store(self, acc_row: int, **fields: int) -> None:
        """STORE of the block at `acc_row`, after its last compute instruction."""
        draft = _Draft(Op.STORE, {"acc_row": acc_row, **fields}, {"pop_prev": True})
        self.drafts.append(draft)
        self._stored.append((acc_row, draft))

    def finish(self) -> list[Instruction]:
        """The instructions, with no token pushed that nothing pops."""
        for compute in self._computes[-self.depth :]:
            compute.flags["push_prev"] = False
        return [Instruction(d.op, **d.fields, **d.flags) for d in self.drafts]


def _bank_rows(config: AccelConfig) -> tuple[int, int]:
    """Rows of one bank of the activation and of the weight scratchpad."""
    geometry = Geometry.of(config)
    return geometry.act_rows // 2, geometry.wgt_rows // 2


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
    config = _require_config(config)
    addresses = [
        _require_int(name, value, 0)
        for name, value in (("a_addr", a_addr), ("b_addr", b_addr), ("c_addr", c_addr))
    ]
    m, n, k = (_require_int(name, value, 1) for name, value in (("m", m), ("n", n), ("k", k)))
    if requant is not None:
        requant = _require_int("requant", requant, 0)
    if k > MAX_K_NO_OVERFLOW:
        raise ValueError(
            f"k must be at most {MAX_K_NO_OVERFLOW} (int32 accumulation of int8 products), "
            f"not {k!r}; split K and add the partial results in wider precision"
        )
    out_bytes = 4 if requant is None else 1
    a_stride = k if config.dataflow is Dataflow.WS else m
    _check_strides({"A": a_stride, "B": n, "C": n * out_bytes})
    block_rows = _block_rows(config, m)  # also refuses configurations without room for a tile
    builder = _ProgramBuilder(config)
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


def _check_strides(strides: dict[str, int]) -> None:
    """`ValueError` naming the first matrix whose row stride does not fit ``dram_stride``."""
    for name, stride in strides.items():
        if stride >= 1 << STRIDE_BITS:
            raise ValueError(
                f"{name}'s row stride must be below 2**{STRIDE_BITS} bytes (dram_stride), "
                f"not {stride!r}"
            )


def _block_rows(config: AccelConfig, m: int) -> int:
    """Output rows of one block: WS ``M_t`` (an activation bank, half the accumulator), OS R.

    Raises
    ------
    ValueError
        The configuration cannot hold one step's tile in a bank, or one OS block.
    """
    act_bank, wgt_bank = _bank_rows(config)
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
    act_bank, wgt_bank = _bank_rows(config)
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
        builder.drafts.append(_Draft(Op.LOAD_ACT, fields))
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
            compute = _Draft(Op.MATMUL, {**fields, "accumulate": t > 0})
            last = t == len(k_tiles) - 1
            load = _Draft(Op.LOAD_WGT, weights)
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
            _Draft(Op.LOAD_ACT, {**act, "spad_row": act_row}),
            _Draft(Op.LOAD_WGT, {**wgt, "spad_row": wgt_row}),
        ]
        fields = dict(act_row=act_row, wgt_row=wgt_row, rows=act["rows"], acc_row=acc_row)
        compute = _Draft(Op.MATMUL, {**fields, "accumulate": k0 > 0})
        builder.step(loads, compute, first=k0 == 0, last=k0 + k_tile >= k)


def _place(sizes: list[int], align: int) -> tuple[list[int], int]:
    """Start address of each region of `sizes` bytes, one after the other, and the end."""
    starts, end = [], 0
    for size in sizes:
        start = -(-end // align) * align
        starts.append(start)
        end = start + size
    return starts, -(-end // align) * align


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
    config = _require_config(config)
    m, n, k = (_require_int(name, value, 1) for name, value in (("m", m), ("n", n), ("k", k)))
    align = _require_int("align", align, 1)
    out_bytes = 1 if requant else 4
    sizes = [m * k, k * n] + ([n * PARAM_RECORD_BYTES] if requant else []) + [m * n * out_bytes]
    starts, size = _place(sizes, align)
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
    config = _require_config(config)
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


# --------------------------------------------------------------------------------------------------
# Sparse W @ X through SPMM


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
    config = _require_config(config)
    config.require_sparse_engine("spmm_memory")
    w, x = require_gemm_operands(w, x, ("w", "x"))
    align = _require_int("align", align, 1)
    (n, k), m = w.shape, x.shape[1]
    group_rows = min(n, config.acc_rows // 2, MAX_ROWS)
    depth = min(config.sparse_depth, _bank_rows(config)[1], MAX_ROWS)
    if depth < 1:
        raise ValueError(f"spad_bytes = {config.spad_bytes} leaves weight banks without rows")
    groups = tuple((r0, min(group_rows, n - r0)) for r0 in range(0, n, group_rows))
    chunks = tuple((k0, min(depth, k - k0)) for k0 in range(0, k, depth))
    beats = [
        [nonzero_beats(csr_compress(w[r0 : r0 + rows]), k0, k0 + kc, config) for k0, kc in chunks]
        for r0, rows in groups
    ]
    flat = [x.reshape(-1)] + [b.astype("<u4").view(np.uint8).reshape(-1) for g in beats for b in g]
    starts, end = _place([piece.size for piece in flat] + [4 * n * m], align)
    memory = np.zeros(end, np.uint8)
    for start, piece in zip(starts[:-1], flat, strict=True):
        memory[start : start + piece.size] = piece.view(np.uint8)
    addresses = iter(starts[1:-1])
    nonzeros = tuple(tuple((next(addresses), b.shape[0]) for b in g) for g in beats)
    layout = SpmmLayout(config, n, k, m, starts[0], starts[-1], groups, chunks, nonzeros, end)
    return memory, layout


def spmm_schedule(layout: SpmmLayout) -> list[Instruction]:
    """The program computing Y = W @ X for a `spmm_memory` layout, int32 output.

    For each column block of C columns of X, for each row group of W: one accumulator block;
    per K-chunk one step (LOAD_WGT of the chunk's rows of X into bank step % 2, one SPMM,
    accumulating after the first chunk); then one STORE. Tokens as for `gemm_schedule`.

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
    _check_strides({"X": layout.m, "Y": 4 * layout.m})
    builder = _ProgramBuilder(config)
    block_rows = max(rows for _, rows in layout.row_groups)
    for j0 in range(0, layout.m, config.cols):
        width = min(config.cols, layout.m - j0)
        for (r0, rows), nonzeros in zip(layout.row_groups, layout.nonzeros, strict=True):
            acc_row = builder.begin_block(block_rows)
            _spmm_block_steps(builder, layout, nonzeros, (j0, width), acc_row)
            builder.store(
                acc_row,
                rows=rows,
                dram_addr=layout.y_addr + 4 * (r0 * layout.m + j0),
                dram_stride=4 * layout.m,
                int8=0,
                width=width,
            )
    return builder.finish()


def _spmm_block_steps(builder, layout: SpmmLayout, nonzeros, columns, acc_row: int) -> None:
    """SPMM steps of one block: per K-chunk, its rows of X's column block, one SPMM."""
    j0, width = columns
    last = len(layout.chunks) - 1
    for c, ((k0, depth), (nz_addr, beats)) in enumerate(zip(layout.chunks, nonzeros, strict=True)):
        _, x_row = builder.operand_rows(0, depth)
        x_addr = layout.x_addr + k0 * layout.m + j0
        load = _Draft(
            Op.LOAD_WGT,
            dict(dram_addr=x_addr, dram_stride=layout.m, rows=depth, spad_row=x_row, width=width),
        )
        fields = dict(nz_addr=nz_addr, nz_beats=beats, x_row=x_row, k=depth, acc_row=acc_row)
        compute = _Draft(Op.SPMM, {**fields, "accumulate": c > 0})
        builder.step([load], compute, first=c == 0, last=c == last)


def _k_tile(config: AccelConfig, k: int) -> int:
    """Rows of K one step covers: WS one weight tile (R), OS what a bank of both holds."""
    if config.dataflow is Dataflow.WS:
        return config.rows
    return min(k, *_bank_rows(config), MAX_ROWS)


def matmul_steps(m: int, n: int, k: int, config: AccelConfig, *, requant: bool = False) -> int:
    """MATMUL instructions `gemm_schedule` emits for an M x K by K x N product: N-tiles x
    blocks x K-tiles (`requant`: int8 output, which never takes the activation-reuse path)."""
    block_rows = 0 if requant else _reuse_block_rows(config, m, n)
    block_rows = block_rows or _block_rows(config, m)
    blocks = math.ceil(n / config.cols) * math.ceil(m / block_rows)
    return blocks * math.ceil(k / _k_tile(config, k))
