"""What a run on the whole accelerator returns, and the memory faults it raises.

`AccelRun` (with its `MemoryStats`) is what `sim.drivers.accel_native.NativeAccelerator.run`
returns. `MemoryRangeError` and `PortProtocolError` are the memory faults of both accelerator
drivers: the native harness's, and `sim.drivers.memory_model`'s under `sim.drivers.accel_pysim`.
A run that hangs raises `sim.drivers.native.SimulationTimeoutError` instead. Each field is
described in docs/accelerator-harness.md.
"""

from __future__ import annotations

import dataclasses

from hdl.isa import ErrorCode

__all__ = ["AccelRun", "MemoryRangeError", "MemoryStats", "PortProtocolError"]


class MemoryRangeError(RuntimeError):
    """The accelerator requested a burst that reaches past the end of the memory array.

    Attributes
    ----------
    address, beats : int
        The burst's byte address and length in bus words.
    write : bool
        ``True`` for a write burst.
    memory_bytes : int
        Size of the memory array.
    cycles : int
        Cycle the request was accepted in (the run stopped there).
    """

    def __init__(
        self, message: str, address: int, beats: int, write: bool, memory_bytes: int, cycles: int
    ):
        super().__init__(message)
        self.address = address
        self.beats = beats
        self.write = write
        self.memory_bytes = memory_bytes
        self.cycles = cycles


class PortProtocolError(RuntimeError):
    """The accelerator broke the memory port's protocol (`hdl.memport`).

    A request with a misaligned address or zero beats, or ``idle`` high while bursts were
    outstanding (``beats`` is then the number of words still owed).

    Attributes
    ----------
    address, beats : int
        The offending burst's byte address and beats.
    write : bool
        ``True`` for a write burst.
    cycles : int
        Cycle the run stopped in.
    """

    def __init__(self, message: str, address: int, beats: int, write: bool, cycles: int):
        super().__init__(message)
        self.address = address
        self.beats = beats
        self.write = write
        self.cycles = cycles


@dataclasses.dataclass(frozen=True)
class MemoryStats:
    """What the memory model saw during one run.

    Attributes
    ----------
    read_bursts, write_bursts : int
        Requests accepted.
    read_words, written_words : int
        Bus words transferred on ``rdata`` / ``wdata``.
    read_wait_cycles : int
        Summed over read bursts: cycles from a request's acceptance to its first word's transfer
        (``latency + 1`` for a burst that waits on nothing else).
    rdata_stall_cycles : int
        Cycles a read word was offered and the accelerator did not take it.
    wdata_held_cycles : int
        Cycles the accelerator offered a write word that the memory held off (no write burst
        requested yet, or no bandwidth credit).
    """

    read_bursts: int
    write_bursts: int
    read_words: int
    written_words: int
    read_wait_cycles: int
    rdata_stall_cycles: int
    wdata_held_cycles: int


@dataclasses.dataclass(frozen=True)
class AccelRun:
    """Outcome of `NativeAccelerator.run` that did not raise.

    Attributes
    ----------
    cycles : int
        Cycles from reset until the run stopped: the first cycle in which the accelerator was
        idle with every word accepted, or idle with an error.
    error : hdl.isa.ErrorCode
        ``ErrorCode.NONE`` or the accelerator's error status.
    error_index : int
        Index of the offending instruction word (meaningful with an error).
    accepted : int
        Instruction words accepted on ``cmd`` (fewer than the program's after an error).
    cmd_stall_cycles : int
        Cycles a word was offered on ``cmd`` and not accepted.
    counters : dict of str to int
        The accelerator's ``counters`` port when the run stopped, named as in
        `hdl.top_ports.COUNTERS`.
    memory : MemoryStats
        The memory model's statistics.
    """

    cycles: int
    error: ErrorCode
    error_index: int
    accepted: int
    cmd_stall_cycles: int
    counters: dict[str, int]
    memory: MemoryStats
