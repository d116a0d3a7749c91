"""Analytical performance model of the whole accelerator, for fast design-space exploration.

`program_estimate(program, config)` predicts the cycles `hdl.top.Accelerator` takes to run an
instruction program against a memory of ``config.mem_latency`` cycles and ``config.bus_bytes``
bytes per cycle (the native harness's memory model, docs/accelerator-harness.md), without
simulating a single cycle: it walks the program once, instruction by instruction, and gives each
its start and finish cycle from closed-form timings of the unit that runs it, in the order the
hardware's queues, dependency tokens and shared memory channels allow. `gemm_estimate` and
`spmm_estimate` do so for the programs `sim.schedule` makes. The cost is about 30 us per
instruction (a 512^3 GEMM's 17,664 instructions in 0.6 s) and no Verilator build per design.

What is modelled (docs/perf-model.md gives the rules and their constants):

- the dispatcher: one word per cycle, in order, two cycles after it was offered (the two
  check stages), stalling while the target queue (`QUEUE_DEPTH`) is full; a FENCE waits for every
  earlier instruction to finish;
- dependency tokens: an instruction that pops a token starts after the matching push's
  instruction has finished (the n-th pop of a channel takes the n-th push);
- loads: one row request per cycle, the next load once the previous has issued its requests, up
  to `QUEUE_DEPTH` loads and `hdl.top.outstanding_reads` rows in flight; their words share the
  read channel, served in request order at ``bytes_per_cycle`` after ``latency`` cycles; a
  store's or SPMM's request takes the request channel from a load for a cycle;
- MATMUL, weight-stationary: the array's recurrence of `sim.cycles.array_cycles` across
  commands (weight tile i loads into the free bank, its M rows stream after the previous tile's),
  up to four commands in the engine; output-stationary: a tile every max(K, R) cycles;
- SPMM: runs alone once no MATMUL is in flight: its X block (k rows) loads, then its nonzeros
  beats stream one per cycle or as fast as the read channel delivers them (until the X block is
  in, the nonzeros hold the read channel);
- STORE: one row per (words + 2) cycles (the request, a cycle, the words), through the
  requantizer for int8: its `hdl.requant.LATENCY` plus ``requant_chunks - 1`` cycles (a row
  enters in C / L chunks, at most 3, so it never slows the rows down).

Measured against the gateware (docs/perf-model.md, docs/performance.md): GEMMs within 3 % (most
to the cycle), sparse products within about 5 % (the model serves an SPMM's nonzeros and a load
running beside it one after the other; the hardware interleaves them word by word).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import PARAM_RECORD_BYTES, Instruction, NzCache, Op, Queue
from hdl.requant import LATENCY as REQUANT_LATENCY
from hdl.sparse import LATENCY as SPARSE_LATENCY
from hdl.sparse import nonzero_beat_bytes
from hdl.spmm_engine import NONZERO_READS
from hdl.top import QUEUE_DEPTH, outstanding_reads
from sim.schedule import gemm_layout
from sim.spmm_schedule import spmm_memory, spmm_schedule

__all__ = ["PerfEstimate", "gemm_estimate", "program_estimate", "spmm_estimate"]

#: MATMUL commands the engine holds at once (`hdl.matmul_engine.QUEUE_DEPTH`).
ENGINE_DEPTH = 4

# Fixed pipeline delays, in cycles, of the gateware's registers between the events the model
# times (each is the count of registers on that path in hdl/top.py and the blocks it wires).
_QUEUE_DELAY = 2  # a word dispatched in cycle t can start from its queue in cycle t + 2
_CHECK_STAGE = 2.0  # word i, offered in cycle i, passes two check registers, then dispatches
_LOAD_REQUEST = 1  # the first row request of a load started in cycle t goes out in t + 1
_WRITE_ROW = 1  # a loaded row is written in the cycle after its last word
_TOKEN = 1  # a token pushed in cycle t can be popped in cycle t + 1
_ENGINE_WEIGHTS = 4  # MATMUL start -> its first weight row reaches the array
_ENGINE_ACTS = 4  # MATMUL start -> its first activation row could reach the array
_SPMM_X = 2  # SPMM start + k -> its first nonzeros beat can enter the sparse engine
_SPMM_REQUEST = 2  # SPMM start -> its first nonzeros request
_STORE_FIRST = 3  # STORE start -> its first write request
_IDLE = 1  # the last instruction finishes in cycle t: idle (the run's end) in t + 1


@dataclass(frozen=True)
class PerfEstimate:
    """What `program_estimate` predicts for one program.

    Attributes
    ----------
    cycles : int
        Cycles from reset to idle, as `sim.drivers.accel_results.AccelRun.cycles` counts them.
    macs : int
        MAC slots the ``macs`` counter counts for the MATMULs (rows x R x C each); SPMMs are
        added by `spmm_estimate` (the program alone does not say how many nonzeros they hold).
    bytes_read, bytes_written : int
        Bytes the memory port moves: whole bus words read, strobed bytes written.
    compute_cycles : int
        Cycles the array (or sparse engine) must stream: the lower bound set by compute.
    read_cycles, write_cycles : int
        Cycles the read and write data channels are busy at the configured bandwidth.
    instructions : int
        Program length.
    """

    cycles: int
    macs: int
    bytes_read: int
    bytes_written: int
    compute_cycles: int
    read_cycles: int
    write_cycles: int
    instructions: int

    def counters(self) -> dict[str, int]:
        """The hardware counters (`hdl.top_ports.COUNTERS`) the model predicts, by name (the
        others need a cycle simulation)."""
        return {
            "cycles": self.cycles,
            "macs": self.macs,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "instructions": self.instructions,
        }

    @property
    def bound(self) -> str:
        """The busiest resource: ``"compute"``, ``"read"`` or ``"write"`` bandwidth, or
        ``"latency"`` when none of them fills half the cycles."""
        busiest = max(
            ("compute", self.compute_cycles),
            ("read", self.read_cycles),
            ("write", self.write_cycles),
            key=lambda item: item[1],
        )
        return busiest[0] if 2 * busiest[1] >= self.cycles else "latency"


def _row_words(address: int, stride: int, rows: int, width: int, bus: int) -> int:
    """Bus words the bursts of `rows` rows of `width` bytes at `address` + r * `stride` span."""
    if stride % bus == 0 or rows == 1:  # every row at the same offset in its word
        return rows * ((address % bus + width - 1) // bus + 1)
    offsets = (address + stride * np.arange(rows, dtype=np.int64)) % bus
    return int(((offsets + width - 1) // bus + 1).sum())


class _Channel:
    """A data channel of the memory: words in order, one every `interval` cycles at most."""

    def __init__(self, interval: float):
        self.interval = interval
        self.free = 0.0  # earliest cycle of the next word
        self.busy = 0.0  # cycles spent moving words

    def transfer(self, earliest: float, words: int) -> float:
        """Move `words` words, the first no earlier than `earliest`; the last one's cycle."""
        last = max(earliest, self.free) + (words - 1) * self.interval
        self.free = last + self.interval
        self.busy += words * self.interval
        return last


class _RequestWindow:
    """A DMA's limit of `depth` rows in flight: the cycle of each row request."""

    def __init__(self, depth: int, latency: int):
        self.depth, self.turnaround = depth, latency + 2
        self.recent: deque[float] = deque(maxlen=depth)  # the last `depth` requests' cycles

    def issue(self, first: float, rows: int) -> float:
        """Request `rows` rows, one per cycle from `first` while fewer than `depth` are in
        flight; the last request's cycle."""
        recent = self.recent
        if self.turnaround <= self.depth:  # never throttled: the closed form
            last = first + rows - 1
            recent.extend(first + i for i in range(max(0, rows - self.depth), rows))
            return last
        cycle = first - 1
        for _ in range(rows):
            cycle = cycle + 1
            if len(recent) == self.depth:
                cycle = max(cycle, recent[0] + self.turnaround)
            recent.append(cycle)
        return cycle


class _Machine:
    """The accelerator's timing state while `program_estimate` walks a program."""

    def __init__(self, config: AccelConfig, latency: int, bytes_per_cycle: int):
        self.config = config
        self.latency = latency
        interval = config.bus_bytes / bytes_per_cycle
        # Rows the DMAs keep in flight; a row's entry frees the cycle after its data arrives,
        # latency + 1 cycles after its request, so a longer latency throttles the requests.
        self.load_window = _RequestWindow(outstanding_reads(config), latency)
        self.nonzero_window = _RequestWindow(NONZERO_READS, latency)
        self.reads = _Channel(interval)
        self.writes = _Channel(interval)
        self.load_free = 0.0  # the load DMA takes its next command
        self.load_dones: list[float] = []
        self.weights_free = 0.0  # WS: the engine's weight reader
        self.acts_free = 0.0  # WS: acts of the next tile may enter; OS: its operands
        self.bank_free = [0.0, 0.0]  # WS: the array's weight banks
        self.tile = 0
        self.matmul_dones: list[float] = []
        self.sparse_free = 0.0  # the compute unit after an SPMM
        self.store_free = 0.0
        # Request sequences (first cycle, period, count) competing on the request channel
        # (round-robin): those of stores and SPMMs delay loads' requests, those of loads and
        # stores delay SPMMs'.
        self.other_requests: list[tuple[float, float, int]] = []
        self.load_requests: list[tuple[float, float, int]] = []
        self.store_requests: list[tuple[float, float, int]] = []
        self.compute_cycles = 0
        self.macs = 0
        self.bytes_read = 0
        self.bytes_written = 0

    @staticmethod
    def _requests_taken(competing, first: float, rows: int) -> int:
        """Request cycles the `competing` sequences take from `rows` requests issued one per
        cycle from `first` (the arbiter grants one request per cycle)."""
        stolen = 0
        for _ in range(3):  # the window grows by what is stolen from it; settles quickly
            end = first + rows + stolen
            taken = 0
            for begin, period, count in competing:
                if begin < end and begin + period * count > first:
                    low = max(0, math.ceil((first - begin) / period))
                    high = min(count, math.ceil((end - begin) / period))
                    taken += max(0, high - low)
            if taken == stolen:
                break
            stolen = taken
        return stolen

    @staticmethod
    def _record(sequences, first: float, period: float, count: int) -> None:
        """Add a request sequence, forgetting those long finished."""
        if len(sequences) > 16:  # later queries start after `first`, give or take a few cycles
            sequences[:] = [r for r in sequences if r[0] + r[1] * r[2] > first - 256]
        sequences.append((first, period, count))

    def free(self, instruction: Instruction) -> float:
        """Earliest cycle the unit that runs `instruction` can take it."""
        op = instruction.op
        if op in (Op.LOAD_ACT, Op.LOAD_WGT, Op.LOAD_PARAMS):
            # The DMA takes a load once the previous one has issued its requests, and at most
            # QUEUE_DEPTH loads are in flight (the FIFO of their tokens to push).
            full = self.load_dones[-QUEUE_DEPTH] + 1 if len(self.load_dones) >= QUEUE_DEPTH else 0
            return max(self.load_free, full)
        if op is Op.MATMUL:
            engine = (
                self.matmul_dones[-ENGINE_DEPTH] + 1
                if len(self.matmul_dones) >= ENGINE_DEPTH
                else 0
            )
            return max(self.sparse_free, engine)
        if op is Op.SPMM:  # alone: after every MATMUL in flight
            in_flight = self.matmul_dones[-1] + 1 if self.matmul_dones else 0.0
            return max(self.sparse_free, in_flight)
        return self.store_free

    # Each method takes the earliest start the queue, the tokens and the unit allow (`free`)
    # and returns the (start, finish) cycles of the instruction.
    def load(self, instruction: Instruction, earliest: float) -> tuple[float, float]:
        bus = self.config.bus_bytes
        if instruction.op is Op.LOAD_PARAMS:
            rows, stride, width = instruction.lanes, PARAM_RECORD_BYTES, PARAM_RECORD_BYTES
        else:
            rows, stride, width = instruction.rows, instruction.dram_stride, instruction.width
        address = instruction.dram_addr
        start = earliest
        request = start + _LOAD_REQUEST
        # One row request per cycle, but a store's row request wins the shared request channel.
        stolen = self._requests_taken(self.other_requests, request, rows)
        last_request = self.load_window.issue(request, rows) + stolen
        self._record(self.load_requests, request, (last_request - request + 1) / rows, rows)
        self.load_free = last_request + 1
        words = _row_words(address, stride, rows, width, bus)
        self.bytes_read += words * bus
        last = self.reads.transfer(request + self.latency + 1, words)
        last = max(last, last_request + self.latency + 1)
        self.reads.free = max(self.reads.free, last + self.reads.interval)
        done = last + _WRITE_ROW
        self.load_dones.append(done)
        return start, done

    def matmul(self, instruction: Instruction, earliest: float) -> tuple[float, float]:
        config = self.config
        rows, cols = config.rows, config.cols
        start = earliest
        m = instruction.rows
        self.macs += m * rows * cols
        self.compute_cycles += m
        if config.dataflow is Dataflow.WS:
            bank = self.tile % 2
            weights = max(start + _ENGINE_WEIGHTS, self.weights_free, self.bank_free[bank])
            self.weights_free = weights + rows
            acts = max(start + _ENGINE_ACTS, self.acts_free, weights + rows)
            self.acts_free = acts + m
            self.bank_free[bank] = acts + m + rows + cols - 1
            done = acts + m + rows + cols  # the last row written as it leaves
        else:
            acts = max(start + _ENGINE_ACTS, self.acts_free)
            self.acts_free = acts + max(m, rows)
            done = acts + m + 2 * rows + cols
        self.tile += 1
        self.matmul_dones.append(done)
        return start, done

    def spmm(self, instruction: Instruction, earliest: float) -> tuple[float, float]:
        config, bus = self.config, self.config.bus_bytes
        start = earliest
        beat_bytes = nonzero_beat_bytes(config)
        beats = instruction.nz_beats
        if instruction.nz_cache == NzCache.REPLAY:  # from the cache, a beat a cycle, no memory
            entered = start + _SPMM_X + instruction.k + beats - 1
            self.compute_cycles += instruction.k + beats
            done = entered + SPARSE_LATENCY
            self.sparse_free = done + 1
            return start, done
        words = _row_words(instruction.nz_addr, beat_bytes, beats, beat_bytes, bus)
        self.bytes_read += words * bus
        request = start + _SPMM_REQUEST
        competing = self.load_requests + self.store_requests
        stolen = self._requests_taken(competing, request, beats)
        last_request = self.nonzero_window.issue(request, beats) + stolen
        self._record(self.other_requests, request, (last_request - request + 1) / beats, beats)
        # The beats enter the sparse engine once its X block is in (k rows, one per cycle); the
        # load DMA holds one beat before that, so the rest of the words (and whatever follows
        # them on the read channel) wait for the engine, then move one beat per cycle at most.
        x_in = start + _SPMM_X + instruction.k
        held = words / beats * self.reads.interval
        last = self.reads.transfer(max(request + self.latency + 1, x_in - held), words)
        last = max(last, last_request + self.latency + 1)
        entered = max(x_in + beats - 1, last + _WRITE_ROW)
        self.reads.free = max(self.reads.free, entered)
        self.compute_cycles += instruction.k + beats
        done = entered + SPARSE_LATENCY
        self.sparse_free = done + 1
        return start, done

    def store(self, instruction: Instruction, earliest: float) -> tuple[float, float]:
        bus = self.config.bus_bytes
        start = earliest
        row_bytes = instruction.width * (1 if instruction.int8 else 4)
        rows = instruction.rows
        words = _row_words(instruction.dram_addr, instruction.dram_stride, rows, row_bytes, bus)
        self.bytes_written += rows * row_bytes
        requant = REQUANT_LATENCY + self.config.requant_chunks - 1
        first = start + _STORE_FIRST + (requant if instruction.int8 else 0)
        # Each row: its request, a cycle for the arbiter, then its words (docs/accelerator.md).
        per_row = max(words / rows + 2, self.config.requant_chunks if instruction.int8 else 0)
        self.writes.free = max(self.writes.free, first + 2)
        last = self.writes.transfer(first + 2, words)
        done = max(last, first + (rows - 1) * per_row + words / rows + 1)
        self._record(self.other_requests, first, per_row, rows)
        self._record(self.store_requests, first, per_row, rows)
        self.store_free = done + 1
        return start, done


def program_estimate(
    program: list[Instruction],
    config: AccelConfig,
    *,
    latency: int | None = None,
    bytes_per_cycle: int | None = None,
) -> PerfEstimate:
    """Predict the cycles of `program` on the accelerator of `config` (module docstring).

    Parameters
    ----------
    program : list of hdl.isa.Instruction
        A program `hdl.isa.check_program` accepts (the model assumes it does not deadlock).
    config : AccelConfig
        The hardware.
    latency, bytes_per_cycle : int, optional
        The memory's read latency and bandwidth per direction; default ``config.mem_latency``
        and ``config.bus_bytes`` (as `sim.drivers.accel_native.NativeAccelerator.run`).

    Raises
    ------
    TypeError, ValueError
        A bad config, an empty program or one that is not a list of `Instruction`, a latency
        below 0, a bandwidth outside 1..bus_bytes; a program whose tokens can never be
        popped (it would hang).
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    latency = config.mem_latency if latency is None else latency
    bandwidth = config.bus_bytes if bytes_per_cycle is None else bytes_per_cycle
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        raise ValueError(f"latency must be an int >= 0, not {latency!r}")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, int):
        raise ValueError(f"bytes_per_cycle must be an int, not {bandwidth!r}")
    if not 1 <= bandwidth <= config.bus_bytes:
        raise ValueError(
            f"bytes_per_cycle must be in [1, {config.bus_bytes}] (the bus width), not {bandwidth!r}"
        )
    program = list(program)
    if not program:
        raise ValueError("program is empty")
    for index, instruction in enumerate(program):
        if not isinstance(instruction, Instruction):
            raise TypeError(f"program[{index}] must be a hdl.isa.Instruction, not {instruction!r}")
    machine = _Machine(config, latency, bandwidth)
    finish = _walk(program, machine)
    end = max(finish) + _IDLE
    return PerfEstimate(
        cycles=(math.ceil(end)),
        macs=machine.macs,
        bytes_read=machine.bytes_read,
        bytes_written=machine.bytes_written,
        compute_cycles=machine.compute_cycles,
        read_cycles=(math.ceil(machine.reads.busy)),
        write_cycles=(math.ceil(machine.writes.busy)),
        instructions=len(program),
    )


# Token channels each flag pops from / pushes to, per queue (hdl/top.py `_Tokens`).
_POPS = {
    Queue.LOAD: {"pop_next": "c2l"},
    Queue.COMPUTE: {"pop_prev": "l2c", "pop_next": "s2c"},
    Queue.STORE: {"pop_prev": "c2s"},
}
_PUSHES = {
    Queue.LOAD: {"push_next": "l2c"},
    Queue.COMPUTE: {"push_prev": "c2l", "push_next": "c2s"},
    Queue.STORE: {"push_prev": "s2c"},
}


_TIE_ORDER = {Queue.STORE: 0, Queue.LOAD: 1, Queue.COMPUTE: 2}


def _walk(program: list[Instruction], machine: _Machine) -> list[float]:
    """Finish cycle of every instruction (a FENCE finishes when it is taken)."""
    count = len(program)
    dispatched: list[float | None] = [None] * count
    started: list[float | None] = [None] * count
    finished: list[float | None] = [None] * count
    members: dict[Queue, list[int]] = {queue: [] for queue in Queue}
    position = [0] * count  # an instruction's place in its queue
    for index, instruction in enumerate(program):
        if instruction.queue is not None:
            position[index] = len(members[instruction.queue])
            members[instruction.queue].append(index)
    heads = {queue: 0 for queue in Queue}
    pushed: dict[str, list[float]] = {"l2c": [], "c2l": [], "c2s": [], "s2c": []}
    popped = dict.fromkeys(pushed, 0)
    run = {Queue.LOAD: machine.load, Queue.STORE: machine.store}
    next_dispatch, last_dispatch = 0, -1.0
    # finished[:known_prefix] are all set and latest_finish is their maximum, so a FENCE's
    # wait is found in time linear in the program, not quadratic.
    known_prefix, latest_finish = 0, -1.0

    def dispatch() -> None:
        nonlocal next_dispatch, last_dispatch, known_prefix, latest_finish
        while next_dispatch < count:
            index = next_dispatch
            instruction = program[index]
            earliest = max(last_dispatch + 1, index + _CHECK_STAGE)
            if instruction.queue is None:  # FENCE: every earlier instruction finished
                while known_prefix < index and finished[known_prefix] is not None:
                    latest_finish = max(latest_finish, finished[known_prefix])
                    known_prefix += 1
                if known_prefix < index:
                    return
                earliest = max(earliest, latest_finish + 1)
                finished[index] = earliest
            else:
                place = position[index]
                if place >= QUEUE_DEPTH:
                    leaving = started[members[instruction.queue][place - QUEUE_DEPTH]]
                    if leaving is None:
                        return
                    earliest = max(earliest, leaving + 1)
            dispatched[index] = earliest
            last_dispatch = earliest
            next_dispatch += 1

    def ready(queue: Queue) -> float | None:
        """Earliest start of the queue's head, None while it cannot be known yet."""
        if heads[queue] >= len(members[queue]):
            return None
        index = members[queue][heads[queue]]
        if dispatched[index] is None:
            return None
        earliest = max(dispatched[index] + _QUEUE_DELAY, machine.free(program[index]))
        deps = program[index].deps
        for flag, channel in _POPS[queue].items():
            if deps[flag]:
                if len(pushed[channel]) <= popped[channel]:
                    return None
                earliest = max(earliest, pushed[channel][popped[channel]] + _TOKEN)
        return earliest

    remaining = sum(len(indexes) for indexes in members.values())
    while remaining:
        dispatch()
        candidates = [(ready(queue), queue) for queue in Queue]
        candidates = [(time, queue) for time, queue in candidates if time is not None]
        if not candidates:
            raise ValueError(
                "the program never finishes: an instruction waits for a token that no earlier "
                "instruction pushes (hdl.isa.check_program reports such a program)"
            )
        # Ties: a store first (its requests win the arbiter over a load's), then a load (its
        # requests slow an SPMM's down), then compute.
        earliest, queue = min(candidates, key=lambda item: (item[0], _TIE_ORDER[item[1]]))
        index = members[queue][heads[queue]]
        instruction = program[index]
        for flag, channel in _POPS[queue].items():
            if instruction.deps[flag]:
                popped[channel] += 1
        if queue is Queue.COMPUTE:
            unit = machine.spmm if instruction.op is Op.SPMM else machine.matmul
        else:
            unit = run[queue]
        started[index], finished[index] = unit(instruction, earliest)
        for flag, channel in _PUSHES[queue].items():
            if instruction.deps[flag]:
                pushed[channel].append(finished[index])
        heads[queue] += 1
        remaining -= 1
    dispatch()
    return [time for time in finished if time is not None]


def gemm_estimate(
    m: int,
    n: int,
    k: int,
    config: AccelConfig,
    *,
    requant: bool = False,
    latency: int | None = None,
    bytes_per_cycle: int | None = None,
) -> PerfEstimate:
    """`program_estimate` of the program `sim.schedule.gemm_schedule` makes for an M x K by
    K x N GEMM laid out as `sim.schedule.gemm_memory` lays it out (int8 output with
    `requant`)."""
    layout = gemm_layout(m, n, k, config, requant=requant)
    return program_estimate(
        layout.schedule(), config, latency=latency, bytes_per_cycle=bytes_per_cycle
    )


def spmm_estimate(
    w: np.ndarray,
    m: int,
    config: AccelConfig,
    *,
    latency: int | None = None,
    bytes_per_cycle: int | None = None,
) -> PerfEstimate:
    """`program_estimate` of `sim.schedule.spmm_schedule` for sparse int8 `w` (N x K) times
    an int8 K x `m` X, with the ``macs`` the SPMMs count (C per nonzero per column block)."""
    w = np.asarray(w)
    x = np.zeros((w.shape[1] if w.ndim == 2 else 1, m), np.int8)
    _, layout = spmm_memory(w, x, config)
    estimate = program_estimate(
        spmm_schedule(layout), config, latency=latency, bytes_per_cycle=bytes_per_cycle
    )
    blocks = math.ceil(m / config.cols)
    macs = int(np.count_nonzero(w)) * config.cols * blocks
    return dataclasses.replace(estimate, macs=estimate.macs + macs)
