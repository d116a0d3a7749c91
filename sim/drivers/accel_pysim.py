"""Run instruction programs on the whole accelerator (`hdl.top.Accelerator`) in pysim.

The counterpart, in Amaranth's own simulator, of `sim.drivers.accel_native`:
`run_accelerator` feeds the instruction words on ``cmd``, answers the memory port from a numpy
byte array with `sim.drivers.memory_model.MemoryModel`, and stops when the accelerator is idle,
reports an error, or hangs. Slow (about 1 s to elaborate, then about 700 cycles per second for a
2x3 array on a 2-core VM), so for small configurations; it needs no C++ toolchain::

    from hdl.isa import encode_program
    from sim.drivers.accel_pysim import run_accelerator

    run = run_accelerator(config, memory, encode_program(instructions))
    run.cycles, run.error, run.counters["macs"], run.memory

Cycle counting follows the native harness (docs/accelerator-harness.md): cycle 0 is the first
clock edge; before each edge the testbench drives ``cmd`` and the memory's side of ``mem``; the
run stops, before the edge of cycle *c*, in the first cycle *c* in which ``idle`` is high and
every word has been accepted (success) or ``error`` is nonzero (the accelerator's error), and
``cycles`` is *c*, equal to the accelerator's ``cycles`` counter. With ``stall=0`` the memory
follows the native harness's rules at full bandwidth (``bytes_per_cycle = bus_bytes``), so both
count the same cycles for the same program.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from hdl.config import AccelConfig
from hdl.isa import ErrorCode
from hdl.top import Accelerator
from hdl.top_ports import COUNTERS
from sim.drivers.accel_native import QUIET_CYCLES
from sim.drivers.accel_results import PortProtocolError
from sim.drivers.memory_model import MemoryModel
from sim.drivers.native import SimulationTimeoutError

__all__ = ["PysimRun", "run_accelerator"]

_WORDS = 4  # uint32 per instruction word


@dataclass(frozen=True)
class PysimRun:
    """Outcome of `run_accelerator` that did not raise.

    Attributes
    ----------
    memory : numpy.ndarray
        The memory when the run stopped (a copy of the input, written by the accelerator).
    cycles : int
        Cycles from reset until the run stopped: the first cycle in which the accelerator was
        idle with every word accepted, or idle with an error (as `AccelRun.cycles`).
    error : hdl.isa.ErrorCode
        ``ErrorCode.NONE`` or the accelerator's error status.
    error_index : int
        Index of the offending instruction word (meaningful with an error).
    accepted : int
        Instruction words accepted on ``cmd``.
    counters : dict of str to int
        The accelerator's ``counters`` port when the run stopped, named as in
        `hdl.top_ports.COUNTERS`.
    """

    memory: np.ndarray
    cycles: int
    error: ErrorCode
    error_index: int
    accepted: int
    counters: dict[str, int]


def _check_words(words: object) -> list[int]:
    if not isinstance(words, np.ndarray) or words.dtype != np.uint32:
        raise TypeError(f"words must be a uint32 numpy array, not {words!r}")
    if words.ndim != 2 or words.shape[1] != _WORDS:
        raise ValueError(f"words must have shape [n, {_WORDS}], not {list(words.shape)}")
    return [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in words]


def run_accelerator(
    config: AccelConfig,
    memory: np.ndarray,
    words: np.ndarray,
    *,
    latency: int | None = None,
    stall: float = 0.0,
    seed: int = 0,
    max_cycles: int | None = None,
    quiet_cycles: int = QUIET_CYCLES,
) -> PysimRun:
    """Run the instruction `words` on ``hdl.top.Accelerator(config)`` against `memory`.

    Parameters
    ----------
    config:
        The accelerator to elaborate (and the bus width of the memory).
    memory:
        Main memory, a 1-D uint8 array; byte address 0 is ``memory[0]``. Not modified: the run
        works on a copy, returned as `PysimRun.memory`.
    words:
        Instruction words, uint32 ``[n, 4]`` least significant first (`hdl.isa.encode_program`).
    latency:
        Memory read latency (`MemoryModel`); default ``config.mem_latency``.
    stall, seed:
        Random memory back-pressure: each ready/valid of the memory withheld with probability
        `stall` per cycle, seeded with `seed` (default none).
    max_cycles:
        Stop with `SimulationTimeoutError` after this many cycles; default no limit.
    quiet_cycles:
        Stop with `SimulationTimeoutError` after this many cycles in a row in which nothing
        moved on ``cmd`` or ``mem``, the ``macs`` counter did not change and the memory held
        nothing back (as the native harness's hang detection).

    Raises
    ------
    SimulationTimeoutError
        `max_cycles` reached or a hang (`quiet_cycles`); the message names the limit, and the
        exception carries ``cycles`` and the accelerator's ``counters``.
    MemoryRangeError, PortProtocolError
        A burst past the end of `memory`, misaligned or empty, or ``idle`` high while bursts
        were outstanding.
    TypeError, ValueError
        `memory` or `words` of the wrong type or shape.
    """
    if not isinstance(memory, np.ndarray) or memory.dtype != np.uint8 or memory.ndim != 1:
        raise TypeError(f"memory must be a 1-D uint8 numpy array, not {memory!r}")
    values = _check_words(words)
    latency = config.mem_latency if latency is None else latency
    dut = Accelerator(config)
    model = MemoryModel(memory.copy(), config.bus_bytes, latency, stall, seed)
    port = dut.mem
    result = {}

    def counters(ctx) -> dict[str, int]:
        return {name: int(ctx.get(getattr(dut.counters, name))) for name in COUNTERS}

    async def testbench(ctx):
        sent = cycle = quiet = last_macs = 0
        while True:
            if max_cycles is not None and cycle >= max_cycles:
                why = f"did not finish within max_cycles={max_cycles}"
            elif quiet >= quiet_cycles:
                why = f"hung: nothing moved for {quiet_cycles} cycles (quiet_cycles)"
            else:
                why = None
            if why is not None:
                reads, writes = model.outstanding()
                raise SimulationTimeoutError(
                    f"pysim run of the accelerator {why}; stopped at cycle {cycle} with {sent} "
                    f"of {len(values)} instruction words accepted, {reads} read and {writes} "
                    f"write words outstanding",
                    cycle,
                    counters(ctx),
                )
            model.step(ctx, port, cycle)
            offer = sent < len(values)
            ctx.set(dut.cmd.valid, offer)
            ctx.set(dut.cmd_last, sent == len(values) - 1)  # the program's final word
            if offer:
                ctx.set(dut.cmd.payload, values[sent])
            error = ErrorCode(ctx.get(dut.error))
            if (not offer or error is not ErrorCode.NONE) and ctx.get(dut.idle):
                _check_drained(model, cycle)
                result["run"] = PysimRun(
                    model.memory,
                    cycle,
                    error,
                    int(ctx.get(dut.error_index)),
                    sent,
                    counters(ctx),
                )
                return
            memory_port = model.watch(port)
            _, _, *sampled = await ctx.tick().sample(*memory_port, dut.cmd.ready, dut.counters.macs)
            model.edge(sampled[: len(memory_port)])
            cmd_ready, macs = sampled[len(memory_port) :]
            taken = bool(offer and cmd_ready)
            sent += taken
            progress = taken or model.moved or model.holding or macs != last_macs
            last_macs = macs
            quiet = 0 if progress else quiet + 1
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result["run"]


def _check_drained(model: MemoryModel, cycle: int) -> None:
    """`PortProtocolError` if the accelerator reports ``idle`` with bursts outstanding."""
    reads, writes = model.outstanding()
    if reads or writes:
        write = writes != 0
        address = model.writes[0][0] if write else model.reads[0].address
        beats = writes if write else reads
        what = "write" if write else "read"
        raise PortProtocolError(
            f"the accelerator's {what} burst at address {address} ({address:#x}), {beats} words "
            f"outstanding, is still outstanding while idle is high, at cycle {cycle}",
            address,
            beats,
            write,
            cycle,
        )
