"""A functional model of the accelerator's instruction set (docs/isa.md) on numpy state.

`IsaModel(config, memory)` holds what the instructions address: main memory (uint8), the
activation scratchpad (``spad_bytes // R`` rows of R int8), the weight scratchpad
(``spad_bytes // C`` rows of C int8), the accumulator memory (``acc_rows`` rows of C int32, adds
wrap modulo 2**32) and the C requantizer lanes (one parameter record each). `IsaModel.run`
executes a list of `hdl.isa.Instruction` and returns the `Counters` of the run; `run_words`
runs an encoded command stream.

It is a functional model, not a cycle model: instructions run one at a time, in the order they
start in `hdl.isa.replay_dispatch` (program order, except that an instruction popping a token
waits for the instruction that pushes it, which may come later in the program). That is one
legal schedule of the three concurrent queues, and every legal schedule gives the same result
when the program is race-free, which `run` checks (`sim.races.find_races`).

Semantics beyond docs/isa.md, chosen here:

- LOAD_PARAMS: the shift is the low 6 bits of byte 7 (the requantizer's 6-bit field), ReLU is
  bit 0 of byte 9; lanes from `lanes` up keep their parameters.
- STORE with ``int8`` = 1: lane c requantizes s = acc[c] + bias[c] with the lane's m24, shift,
  zero point and ReLU by the golden integer procedure (`requantize_lanes`, equal to
  `sim.golden.requant.requantize_int`), also for the 33-bit sums outside int32.
- SPMM ``nz_cache`` (`hdl.isa.NzCache`): a FILL copies the pass's ``nz_beats`` beats (raw
  bytes, malformed ones included: the engine takes every beat) to cache entries 0 ..
  ``nz_beats`` - 1; a REPLAY takes its beats from those entries and reads no memory. The cache
  starts zeroed and keeps its entries across runs, as the hardware's block RAM does.
- SPMM: the pass is ``nz_beats`` beats (the engine takes all of them and counts their MACs,
  whatever they hold). A beat is malformed (SPARSE_FORMAT) when an entry's index is at or past
  ``k`` (zero-valued padding entries included, as in `hdl.sparse.SparseEngine`), when its
  ``last`` bit is set before beat ``nz_beats - 1`` or clear on it, or when the final beat has
  no ``row_end``; an output row at or past ``acc_rows`` is ACC_RANGE. The first offending beat
  stops the instruction: the rows completed before it are written, the row in progress is not
  (the hardware writes garbage from there on, which the model leaves undefined by not writing
  it); when a beat both finishes a row past ``acc_rows`` and is malformed, SPARSE_FORMAT wins.

Errors: `run` applies `hdl.isa.check_program` first, with the size of the model's memory image
as the main-memory size (the hardware uses ``AccelConfig.mem_bytes``), and raises its
`ProgramError` before anything runs (the model's state is then unchanged). A run-time error
(SPMM) raises `ProgramError` with its code and index after the earlier instructions ran and the
faulting SPMM wrote the rows it completed; later instructions do not run.

The race check (`find_races`, `Ordering`, the memory names and `Region`) is `sim.races`; its
`RaceError` is importable from here too, as `run` raises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import (
    PARAM_RECORD_BYTES,
    ErrorCode,
    Geometry,
    Instruction,
    NzCache,
    Op,
    ProgramError,
    Queue,
    check_program,
    check_words,
    replay_dispatch,
)
from hdl.sparse import index_bits, nonzero_beat_bytes
from sim.golden.gemm import gemm, wrap_int32
from sim.golden.requant import MANTISSA_BITS, round_to_significant_bits, shift_right_half_even
from sim.races import RaceError, find_races

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


@dataclass
class Execution:
    """What `IsaModel.execute` did: the `Counters`, the accumulator rows each SPMM wrote (program
    index -> rows) and the run-time error that ended it (a `ProgramError`), None if none."""

    counters: Counters
    spmm_rows: dict[int, int]
    fault: ProgramError | None


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
        beat_bytes = nonzero_beat_bytes(config) if config.has_sparse_engine else 1
        self.nz_cache = np.zeros((config.sparse_cache_beats, beat_bytes), np.uint8)

    def run(self, program: list[Instruction], *, check_races: bool = True) -> Counters:
        """Execute `program` (in a legal schedule, see the module doc) and return what it did.

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
        execution = self.execute(program)
        if execution.fault is not None:
            raise execution.fault
        if check_races:
            races = find_races(program, self.config, execution.spmm_rows)
            if races:
                raise RaceError(program, races)
        return execution.counters

    def run_words(self, words: np.ndarray, *, check_races: bool = True) -> Counters:
        """`run` for an encoded program (uint32 [n, 4], `hdl.isa.encode_program`).

        `hdl.isa.check_words` decodes and checks it: a word that does not decode stops the
        program at its index (BAD_OPCODE for opcodes 7-15 and for SPMM without a sparse engine,
        BAD_FIELD for bits set above the opcode's layout) unless an earlier instruction breaks a
        rule or the dispatcher never gets to it (DEADLOCK). Nothing runs in either case.
        """
        program = check_words(words, self.config, self.memory.size)
        return self.run(program, check_races=check_races)

    def execute(self, program: list[Instruction], order: list[int] | None = None) -> Execution:
        """Execute `program` without checking it, one instruction at a time in `order`.

        `order` lists program indices (default: the instructions that run in
        `hdl.isa.replay_dispatch`, in the order they start there, a legal schedule). The caller
        has checked every instruction (`hdl.isa.check_instruction`); an SPMM's run-time error
        (SPARSE_FORMAT, ACC_RANGE) ends the execution after that SPMM wrote the rows it
        completed, and is returned as `Execution.fault` (with the SPMM's program index), not
        raised.
        """
        if order is None:
            order = replay_dispatch(program).order
        counters = Counters()
        spmm_rows: dict[int, int] = {}
        for index in order:
            try:
                rows = self._execute(program[index], counters)
            except _ExecutionError as fault:
                error = ProgramError(index, fault.code, str(fault))
                return Execution(counters, spmm_rows, error)
            if rows is not None:
                spmm_rows[index] = rows
        return Execution(counters, spmm_rows, None)

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
        values, indices, row_end, last = self._nonzero_beats(ins)
        if ins.nz_cache != NzCache.REPLAY:
            counters.bytes_loaded += ins.nz_beats * nonzero_beat_bytes(self.config)
        counters.macs += self.config.cols * int(np.count_nonzero(values))  # every beat is taken
        final = np.arange(ins.nz_beats) == ins.nz_beats - 1
        bad_index = (indices >= ins.k).any(axis=1)
        bad = bad_index | (last != final) | (final & ~row_end)
        taken = int(np.argmax(bad)) if bad.any() else ins.nz_beats
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
            if bad_index[taken]:
                why = f"has index {int(indices[taken].max())}, at or past k = {ins.k}"
            elif last[taken] != final[taken]:
                why = f"has last = {int(last[taken])} (the pass has {ins.nz_beats} beats)"
            else:
                why = "is the final one and has no row_end"
            raise _ExecutionError(ErrorCode.SPARSE_FORMAT, f"SPMM nonzeros beat {taken} {why}")
        return rows

    def _nonzero_beats(self, ins: Instruction) -> tuple[np.ndarray, ...]:
        """(values int64 [B, G], indices int64 [B, G], row_end bool [B], last bool [B]) of the
        SPMM's beats, unpacked from main memory (or the cache) as
        `sim.stream_program.pack_beats` packs them; a FILL copies them to the cache."""
        size = nonzero_beat_bytes(self.config)
        if ins.nz_cache == NzCache.REPLAY:
            raw = self.nz_cache[: ins.nz_beats]
        else:
            raw = self.memory[ins.nz_addr : ins.nz_addr + ins.nz_beats * size]
            raw = raw.reshape(ins.nz_beats, size)
            if ins.nz_cache == NzCache.FILL:
                self.nz_cache[: ins.nz_beats] = raw
        bits = np.unpackbits(raw, axis=1, bitorder="little")
        groups, width = self.config.sparse_groups, index_bits(self.config)
        entries = bits[:, : groups * (8 + width)].reshape(ins.nz_beats, groups, 8 + width)
        values = entries[..., :8].astype(np.int64) @ (1 << np.arange(8))
        values = np.where(values >= 128, values - 256, values)
        indices = entries[..., 8:].astype(np.int64) @ (1 << np.arange(width))
        flags = bits[:, groups * (8 + width) : groups * (8 + width) + 2].astype(bool)
        return values, indices, flags[:, 0], flags[:, 1]

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
