"""What the accelerator must do with a command stream, predicted from `sim.isa_model`.

`expected_outcome` applies docs/isa.md to a stream of words as the hardware meets them:

1. each word is decoded and checked on its own (`hdl.isa.decode_word`,
   `hdl.isa.check_instruction`); the first bad word is where the dispatcher stops;
2. dispatch and the token protocol are replayed on the words before it (`hdl.isa.replay_dispatch`,
   queues of `hdl.isa.QUEUE_DEPTH`): if the dispatcher never gets past them, or (no bad word) some
   instruction waits for a token that never comes, the program deadlocks: DEADLOCK at the
   dispatcher's position (`hdl.isa.dispatch_error`; the harness marks the final word with
   ``cmd_last``);
3. the instructions the replay ran execute on `sim.isa_model.IsaModel`, in the order they started
   in the replay (a legal schedule), up to an SPMM's run-time error;
4. the verdict: ``ok`` or ``error`` (a code and an index); ``hang`` is never predicted (a
   hardware hang is a disagreement).

`Expected` also holds the final memory image and the counters the harness reports, with flags
saying where the prediction is exact. Not exact: the memory when instructions of different
queues race (`sim.races.find_races`: another legal schedule may leave other bytes), and the
memory and counters after an SPMM's run-time error when words follow it (the dispatcher keeps
dispatching until the error is found, docs/isa.md "Errors"), where the error itself may also be
a later word's dispatch error that the hardware meets first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import (
    PARAM_RECORD_BYTES,
    ErrorCode,
    Instruction,
    NzCache,
    Op,
    ProgramError,
    check_instruction,
    decode_word,
    dispatch_error,
    replay_dispatch,
)
from hdl.sparse import nonzero_beat_bytes
from sim.isa_model import IsaModel
from sim.races import find_races

#: Verdicts of a run.
OK, ERROR, HANG = "ok", "error", "hang"


@dataclass
class Expected:
    """The predicted outcome of one command stream (see the module doc).

    Attributes
    ----------
    verdict : str
        `OK` or `ERROR` (`HANG` is the hardware's verdict only).
    code, index : ErrorCode, int
        The error and the index of its word (`ERROR`; DEADLOCK: the dispatcher's position);
        NONE and -1 (`OK`).
    alternatives : list of (ErrorCode, int)
        Further (code, index) pairs the hardware may report instead (a run-time error raced
        by a later word's dispatch error).
    memory : numpy.ndarray
        The final main memory.
    counters : dict
        ``macs``, ``bytes_read`` (bus words, as the load DMAs read them), ``bytes_written``.
    accepted : int or None
        Words the dispatcher takes (`ERROR` at dispatch or DEADLOCK at a held word: that word
        and, behind it, one more in the check stage; `OK`: all); None where timing decides.
    memory_exact, counters_exact : bool
        Whether the memory and the counters are determined (see the module doc).
    races : int
        Racing pairs among the instructions that ran.
    blocked : int
        Instructions dispatched before the bad word or the deadlock that never ran (waiting
        for a token).
    """

    verdict: str
    code: ErrorCode
    index: int
    memory: np.ndarray
    counters: dict[str, int]
    accepted: int | None
    memory_exact: bool
    counters_exact: bool
    alternatives: list[tuple[ErrorCode, int]] = field(default_factory=list)
    races: int = 0
    blocked: int = 0


def dma_bytes_read(program: list[Instruction], config: AccelConfig) -> int:
    """Main-memory bytes the load DMAs read for `program`: every row (a LOAD's row, a parameter
    record, a ``nonzeros`` beat) is one burst of the bus words covering it."""
    bus = config.bus_bytes
    total = 0
    for ins in program:
        f = ins.fields
        if ins.op in (Op.LOAD_ACT, Op.LOAD_WGT):
            start, rows, width, stride = f["dram_addr"], f["rows"], f["width"], f["dram_stride"]
        elif ins.op is Op.LOAD_PARAMS:
            start, rows = f["dram_addr"], f["lanes"]
            width = stride = PARAM_RECORD_BYTES
        elif ins.op is Op.SPMM:
            if f["nz_cache"] == NzCache.REPLAY:  # from the engine's cache, not memory
                continue
            start, rows = f["nz_addr"], f["nz_beats"]
            width = stride = nonzero_beat_bytes(config)
        else:
            continue
        starts = start + stride * np.arange(rows, dtype=np.int64)
        total += int(((starts + width + bus - 1) // bus - starts // bus).sum()) * bus
    return total


def expected_outcome(config: AccelConfig, words: list[int], memory: np.ndarray) -> Expected:
    """The outcome of the 128-bit `words` on `config`'s accelerator with main memory `memory`
    (``config.mem_bytes`` bytes; not modified)."""
    program, bad = _checked_prefix(config, words)
    replay = replay_dispatch(program)
    model = IsaModel(config, memory)
    execution = model.execute(program, replay.order)
    fault = execution.fault
    ran = list(replay.order)
    if fault is not None:  # the SPMM that failed ran; nothing after it did
        ran = ran[: ran.index(fault.index) + 1]
    ran.sort()  # the race check takes a program in program order
    executed = [program[i] for i in ran]
    rows = {ran.index(i): count for i, count in execution.spmm_rows.items()}
    races = find_races(executed, config, rows)
    counters = {
        "macs": execution.counters.macs,
        "bytes_read": dma_bytes_read(executed, config),
        "bytes_written": execution.counters.bytes_stored,
    }
    outcome = dict(
        memory=model.memory,
        counters=counters,
        races=len(races),
        memory_exact=not races,
        counters_exact=True,
    )
    n = len(words)
    if fault is not None:  # it stops the dispatcher; the blocked instructions never run
        # Words after it may have been dispatched and run, and instructions the replay would
        # have run after it (before it in program order) may run: exact only without either.
        later = fault.index < n - 1 or replay.order[-1] != fault.index
        outcome.update(memory_exact=not races and not later, counters_exact=not later)
        expected = Expected(ERROR, fault.code, fault.index, accepted=None, **outcome)
        if bad is not None:
            expected.alternatives.append((bad.code, bad.index))
        return expected
    stop = dispatch_error(program, bad, replay)  # DEADLOCK, or the bad word
    if stop is not None:  # the dispatcher holds that word, and one more in the check stage
        blocked = len(replay.done) - len(replay.order)
        accepted = min(n, stop.index + 2)
        return Expected(ERROR, stop.code, stop.index, accepted=accepted, blocked=blocked, **outcome)
    return Expected(OK, ErrorCode.NONE, -1, accepted=n, **outcome)


def _checked_prefix(config: AccelConfig, words: list[int]):
    """(the instructions before the first bad word, that word's `ProgramError` or None)."""
    program = []
    for index, word in enumerate(words):
        try:
            instruction = decode_word(index, word, config)
            check_instruction(index, instruction, config)
        except ProgramError as error:
            return program, error
        program.append(instruction)
    return program, None
