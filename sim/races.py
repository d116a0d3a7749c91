"""Which instructions of a program may run at the same time and touch the same memory.

Instructions of different queues run concurrently unless something orders them. `Ordering`
computes exactly which pairs the ISA orders (i finishes before j starts):

- queue order: the instructions of one queue start in order and finish in order (a unit may
  overlap them, as the compute unit pipelines MATMULs; pairs within one queue are the unit's
  own business and never reported);
- FENCE: everything before a FENCE in program order, and everything after it;
- tokens: on each channel (queue pair and direction) the n-th pop starts after the n-th push
  finished (pops and pushes of one channel each happen in their queue's order, and the n-th
  pop needs n tokens), and the transitive closure of all three (vector clocks over the queues,
  computed by replaying the token protocol as `hdl.isa.check_program` does).

Dispatch adds no order (queues are taken to be unbounded, the adversarial case), so the
relation is sound: nothing is called ordered that a legal schedule could run the other way.
`find_races` then reports every pair of instructions in different queues that access
overlapping units of one memory (main-memory bytes, scratchpad or accumulator rows,
requantizer lanes), at least one of them writing, and that are not ordered either way. Each
instruction's accesses (`accesses`): LOAD_* read main memory and write their scratchpad rows or
lanes; MATMUL reads activation and weight rows (WS: R weight rows; OS: ``rows``) and writes its
accumulator rows (accumulating counts as writing); SPMM reads its nonzeros bytes and X rows and
writes the accumulator rows it produced in the run; STORE reads its accumulator rows (and lanes
0..``width``-1 when ``int8``) and writes its main-memory rows.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import PARAM_RECORD_BYTES, ErrorCode, Instruction, Op, ProgramError, Queue
from hdl.sparse import nonzero_beat_bytes

#: Memory names in `Region` and in race messages.
MAIN = "main memory"
ACTIVATIONS = "activation scratchpad"
WEIGHTS = "weight scratchpad"
ACCUMULATOR = "accumulator memory"
LANES = "requantizer lanes"
_MEMORIES = (MAIN, ACTIVATIONS, WEIGHTS, ACCUMULATOR, LANES)


@dataclass(frozen=True)
class Region:
    """Units of one memory: [start + r * stride, start + r * stride + length) for r < count.

    Units are bytes of main memory, rows of a scratchpad or of the accumulator memory, or
    requantizer lanes; `memory` is one of `MAIN`, `ACTIVATIONS`, `WEIGHTS`, `ACCUMULATOR`,
    `LANES`.
    """

    memory: str
    start: int
    count: int
    length: int
    stride: int = 0

    @property
    def bounds(self) -> tuple[int, int]:
        """[first unit, last unit + 1)."""
        return self.start, self.start + (self.count - 1) * self.stride + self.length

    def overlaps(self, other: Region) -> bool:
        """Whether the two regions share a unit (exact, also for interleaved strided rows)."""
        (lo, hi), (other_lo, other_hi) = self.bounds, other.bounds
        if self.memory != other.memory or hi <= other_lo or other_hi <= lo:
            return False
        starts = self.start + self.stride * np.arange(self.count)
        other_starts = other.start + other.stride * np.arange(other.count)
        # Starts are sorted and lengths equal, so the ends are sorted too: for each row of
        # `other`, the last row of `self` starting before its end reaches furthest.
        before = np.searchsorted(starts, other_starts + other.length)
        reach = np.where(before > 0, starts[np.maximum(before - 1, 0)] + self.length, lo)
        return bool(((before > 0) & (reach > other_starts)).any())

    def __str__(self) -> str:
        lo, hi = self.bounds
        if self.count == 1:
            return f"{self.memory} [{lo}, {hi})"
        return (
            f"{self.memory} {self.count} rows of {self.length} every {self.stride} in [{lo}, {hi})"
        )


def accesses(
    ins: Instruction, config: AccelConfig, spmm_rows: int = 0
) -> list[tuple[Region, bool]]:
    """(region, writes) for every memory `ins` reads or writes (see the module doc).

    `spmm_rows`: the accumulator rows an SPMM produces (known only when it runs).
    """
    f = ins.fields
    if ins.op in (Op.LOAD_ACT, Op.LOAD_WGT):
        target = ACTIVATIONS if ins.op is Op.LOAD_ACT else WEIGHTS
        source = Region(MAIN, f["dram_addr"], f["rows"], f["width"], f["dram_stride"])
        return [(source, False), (Region(target, f["spad_row"], 1, f["rows"]), True)]
    if ins.op is Op.LOAD_PARAMS:
        size = f["lanes"] * PARAM_RECORD_BYTES
        return [
            (Region(MAIN, f["dram_addr"], 1, size), False),
            (Region(LANES, 0, 1, f["lanes"]), True),
        ]
    if ins.op is Op.MATMUL:
        ws = config.dataflow is Dataflow.WS
        weight_rows, out_rows = (config.rows, f["rows"]) if ws else (f["rows"], config.rows)
        return [
            (Region(ACTIVATIONS, f["act_row"], 1, f["rows"]), False),
            (Region(WEIGHTS, f["wgt_row"], 1, weight_rows), False),
            (Region(ACCUMULATOR, f["acc_row"], 1, out_rows), True),
        ]
    if ins.op is Op.SPMM:
        size = f["nz_beats"] * nonzero_beat_bytes(config)
        found = [
            (Region(MAIN, f["nz_addr"], 1, size), False),
            (Region(WEIGHTS, f["x_row"], 1, f["k"]), False),
        ]
        if spmm_rows:
            found.append((Region(ACCUMULATOR, f["acc_row"], 1, spmm_rows), True))
        return found
    if ins.op is Op.STORE:
        row_bytes = f["width"] * (1 if f["int8"] else 4)
        found = [(Region(ACCUMULATOR, f["acc_row"], 1, f["rows"]), False)]
        if f["int8"]:
            found.append((Region(LANES, 0, 1, f["width"]), False))
        found.append((Region(MAIN, f["dram_addr"], f["rows"], row_bytes, f["dram_stride"]), True))
        return found
    return []  # FENCE


class Ordering:
    """Which instructions of a program the ISA runs one after the other (see the module doc).

    Parameters
    ----------
    program : list of Instruction
        A program whose token protocol completes (as `hdl.isa.check_program` checks).

    Attributes
    ----------
    queue : list
        Each instruction's `hdl.isa.Queue` (None for FENCE).
    position : list of int
        Each instruction's position in its queue (FENCE: its program index).
    members : dict
        Each `hdl.isa.Queue`'s instructions (program indices) in queue order.
    start : list of tuple of int
        Vector clock per instruction: ``start[j][q]`` instructions of queue q (the first ones,
        in queue order) are guaranteed to have finished when j starts.

    Raises
    ------
    ProgramError
        DEADLOCK: the replay stalls with instructions left.
    """

    def __init__(self, program: list[Instruction]):
        self.queue = [ins.queue for ins in program]
        self.position = list(range(len(program)))
        self.start: list[tuple[int, ...]] = [()] * len(program)
        self.members: dict[Queue, list[int]] = {q: [] for q in Queue}
        self._replay(program)
        # _clocks[other][q]: start[.][q] of queue `other`'s instructions, non-decreasing.
        self._clocks = {
            other: {q: [self.start[i][q] for i in members] for q in Queue}
            for other, members in self.members.items()
        }

    def _replay(self, program: list[Instruction]) -> None:
        """Replay dispatch and the queues with instant instructions, merging clocks."""
        zero = (0,) * len(Queue)
        floor = zero  # what a FENCE guarantees to everything dispatched after it
        floors: dict[int, tuple[int, ...]] = {}
        waiting: dict[Queue, deque[int]] = {q: deque() for q in Queue}
        last_done = dict.fromkeys(Queue, zero)
        channels: dict[tuple[Queue, Queue], deque[tuple[int, ...]]] = {}
        dispatched = 0
        while True:
            while dispatched < len(program):
                queue = self.queue[dispatched]
                if queue is None:
                    if any(waiting.values()):
                        break
                    floor = tuple(len(self.members[q]) for q in Queue)
                    self.start[dispatched] = floor
                else:
                    self.position[dispatched] = len(self.members[queue])
                    self.members[queue].append(dispatched)
                    floors[dispatched] = floor
                    waiting[queue].append(dispatched)
                dispatched += 1
            progressed = False
            for queue, heads in waiting.items():
                while heads and all(
                    channels.get(e) for e in _channels(queue, program[heads[0]], "pop")
                ):
                    index = heads.popleft()
                    ins = program[index]
                    clocks = [floors[index], last_done[queue]]
                    clocks += [channels[e].popleft() for e in _channels(queue, ins, "pop")]
                    self.start[index] = tuple(max(c[q] for c in clocks) for q in Queue)
                    done = list(self.start[index])
                    done[queue] = self.position[index] + 1
                    last_done[queue] = tuple(done)
                    for edge in _channels(queue, ins, "push"):
                        channels.setdefault(edge, deque()).append(last_done[queue])
                    progressed = True
            if dispatched == len(program) and not any(waiting.values()):
                return
            if not progressed:
                stuck = min(heads[0] for heads in waiting.values() if heads)
                raise ProgramError(
                    dispatched,
                    ErrorCode.DEADLOCK,
                    f"deadlock: instruction {stuck} waits for a token nobody pushes",
                    stuck=stuck,
                )

    def before(self, i: int, j: int) -> bool:
        """Whether instruction i is guaranteed to finish before instruction j starts."""
        if self.queue[i] is None or self.queue[j] is None:
            return i < j  # a FENCE orders everything around it in program order
        return self.start[j][self.queue[i]] > self.position[i]

    def window(self, j: int, other: Queue) -> range:
        """Positions in queue `other` of the instructions that may run while j runs."""
        queue = self.queue[j]
        first = self.start[j][other]
        stop = bisect.bisect_right(self._clocks[other][queue], self.position[j])
        return range(first, max(first, stop))


def _channels(queue: Queue, ins: Instruction, kind: str) -> list[tuple[Queue, Queue]]:
    """(from, to) token channels an instruction pops (`kind` "pop") or pushes ("push")."""
    edges = []
    for side, step in (("prev", -1), ("next", 1)):
        if ins.deps[f"{kind}_{side}"]:
            other = Queue(queue + step)
            edges.append((other, queue) if kind == "pop" else (queue, other))
    return edges


@dataclass(frozen=True, order=True)
class Race:
    """Instructions `first` < `second` of different queues, unordered, touching `memory`:
    `first_region` and `second_region` overlap and at least one of them is written."""

    first: int
    second: int
    memory: str
    first_region: Region = field(compare=False)
    second_region: Region = field(compare=False)


class RaceError(ValueError):
    """A program whose result may depend on how its queues interleave.

    Attributes
    ----------
    races : list of Race
        Every racing pair, sorted.
    """

    def __init__(self, program: list[Instruction], races: list[Race]):
        race = races[0]
        a, b = program[race.first], program[race.second]
        super().__init__(
            f"instructions {race.first} ({a.op.name}: {race.first_region}) and {race.second} "
            f"({b.op.name}: {race.second_region}) overlap in the {race.memory}, one writing, "
            f"with no token, FENCE or queue order between them ({len(races)} racing pairs)"
        )
        self.races = races


class _AccessTable:
    """Every access of a list of instructions as flat arrays (one row per access)."""

    def __init__(self, regions: list[list[tuple[Region, bool]]], members: list[int]):
        rows = [(index, region, write) for index in members for region, write in regions[index]]
        self.owner = np.array([index for index, _, _ in rows], np.int64)
        self.region = [region for _, region, _ in rows]
        self.memory = np.array([_MEMORIES.index(r.memory) for r in self.region], np.int64)
        self.write = np.array([write for _, _, write in rows], bool)
        bounds = np.array([r.bounds for r in self.region], np.int64).reshape(-1, 2)
        self.lo, self.hi = bounds[:, 0], bounds[:, 1]
        counts = [len(regions[index]) for index in members]
        self.offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def rows(self, positions: range) -> slice:
        """The rows of the instructions at `positions` (a range of `members` positions)."""
        return slice(int(self.offset[positions.start]), int(self.offset[positions.stop]))

    def conflicts(self, mine: slice, other: _AccessTable, theirs: slice) -> list[tuple[int, int]]:
        """(row here, row in `other`) of every pair of accesses that overlap, one writing."""
        candidates = (
            (self.memory[mine, None] == other.memory[theirs])
            & (self.write[mine, None] | other.write[theirs])
            & (self.lo[mine, None] < other.hi[theirs])
            & (other.lo[theirs] < self.hi[mine, None])
        )
        pairs = zip(*np.nonzero(candidates), strict=True)
        found = [(mine.start + int(a), theirs.start + int(b)) for a, b in pairs]
        return [(a, b) for a, b in found if self.region[a].overlaps(other.region[b])]


def find_races(
    program: list[Instruction], config: AccelConfig, spmm_rows: dict[int, int] | None = None
) -> list[Race]:
    """Every unordered pair of instructions with conflicting accesses in a checked program.

    Parameters
    ----------
    program : list of Instruction
        A program that passes `hdl.isa.check_program`.
    config : AccelConfig
        The hardware (array size and dataflow decide MATMUL's rows).
    spmm_rows : dict, optional
        Program index of each SPMM -> accumulator rows it wrote (`IsaModel.run` records them);
        an SPMM not listed writes none.

    Returns
    -------
    list of Race
        Sorted; one per pair of instructions and memory.
    """
    spmm_rows = spmm_rows or {}
    order = Ordering(program)
    regions = [accesses(ins, config, spmm_rows.get(i, 0)) for i, ins in enumerate(program)]
    tables = {q: _AccessTable(regions, order.members[q]) for q in Queue}
    races = set()
    for j, ins in enumerate(program):
        for other in _later_queues(ins.queue):
            window = order.window(j, other)
            if not window:
                continue
            mine = tables[ins.queue]
            own = mine.rows(range(order.position[j], order.position[j] + 1))
            theirs = tables[other]
            for a, b in mine.conflicts(own, theirs, theirs.rows(window)):
                i = int(theirs.owner[b])
                first, second = (i, theirs.region[b]), (j, mine.region[a])
                pair = sorted([first, second], key=lambda access: access[0])
                (first, first_region), (second, second_region) = pair
                races.add(Race(first, second, mine.region[a].memory, first_region, second_region))
    return sorted(races)


def _later_queues(queue: Queue | None) -> Iterable[Queue]:
    """Queues after `queue` (each unordered pair is looked at once, from its lower queue)."""
    return [] if queue is None else [q for q in Queue if q > queue]
