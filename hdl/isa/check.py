"""Check a program against every rule of docs/isa.md before it runs.

`check_program` applies each rule against an `AccelConfig` and a memory size, and replays the
token protocol of the three queues to find programs that would deadlock, raising `ProgramError`
with the index and the `ErrorCode` the hardware would report (the gateware's dispatcher checks
the same rules in the same order). `decode_word` and `check_instruction` are the per-word part
(what the dispatcher checks of each word on its own), `replay_dispatch` the replay: dispatch in
order into queues of `QUEUE_DEPTH` words, a FENCE waiting for everything before it, each queue
starting its head once the tokens it pops are there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa.instruction import Instruction
from hdl.isa.layout import (
    PARAM_RECORD_BYTES,
    QUEUE_DEPTH,
    WORD_BITS,
    ErrorCode,
    NzCache,
    Op,
    Queue,
    scratchpad_rows,
)
from hdl.sparse import nonzero_beat_bytes


class ProgramError(ValueError):
    """A program breaks a rule of docs/isa.md.

    Attributes
    ----------
    index: the offending instruction's position in the program; for DEADLOCK the dispatcher's
        position, as the accelerator reports it: the word it cannot dispatch (a FENCE, or a
        word whose queue is full), or the program's length when it dispatched every word.
    code: the `hdl.isa.ErrorCode` the accelerator reports for it.
    stuck: DEADLOCK only (else None): the first instruction waiting for a token that no
        instruction will push.
    """

    def __init__(self, index: int, code: ErrorCode, message: str, stuck: int | None = None):
        super().__init__(f"instruction {index}: {message}")
        self.index = index
        self.code = code
        self.stuck = stuck


@dataclass(frozen=True)
class Geometry:
    """Sizes the checker needs, from an `AccelConfig`: rows and row widths of each memory."""

    act_row_bytes: int
    act_rows: int
    wgt_row_bytes: int
    wgt_rows: int
    acc_rows: int
    cols: int
    rows: int
    dataflow: Dataflow
    sparse_depth: int

    @classmethod
    def of(cls, config: AccelConfig) -> Geometry:
        """Activation rows are R bytes (a K-slice of an A row), weight rows C bytes."""
        act_rows, wgt_rows = scratchpad_rows(config)
        return cls(
            act_row_bytes=config.rows,
            act_rows=act_rows,
            wgt_row_bytes=config.cols,
            wgt_rows=wgt_rows,
            acc_rows=config.acc_rows,
            cols=config.cols,
            rows=config.rows,
            dataflow=config.dataflow,
            sparse_depth=config.sparse_depth,
        )


def check_program(
    program: list[Instruction], config: AccelConfig, memory_bytes: int | None = None
) -> None:
    """Raise `ProgramError` for the first instruction that breaks a rule of docs/isa.md.

    Checks every field against the configuration's memories and `memory_bytes` of main memory
    (default ``config.mem_bytes``) and the token flags against the queues that exist
    (`check_instruction`), and replays dispatch and the token protocol (`replay_dispatch`) on
    the instructions before the first bad one, as the hardware meets them:

    - the dispatcher never reaches the bad instruction (a FENCE or a full queue holds it
      behind a pop that no earlier instruction satisfies): DEADLOCK at the word it holds;
    - otherwise the bad instruction's code and index (the earlier instructions that wait for a
      token that never comes are dropped when the accelerator stops: docs/isa.md, Errors);
    - a program with no bad instruction whose replay stalls: DEADLOCK at the program's
      length (`dispatch_error`; ``stuck`` names the waiting instruction in both cases).
    """
    if memory_bytes is None:
        memory_bytes = config.mem_bytes
    bad = None
    for index, instruction in enumerate(program):
        if not isinstance(instruction, Instruction):
            raise TypeError(f"program[{index}] is not an Instruction: {instruction!r}")
        try:
            check_instruction(index, instruction, config, memory_bytes)
        except ProgramError as error:
            bad = error
            break
    _raise_any(dispatch_error(program if bad is None else program[: bad.index], bad))


def check_words(words, config: AccelConfig, memory_bytes: int | None = None) -> list[Instruction]:
    """`check_program` for an encoded command stream (uint32 [n, 4], `encode_program`): the
    decoded program, or `ProgramError` for the first word that does not decode (`decode_word`)
    or breaks a rule, with the same replay of the words before it."""
    if memory_bytes is None:
        memory_bytes = config.mem_bytes
    program, bad = [], None
    for index, word in enumerate(words_as_ints(words)):
        try:
            instruction = decode_word(index, word, config)
            check_instruction(index, instruction, config, memory_bytes)
        except ProgramError as error:
            bad = error
            break
        program.append(instruction)
    _raise_any(dispatch_error(program, bad))
    return program


def words_as_ints(words) -> list[int]:
    """The 128-bit words of a uint32 [n, 4] command stream (least significant first) as ints."""
    rows = np.asarray(words, np.uint32).reshape(-1, WORD_BITS // 32).astype(object)
    return [int(a) | int(b) << 32 | int(c) << 64 | int(d) << 96 for a, b, c, d in rows]


def dispatch_error(
    prefix: list[Instruction], bad: ProgramError | None, replay: Replay | None = None
) -> ProgramError | None:
    """The error the dispatcher stops with, given the instructions before the first bad word
    (`prefix`) and that word's error (`bad`, None for none): DEADLOCK if it never gets past
    `prefix` or (no bad word) they cannot all run, else `bad`. `replay` is `replay_dispatch`
    of `prefix`, when the caller has it."""
    replay = replay_dispatch(prefix) if replay is None else replay
    if replay.dispatched < len(prefix) or (bad is None and not replay.complete):
        return _deadlock_error(prefix, replay)
    return bad


def _raise_any(error: ProgramError | None) -> None:
    if error is not None:
        raise error


def _deadlock_error(program: list[Instruction], replay: Replay) -> ProgramError:
    """The DEADLOCK of a replay that stalled with `program` (`replay_dispatch`) unfinished, at
    the dispatcher's position (`ProgramError.index`), naming the stuck instruction."""
    where = replay.dispatched
    if where == len(program):
        at = "every word is dispatched"
    elif program[where].op is Op.FENCE:
        at = "the dispatcher holds this FENCE"
    else:
        at = f"the dispatcher holds this {program[where].op.name}: its queue is full"
    stuck = replay.stuck
    message = (
        f"deadlock: {at}, and instruction {stuck} ({program[stuck].op.name}) waits for a "
        f"token that no instruction will push"
    )
    return ProgramError(where, ErrorCode.DEADLOCK, message, stuck=stuck)


def check_instruction(
    index: int, instruction: Instruction, config: AccelConfig, memory_bytes: int | None = None
) -> None:
    """Raise `ProgramError` (with `index`) if `instruction` breaks a field or token-flag rule.

    These are the rules the dispatcher checks on each word alone, in its order; deadlocks need
    the whole program (`check_program`).
    """
    if memory_bytes is None:
        memory_bytes = config.mem_bytes
    _check_fields(index, instruction, Geometry.of(config), config, memory_bytes)
    _check_deps(index, instruction)


def decode_word(index: int, word: int, config: AccelConfig) -> Instruction:
    """The `Instruction` of a 128-bit word, or `ProgramError` (with `index`) for a word that does
    not decode: BAD_OPCODE for opcodes 7-15 and for SPMM on an accelerator without a sparse
    engine (the opcode is checked first, stray bits or not), BAD_FIELD for bits set above the
    opcode's layout."""
    op = word & 0xF
    if op == Op.SPMM.value and not config.has_sparse_engine:
        _fail(index, ErrorCode.BAD_OPCODE, "SPMM: this accelerator has no sparse engine")
    try:
        return Instruction.decode(word)
    except ValueError as error:
        known = op in {o.value for o in Op} and 0 <= word < 1 << WORD_BITS
        _fail(index, ErrorCode.BAD_FIELD if known else ErrorCode.BAD_OPCODE, str(error))


@dataclass(frozen=True)
class Replay:
    """What `replay_dispatch` found.

    Attributes
    ----------
    dispatched : int
        Instructions the dispatcher took (a prefix of the program).
    done : tuple of bool
        Per dispatched instruction: it ran (FENCEs: passed).
    stuck : int or None
        When the replay stalled with work left: the first instruction (lowest index) at the head
        of a queue, waiting for a token; None when everything ran.
    order : tuple of int
        The instructions that ran, in the order they started: a legal schedule (queue order,
        tokens and FENCEs respected), so a race-free program's result is that of running them
        one at a time in this order, which is not program order when a pop comes before its
        push.
    """

    dispatched: int
    done: tuple[bool, ...]
    stuck: int | None
    order: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every dispatched instruction ran (the dispatcher may still have stalled)."""
        return self.stuck is None


def _fail(index: int, code: ErrorCode, message: str):
    raise ProgramError(index, code, message)


def _check_range(index, code, what, start, count, limit):
    if start + count > limit:
        _fail(index, code, f"{what} [{start}, {start + count}) is past the end ({limit})")


def _check_dram(index, what, address, rows, stride, row_bytes, memory_bytes):
    end = address + (rows - 1) * stride + row_bytes
    if end > memory_bytes:
        _fail(
            index,
            ErrorCode.DRAM_RANGE,
            f"{what} bytes up to {end} are past the end of memory ({memory_bytes})",
        )


def _check_fields(index, ins: Instruction, g: Geometry, config, memory_bytes) -> None:
    f = ins.fields
    if ins.op is Op.SPMM and not config.has_sparse_engine:
        _fail(index, ErrorCode.BAD_OPCODE, "SPMM: this accelerator has no sparse engine")
    for name in ("rows", "width", "lanes", "k", "nz_beats"):
        if name in f and f[name] == 0:
            _fail(index, ErrorCode.BAD_FIELD, f"{ins.op.name}.{name} is 0")
    if ins.op in (Op.LOAD_ACT, Op.LOAD_WGT):
        act = ins.op is Op.LOAD_ACT
        row_bytes, rows = (g.act_row_bytes, g.act_rows) if act else (g.wgt_row_bytes, g.wgt_rows)
        name = "activation" if act else "weight"
        if f["width"] > row_bytes:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"width {f['width']} > {name} row {row_bytes}")
        _check_range(index, ErrorCode.SPAD_RANGE, f"{name} rows", f["spad_row"], f["rows"], rows)
        _check_dram(
            index, "load", f["dram_addr"], f["rows"], f["dram_stride"], f["width"], memory_bytes
        )
    elif ins.op is Op.LOAD_PARAMS:
        if f["lanes"] > g.cols:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"lanes {f['lanes']} > cols {g.cols}")
        size = f["lanes"] * PARAM_RECORD_BYTES
        _check_dram(index, "parameter", f["dram_addr"], 1, 0, size, memory_bytes)
    elif ins.op is Op.MATMUL:
        ws = g.dataflow is Dataflow.WS
        weight_rows = g.rows if ws else f["rows"]  # WS: one R-row tile; OS: K rows of B
        out_rows = f["rows"] if ws else g.rows  # WS: M rows; OS: R rows of the tile
        _check_range(
            index, ErrorCode.SPAD_RANGE, "activation rows", f["act_row"], f["rows"], g.act_rows
        )
        _check_range(
            index, ErrorCode.SPAD_RANGE, "weight rows", f["wgt_row"], weight_rows, g.wgt_rows
        )
        _check_range(
            index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], out_rows, g.acc_rows
        )
    elif ins.op is Op.SPMM:
        if f["nz_cache"] > NzCache.REPLAY:
            _fail(index, ErrorCode.BAD_FIELD, f"SPMM.nz_cache {f['nz_cache']} is not 0, 1 or 2")
        if f["k"] > g.sparse_depth:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"k {f['k']} > sparse_depth {g.sparse_depth}")
        cache = config.sparse_cache_beats
        if f["nz_cache"] != NzCache.STREAM and f["nz_beats"] > cache:
            _fail(
                index,
                ErrorCode.TILE_TOO_LARGE,
                f"nz_beats {f['nz_beats']} > the {cache} beats of the nonzeros cache "
                f"(nz_cache {NzCache(f['nz_cache']).name})",
            )
        _check_range(index, ErrorCode.SPAD_RANGE, "weight rows", f["x_row"], f["k"], g.wgt_rows)
        _check_range(index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], 1, g.acc_rows)
        size = f["nz_beats"] * nonzero_beat_bytes(config)
        _check_dram(index, "nonzeros", f["nz_addr"], 1, 0, size, memory_bytes)
    elif ins.op is Op.STORE:
        if f["width"] > g.cols:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"width {f['width']} > cols {g.cols}")
        _check_range(
            index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], f["rows"], g.acc_rows
        )
        row_bytes = f["width"] * (1 if f["int8"] else 4)
        _check_dram(
            index, "store", f["dram_addr"], f["rows"], f["dram_stride"], row_bytes, memory_bytes
        )


def _check_deps(index: int, ins: Instruction) -> None:
    queue = ins.queue
    on = [flag for flag, value in ins.deps.items() if value]
    if queue is None and on:
        _fail(index, ErrorCode.BAD_DEPS, f"FENCE cannot carry token flags ({', '.join(on)})")
    for flag in on:
        toward_prev = flag.endswith("prev")
        if (toward_prev and queue is Queue.LOAD) or (not toward_prev and queue is Queue.STORE):
            side = "previous" if toward_prev else "next"
            _fail(index, ErrorCode.BAD_DEPS, f"{ins.op.name} has no {side} queue for {flag}")


def replay_dispatch(program: list[Instruction], queue_depth: int = QUEUE_DEPTH) -> Replay:
    """Replay dispatch and the three queues with instant instructions until nothing moves.

    The dispatcher takes instructions in program order into their queue while it holds fewer
    than `queue_depth` instructions that have not started; a FENCE is taken once everything
    before it has run. A queue starts its head once the tokens it pops are there (it then
    leaves the queue, runs and pushes its tokens). The replay stops when everything has run or
    nothing can move: a stall with work left is a deadlock (the hardware stops with DEADLOCK).
    """
    queues: dict[Queue, list[int]] = {queue: [] for queue in Queue}
    tokens: dict[tuple[Queue, Queue], int] = {}  # (from, to) -> tokens available
    dispatched = 0
    done = [False] * len(program)
    order: list[int] = []
    finished = 0  # instructions with done[i]; always at most `dispatched`
    while True:
        while dispatched < len(program):
            queue = program[dispatched].queue
            if queue is None:
                if finished < dispatched:
                    break
                done[dispatched] = True
                order.append(dispatched)
                finished += 1
            elif len(queues[queue]) >= queue_depth:
                break
            else:
                queues[queue].append(dispatched)
            dispatched += 1
        progressed = False
        for queue, waiting in queues.items():
            while waiting:
                ins = program[waiting[0]]
                needs = _token_edges(queue, ins, "pop")
                if any(tokens.get(edge, 0) < 1 for edge in needs):
                    break
                for edge in needs:
                    tokens[edge] -= 1
                for edge in _token_edges(queue, ins, "push"):
                    tokens[edge] = tokens.get(edge, 0) + 1
                index = waiting.pop(0)
                done[index] = True
                order.append(index)
                finished += 1
                progressed = True
        if not progressed:
            heads = [waiting[0] for waiting in queues.values() if waiting]
            stuck = min(heads) if heads else None
            return Replay(dispatched, tuple(done[:dispatched]), stuck, tuple(order))


def _token_edges(queue: Queue, ins: Instruction, kind: str) -> list[tuple[Queue, Queue]]:
    """(from, to) token channels an instruction pops (kind="pop") or pushes ("push")."""
    edges = []
    for side in ("prev", "next"):
        if not ins.deps[f"{kind}_{side}"]:
            continue
        other = Queue(queue + (-1 if side == "prev" else 1))
        edges.append((other, queue) if kind == "pop" else (queue, other))
    return edges
