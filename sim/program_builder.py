"""Build accelerator programs step by step with the double-buffered token pattern.

`ProgramBuilder` emits *steps* (the loads of one step's operands, then one compute instruction,
MATMUL or SPMM) and *block* STOREs, placing the operands in scratchpad bank step % 2 and the
accumulator blocks with `sim.alloc.RowPool`s, and sets every instruction's dependency-token
flags: a step's last load pushes a token to compute and its compute pops it; the compute pushes
one back when done with its bank and the first load two steps later pops it; a block's last
compute pushes a token to its STORE; when the accumulator is full, a new block reuses the rows
of the oldest stored block, whose STORE then pushes a token that the block's first compute pops.
`finish` returns the `hdl.isa.Instruction` list with no token pushed that nothing pops. The
schedules of `sim.schedule` (dense GEMM) and `sim.spmm_schedule` (sparse W @ X) are written on
it; docs/schedule.md describes the scheme.

The small helpers beside it are shared by both schedules: argument checks, the rows of one
scratchpad bank, the ``dram_stride`` bound and the placement of regions in main memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import STRIDE_BITS, Geometry, Instruction, Op
from sim.alloc import RowPool


def require_int(name: str, value: object, minimum: int) -> int:
    """`value` as an int, or a `TypeError` / `ValueError` naming `name` (below `minimum`)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")
    return int(value)


def require_config(config: object) -> AccelConfig:
    """`config`, or a `TypeError` if it is not an `AccelConfig`."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    return config


@dataclass
class Draft:
    """An instruction under construction: its token flags are settled when the program ends."""

    op: Op
    fields: dict[str, int]
    flags: dict[str, bool] = field(default_factory=dict)


class ProgramBuilder:
    """Emits steps (loads, then one compute instruction) and block stores with the token
    pattern of the module doc, placing operands and accumulator blocks with `RowPool`s."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.drafts: list[Draft] = []
        self._pools = (RowPool.activations(config), RowPool.weights(config))
        self._acc = RowPool.accumulator(config)
        self._held: list[list[tuple[RowPool, int]]] = [[], []]  # per bank: its step's rows
        self._computes: list[Draft] = []  # one per step
        self._stored: deque[tuple[int, Draft]] = deque()  # (acc row, STORE) still holding rows
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
            self.drafts.append(Draft(Op.FENCE, {}))
        self.drafts.append(Draft(Op.LOAD_PARAMS, {"dram_addr": dram_addr, "lanes": lanes}))

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
        loads: list[Draft],
        compute: Draft,
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
        draft = Draft(Op.STORE, {"acc_row": acc_row, **fields}, {"pop_prev": True})
        self.drafts.append(draft)
        self._stored.append((acc_row, draft))

    def finish(self) -> list[Instruction]:
        """The instructions, with no token pushed that nothing pops."""
        for compute in self._computes[-self.depth :]:
            compute.flags["push_prev"] = False
        return [Instruction(d.op, **d.fields, **d.flags) for d in self.drafts]


def bank_rows(config: AccelConfig) -> tuple[int, int]:
    """Rows of one bank of the activation and of the weight scratchpad."""
    geometry = Geometry.of(config)
    return geometry.act_rows // 2, geometry.wgt_rows // 2


def check_strides(strides: dict[str, int]) -> None:
    """`ValueError` naming the first matrix whose row stride does not fit ``dram_stride``."""
    for name, stride in strides.items():
        if stride >= 1 << STRIDE_BITS:
            raise ValueError(
                f"{name}'s row stride must be below 2**{STRIDE_BITS} bytes (dram_stride), "
                f"not {stride!r}"
            )


def place(sizes: list[int], align: int) -> tuple[list[int], int]:
    """Start address of each region of `sizes` bytes, one after the other, and the end."""
    starts, end = [], 0
    for size in sizes:
        start = -(-end // align) * align
        starts.append(start)
        end = start + size
    return starts, -(-end // align) * align
