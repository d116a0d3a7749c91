"""A functional model of the accelerator's instruction set (docs/isa.md) on numpy state.

`IsaModel(config, memory)` holds what the instructions address: main memory (uint8), the
activation scratchpad (``spad_bytes // R`` rows of R int8), the weight scratchpad
(``spad_bytes // C`` rows of C int8), the accumulator memory (``acc_rows`` rows of C int32, adds
wrap modulo 2**32) and the C requantizer lanes (one parameter record each). `IsaModel.run`
executes a list of `hdl.isa.Instruction` and returns the `Counters` of the run; `run_words`
runs an encoded command stream.

It is a functional model, not a cycle model: instructions run one at a time in program order.
That is one legal schedule of the three concurrent queues, and every legal schedule gives the
same result when the program is race-free, which `run` checks (`find_races`).

Semantics beyond docs/isa.md, chosen here:

- LOAD_PARAMS: the shift is the low 6 bits of byte 7 (the requantizer's 6-bit field), ReLU is
  bit 0 of byte 9; lanes from `lanes` up keep their parameters.
- STORE with ``int8`` = 1: lane c requantizes s = acc[c] + bias[c] with the lane's m24, shift,
  zero point and ReLU by the golden integer procedure (`requantize_lanes`, equal to
  `sim.golden.requant.requantize_int`), also for the 33-bit sums outside int32.
- SPMM: the ``last`` bit of a beat is not used (``nz_beats`` says how many beats to read);
  entries after the final ``row_end`` belong to no row and are dropped. Any entry's index at or
  past ``k`` (zero-valued padding entries included, as in `hdl.sparse.SparseEngine`) stops the
  instruction with SPARSE_FORMAT; an output row at or past ``acc_rows`` stops it with ACC_RANGE.
  The rows completed before the offending beat are written, the row in progress is not; when a
  beat both finishes a row past ``acc_rows`` and holds a bad index, SPARSE_FORMAT wins (the
  index is seen when the beat is taken, the row after it).

Errors: `run` applies `hdl.isa.check_program` first, with the size of the model's memory image
as the main-memory size (the hardware uses ``AccelConfig.mem_bytes``), and raises its
`ProgramError` before anything runs (the model's state is then unchanged). A run-time error
(SPMM) raises `ProgramError` with its code and index after the earlier instructions ran and the
faulting SPMM wrote the rows it completed; later instructions do not run.

Race check
----------
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
from hdl.isa import (
    PARAM_RECORD_BYTES,
    WORD_BITS,
    ErrorCode,
    Geometry,
    Instruction,
    Op,
    ProgramError,
    Queue,
    check_program,
)
from hdl.sparse import index_bits, nonzero_beat_bytes
from sim.golden.gemm import gemm, wrap_int32
from sim.golden.requant import MANTISSA_BITS, round_to_significant_bits, shift_right_half_even

#: Memory names in `Region` and in race messages.
MAIN = "main memory"
ACTIVATIONS = "activation scratchpad"
WEIGHTS = "weight scratchpad"
ACCUMULATOR = "accumulator memory"
LANES = "requantizer lanes"
_MEMORIES = (MAIN, ACTIVATIONS, WEIGHTS, ACCUMULATOR, LANES)

#: One requantizer lane's parameters as the model keeps them.
LANE_DTYPE = np.dtype(
    [
        ("bias", np.int64),
        ("m24", np.int64),
        ("shift", np.int64),
        ("zero_point", np.int64),
        ("relu", np.bool_),
    ]
)


@dataclass
class Counters:
    """What one run did, per unit.

    Attributes
    ----------
    macs : int
        Multiply-accumulates, as the accelerator's ``macs`` counter counts them: R * C for every
        row streamed through the array (MATMUL ``rows``: M rows in WS, K rows in OS), C for
        every nonzero value of the ``nonzeros`` beats the sparse engine took.
    bytes_loaded : int
        Main-memory bytes read: LOAD_ACT / LOAD_WGT ``rows * width``, LOAD_PARAMS 16 per lane,
        SPMM ``nz_beats`` beats.
    bytes_stored : int
        Main-memory bytes written by STORE.
    instructions : dict
        Instructions run per `hdl.isa.Queue`.
    fences : int
        FENCEs passed.
    """

    macs: int = 0
    bytes_loaded: int = 0
    bytes_stored: int = 0
    instructions: dict[Queue, int] = field(default_factory=lambda: dict.fromkeys(Queue, 0))
    fences: int = 0


class _ExecutionError(Exception):
    """A run-time error of the instruction being executed (becomes a `ProgramError`)."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code


def requantize_lanes(acc: np.ndarray, lanes: np.ndarray) -> np.ndarray:
    """int8 [rows, w] outputs of int32 acc [rows, w] through lanes[0..w-1] (`LANE_DTYPE`).

    The requantizer's integer procedure (docs/requantizer.md) on s = acc + bias, exact in
    int64: round |s| to 24 significant bits, multiply by m24, round to 24 significant bits,
    shift right by `shift` (all ties to even), restore the sign, add the zero point, clamp to
    [zero point if ReLU else -128, 127].
    """
    s = acc.astype(np.int64) + lanes["bias"]
    magnitude = round_to_significant_bits(np.abs(s), MANTISSA_BITS)
    product = round_to_significant_bits(magnitude * lanes["m24"], MANTISSA_BITS)
    rounded = shift_right_half_even(product, np.broadcast_to(lanes["shift"], product.shape))
    signed = np.where(s < 0, -rounded, rounded)
    low = np.where(lanes["relu"], lanes["zero_point"], -128)
    return np.clip(signed + lanes["zero_point"], low, 127).astype(np.int8)


def decode_param_records(raw: np.ndarray) -> np.ndarray:
    """`LANE_DTYPE` lanes from uint8 [lanes, 16] parameter records (`PARAM_RECORD_BYTES`)."""
    lanes = np.zeros(raw.shape[0], LANE_DTYPE)
    lanes["bias"] = np.ascontiguousarray(raw[:, 0:4]).view("<i4")[:, 0]
    lanes["m24"] = raw[:, 4] | raw[:, 5].astype(np.int64) << 8 | raw[:, 6].astype(np.int64) << 16
    lanes["shift"] = raw[:, 7] & 0x3F
    lanes["zero_point"] = raw[:, 8].view(np.int8)
    lanes["relu"] = raw[:, 9] & 1
    return lanes


class IsaModel:
    """The accelerator's architectural state and a program-order executor of its instructions.

    Parameters
    ----------
    config : AccelConfig
        The hardware: array size and dataflow, scratchpad and accumulator sizes, sparse engine.
    memory : int or numpy.ndarray
        Main memory: its size in bytes (zero-filled), or a 1-D uint8 image (copied).

    Attributes
    ----------
    memory : uint8 [bytes]. act : int8 [spad_bytes // R, R]. wgt : int8 [spad_bytes // C, C].
    acc : int32 [acc_rows, C]. lanes : `LANE_DTYPE` [C], all zero after construction (every
    int8 output is then 0, as after the requantizer's reset).

    Raises
    ------
    TypeError
        `config` is not an AccelConfig, or `memory` is neither an int nor a uint8 ndarray.
    ValueError
        `memory` is an int below 1, or an array that is not 1-D or is empty.
    """

    def __init__(self, config: AccelConfig, memory: int | np.ndarray):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        self.memory = _memory_image(memory)
        geometry = Geometry.of(config)
        self.act = np.zeros((geometry.act_rows, geometry.act_row_bytes), np.int8)
        self.wgt = np.zeros((geometry.wgt_rows, geometry.wgt_row_bytes), np.int8)
        self.acc = np.zeros((config.acc_rows, config.cols), np.int32)
        self.lanes = np.zeros(config.cols, LANE_DTYPE)

    def run(self, program: list[Instruction], *, check_races: bool = True) -> Counters:
        """Execute `program` in program order and return what it did.

        Raises
        ------
        ProgramError
            `hdl.isa.check_program` refuses the program (nothing runs), or an SPMM fails at
            run time (SPARSE_FORMAT, ACC_RANGE; the earlier instructions have run).
        RaceError
            With `check_races`, after the run: instructions of different queues touch the same
            units with nothing ordering them (`find_races`); the state is the program-order
            result, which another legal schedule need not reproduce.
        """
        program = list(program)
        check_program(program, self.config, self.memory.size)
        counters = Counters()
        spmm_rows: dict[int, int] = {}
        for index, instruction in enumerate(program):
            try:
                rows = self._execute(instruction, counters)
            except _ExecutionError as fault:
                raise ProgramError(index, fault.code, str(fault)) from None
            if rows is not None:
                spmm_rows[index] = rows
        if check_races:
            races = find_races(program, self.config, spmm_rows)
            if races:
                raise RaceError(program, races)
        return counters

    def run_words(self, words: np.ndarray, *, check_races: bool = True) -> Counters:
        """`run` for an encoded program (uint32 [n, 4], `hdl.isa.encode_program`).

        A word that does not decode stops the program at its index: BAD_OPCODE for opcodes
        7-15, BAD_FIELD for bits set above the opcode's layout, unless an earlier instruction
        breaks a field rule (that one is reported, as the hardware meets it first). Nothing
        runs in either case.
        """
        program = []
        for index, row in enumerate(np.asarray(words, np.uint32).reshape(-1, WORD_BITS // 32)):
            word = sum(int(value) << (32 * i) for i, value in enumerate(row))
            try:
                program.append(Instruction.decode(word))
            except ValueError as error:
                _check_prefix(program, self.config, self.memory.size)
                known = (word & 0xF) in {op.value for op in Op}
                code = ErrorCode.BAD_FIELD if known else ErrorCode.BAD_OPCODE
                raise ProgramError(index, code, str(error)) from None
        return self.run(program, check_races=check_races)

    def _execute(self, ins: Instruction, counters: Counters) -> int | None:
        """Run one instruction; the accumulator rows an SPMM wrote, None for the others."""
        if ins.queue is None:
            counters.fences += 1
            return None
        counters.instructions[ins.queue] += 1
        if ins.op is Op.SPMM:
            return self._spmm(ins, counters)
        handler = {
            Op.LOAD_ACT: self._load_act,
            Op.LOAD_WGT: self._load_wgt,
            Op.LOAD_PARAMS: self._load_params,
            Op.MATMUL: self._matmul,
            Op.STORE: self._store,
        }[ins.op]
        handler(ins, counters)
        return None

    def _load_act(self, ins: Instruction, counters: Counters) -> None:
        self._load(ins, self.act, counters)

    def _load_wgt(self, ins: Instruction, counters: Counters) -> None:
        self._load(ins, self.wgt, counters)

    def _load(self, ins: Instruction, scratchpad: np.ndarray, counters: Counters) -> None:
        """``rows`` rows of ``width`` bytes into scratchpad rows, zeros beyond ``width``."""
        rows, width = ins.rows, ins.width
        offsets = ins.dram_addr + ins.dram_stride * np.arange(rows)[:, None] + np.arange(width)
        block = np.zeros((rows, scratchpad.shape[1]), np.int8)
        block[:, :width] = self.memory[offsets].view(np.int8)
        scratchpad[ins.spad_row : ins.spad_row + rows] = block
        counters.bytes_loaded += rows * width

    def _load_params(self, ins: Instruction, counters: Counters) -> None:
        size = ins.lanes * PARAM_RECORD_BYTES
        raw = self.memory[ins.dram_addr : ins.dram_addr + size].reshape(ins.lanes, -1)
        self.lanes[: ins.lanes] = decode_param_records(raw)
        counters.bytes_loaded += size

    def _matmul(self, ins: Instruction, counters: Counters) -> None:
        """WS: act rows (M x R) @ R weight rows; OS: (act rows, K x R)^T @ K weight rows."""
        r = self.config.rows
        acts = self.act[ins.act_row : ins.act_row + ins.rows]
        if self.config.dataflow is Dataflow.WS:
            a, b = acts, self.wgt[ins.wgt_row : ins.wgt_row + r]
        else:
            a, b = acts.T, self.wgt[ins.wgt_row : ins.wgt_row + ins.rows]
        self._write_acc(ins.acc_row, gemm(a, b), ins.accumulate)
        counters.macs += ins.rows * r * self.config.cols

    def _write_acc(self, acc_row: int, values: np.ndarray, accumulate: int) -> None:
        """Overwrite accumulator rows from `acc_row` with int32 `values`, or add (wrapping)."""
        target = self.acc[acc_row : acc_row + values.shape[0]]
        if accumulate:
            values = wrap_int32(target.astype(np.int64) + values)
        target[:] = values

    def _spmm(self, ins: Instruction, counters: Counters) -> int:
        """One sparse-engine pass; returns the accumulator rows it wrote (see the module doc)."""
        values, indices, row_end = self._nonzero_beats(ins)
        counters.bytes_loaded += ins.nz_beats * nonzero_beat_bytes(self.config)
        bad = (indices >= ins.k).any(axis=1)
        taken = int(np.argmax(bad)) if bad.any() else ins.nz_beats
        counters.macs += self.config.cols * int(np.count_nonzero(values[:taken]))
        x = self.wgt[ins.x_row : ins.x_row + ins.k].astype(np.int64)
        products = np.einsum("bg,bgc->bc", values[:taken], x[indices[:taken]])
        row_of_beat = np.cumsum(row_end[:taken]) - row_end[:taken]
        completed = int(row_end[:taken].sum())
        room = self.config.acc_rows - ins.acc_row
        rows = min(completed, room)
        sums = np.zeros((rows, self.config.cols), np.int64)
        keep = row_of_beat < rows
        np.add.at(sums, row_of_beat[keep], products[keep])
        self._write_acc(ins.acc_row, wrap_int32(sums), ins.accumulate)
        if completed > room:
            raise _ExecutionError(
                ErrorCode.ACC_RANGE,
                f"SPMM output row {room} goes to accumulator row {self.config.acc_rows}, "
                f"past the end ({self.config.acc_rows})",
            )
        if taken < ins.nz_beats:
            index = int(indices[taken].max())
            raise _ExecutionError(
                ErrorCode.SPARSE_FORMAT,
                f"SPMM nonzeros beat {taken} has index {index}, at or past k = {ins.k}",
            )
        return rows

    def _nonzero_beats(self, ins: Instruction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values int64 [B, G], indices int64 [B, G], row_end bool [B]) of the SPMM's beats,
        unpacked from main memory as `sim.stream_program.pack_beats` packs them."""
        size = nonzero_beat_bytes(self.config)
        raw = self.memory[ins.nz_addr : ins.nz_addr + ins.nz_beats * size]
        bits = np.unpackbits(raw.reshape(ins.nz_beats, size), axis=1, bitorder="little")
        groups, width = self.config.sparse_groups, index_bits(self.config)
        entries = bits[:, : groups * (8 + width)].reshape(ins.nz_beats, groups, 8 + width)
        values = entries[..., :8].astype(np.int64) @ (1 << np.arange(8))
        values = np.where(values >= 128, values - 256, values)
        indices = entries[..., 8:].astype(np.int64) @ (1 << np.arange(width))
        return values, indices, bits[:, groups * (8 + width)].astype(bool)

    def _store(self, ins: Instruction, counters: Counters) -> None:
        """Accumulator rows to main memory: int8 through lanes 0..width-1, or int32 LE."""
        values = self.acc[ins.acc_row : ins.acc_row + ins.rows, : ins.width]
        if ins.int8:
            data = requantize_lanes(values, self.lanes[: ins.width]).view(np.uint8)
        else:
            data = values.astype("<i4").view(np.uint8)
        for r, row in enumerate(data):
            start = ins.dram_addr + r * ins.dram_stride
            self.memory[start : start + row.size] = row
        counters.bytes_stored += data.size


def _memory_image(memory: int | np.ndarray) -> np.ndarray:
    """A fresh uint8 main memory: `memory` zero bytes, or a copy of a uint8 image."""
    if isinstance(memory, np.ndarray):
        if memory.dtype != np.uint8:
            raise TypeError(f"memory must be a uint8 array, not dtype {memory.dtype}")
        if memory.ndim != 1 or memory.size == 0:
            raise ValueError(f"memory must be a non-empty 1-D array, not shape {memory.shape}")
        return memory.copy()
    if isinstance(memory, bool) or not isinstance(memory, int):
        raise TypeError(f"memory must be a size in bytes or a uint8 array, not {memory!r}")
    if memory < 1:
        raise ValueError(f"memory must be at least 1 byte, not {memory!r}")
    return np.zeros(memory, np.uint8)


def _check_prefix(program: list[Instruction], config: AccelConfig, memory_bytes: int) -> None:
    """Field and flag rules of the instructions before an undecodable word (no token replay:
    the hardware meets the bad word whatever the earlier ones wait for)."""
    try:
        check_program(program, config, memory_bytes)
    except ProgramError as error:
        if error.code is not ErrorCode.DEADLOCK:
            raise


# --------------------------------------------------------------------------------------------------
# Race check


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
                raise ProgramError(stuck, ErrorCode.DEADLOCK, "waits for a token nobody pushes")

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
