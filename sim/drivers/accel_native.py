"""Run instruction programs on the whole accelerator in a native Verilator harness.

The accelerator top (any component with `hdl.top_ports.accelerator_signature`, by default
``hdl.top.Accelerator``) is Verilated together with ``sim/native/accel_harness.cpp`` into a shared
library that runs one whole program per call: it feeds the instruction words on ``cmd``, answers
the memory port from a numpy byte array (modified in place), and stops when the accelerator is
idle, reports an error, hangs or leaves memory. docs/accelerator-harness.md gives the memory
model's rules, the stop conditions and measured speeds.

Typical use::

    from hdl.isa import encode_program
    from sim.drivers.accel_native import NativeAccelerator

    accelerator = NativeAccelerator(config)   # builds once per design, then cached
    memory = np.zeros(1 << 20, np.uint8)      # main memory, written in place
    run = accelerator.run(memory, encode_program(instructions), latency=20, bytes_per_cycle=8)
    run.cycles, run.error, run.counters["macs"], run.memory.read_words

Builds share `sim.drivers.native`'s machinery: the Yosys-optimised netlist (``netlist=``), the
content-addressed cache (key: Verilog, harness sources, flags, tool versions) and Verilator's
cached run-time objects.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from hdl.config import AccelConfig
from hdl.isa import WORD_BITS, ErrorCode
from hdl.top_ports import COUNTER_BITS, COUNTERS, accelerator_signature
from sim.drivers.native import (
    NETLISTS,
    SimulationTimeoutError,
    _build_library,
    _declare_lifecycle,
    _HarnessModel,
    _native_source,
    _optimized_verilog,
)
from sim.toolchain import BuildError

__all__ = [
    "ACCEL_TOP",
    "QUIET_CYCLES",
    "AccelBuild",
    "AccelRun",
    "MemoryRangeError",
    "MemoryStats",
    "NativeAccelerator",
    "PortProtocolError",
    "accel_verilog",
    "build_accel_native",
]

#: Verilog module name of the accelerator in native builds.
ACCEL_TOP = "tessera_accel"

#: Default of `NativeAccelerator.run`'s ``quiet_cycles``: a run with no transfer on any port, no
#: change of the ``macs`` counter and no read held back by the memory for this many cycles in a
#: row has hung (a MATMUL of 65535 rows issues MACs all along, so it is never quiet).
QUIET_CYCLES = 1 << 16

_PREFIX = "Vaccel"  # C++ class of the model; accel_harness.cpp includes "Vaccel.h"
_HARNESS = "accel_harness.cpp"
_ABI_VERSION = 1
_STATUS = 19
_WORDS = WORD_BITS // 32  # uint32 per instruction word
_PROGRESS = "macs"  # the counter whose change counts as progress for hang detection
# Return codes of tessera_accel_run.
_TIMEOUT, _HANG, _BAD_ARGUMENT, _FATAL, _MEMORY_RANGE, _PROTOCOL = -1, -2, -3, -4, -5, -6
# Indices into the status array (see accel_harness.cpp).
(
    _CYCLES,
    _ACCEPTED,
    _CMD_STALL,
    _READ_BURSTS,
    _WRITE_BURSTS,
    _READ_WORDS,
    _WRITTEN_WORDS,
    _READ_WAIT,
    _RDATA_STALL,
    _WDATA_HELD,
    _LAST_TRANSFER,
    _ERROR,
    _ERROR_INDEX,
    _PENDING_READS,
    _PENDING_WRITES,
    _FAULT_KIND,
    _FAULT_ADDRESS,
    _FAULT_BEATS,
    _FAULT_WRITE,
) = range(_STATUS)
# Fault kinds of kProtocol (accel_harness.cpp's Fault; 1 is kMemoryRange's).
_FAULTS = {
    2: "has an address that is not a multiple of the bus width",
    3: "has zero beats",
    4: "is still outstanding while idle is high",
}


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


@dataclasses.dataclass(frozen=True)
class AccelBuild:
    """A built accelerator harness library, as returned by `build_accel_native`.

    Attributes
    ----------
    key : str
        Content hash naming the cache folder.
    directory : pathlib.Path
        ``cache_dir()/native/<key>``: the Verilog, ``harness.cpp``, ``build.log``, the marker
        file and Verilator's ``obj/`` folder.
    library, log_file, verilog_path : pathlib.Path
        The shared library, the build log and the Verilog that was built.
    config : AccelConfig
        The configuration it simulates.
    trace : bool
        Built with VCD tracing.
    netlist : str
        ``"optimized"`` or ``"gen"`` (see `sim.drivers.native`).
    cached : bool
        ``True`` when an earlier build was reused.
    build_seconds : float
        Wall time of the (original) Verilator build.
    """

    key: str
    directory: Path
    library: Path
    log_file: Path
    verilog_path: Path
    config: AccelConfig
    trace: bool
    netlist: str
    cached: bool
    build_seconds: float


Factory = Callable[[AccelConfig], wiring.Component]


def _accelerator(config: AccelConfig) -> wiring.Component:
    from hdl.top import Accelerator

    return Accelerator(config)


def accel_verilog(
    config: AccelConfig, *, factory: Factory | None = None, netlist: str = "optimized"
) -> str:
    """Verilog (module `ACCEL_TOP`) of ``factory(config)`` as the native harness builds it.

    `factory` defaults to ``hdl.top.Accelerator``; it must return a component whose signature is
    ``accelerator_signature(config)``. ``netlist="gen"`` is Amaranth's Verilog; ``"optimized"``
    (the default) the same RTLIL optimised by Yosys (`sim.drivers.native`), with the same ports.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    if netlist not in NETLISTS:
        raise ValueError(f"netlist must be one of {NETLISTS}, not {netlist!r}")
    make = _accelerator if factory is None else factory
    component = make(config)
    if not isinstance(component, wiring.Component):
        raise TypeError(f"factory must return a wiring.Component, not {component!r}")
    if component.signature != accelerator_signature(config):
        raise ValueError(
            "factory must return a component with accelerator_signature(config), not "
            f"{component.signature!r}"
        )
    if netlist == "gen":
        return verilog.convert(component, name=ACCEL_TOP, emit_src=False)
    text = rtlil.convert(component, name=ACCEL_TOP, emit_src=False)
    return _optimized_verilog(text, ACCEL_TOP)


def build_accel_native(
    config: AccelConfig,
    *,
    trace: bool = False,
    factory: Factory | None = None,
    netlist: str = "optimized",
) -> AccelBuild:
    """Build (or reuse) the native harness library of ``factory(config)`` (see `accel_verilog`).

    Raises
    ------
    ToolchainError
        Verilator, perl, make or a C++ compiler is missing.
    BuildError
        Verilator or the C++ compiler failed; the message ends with the tail of the build log.
    """
    source = accel_verilog(config, factory=factory, netlist=netlist)
    built = _build_library(
        source,
        ACCEL_TOP,
        _native_source(_HARNESS),
        prefix=_PREFIX,
        macros=[
            f"-DTESSERA_BUS_BYTES={config.bus_bytes}",
            f"-DTESSERA_COUNTERS={len(COUNTERS)}",
            f"-DTESSERA_COUNTER_BITS={COUNTER_BITS}",
        ],
        trace=trace,
        record={"harness": "accelerator", "config": config.to_dict(), "netlist": netlist},
    )
    return AccelBuild(
        key=built.key,
        directory=built.directory,
        library=built.library,
        log_file=built.log_file,
        verilog_path=built.verilog_path,
        config=config,
        trace=trace,
        netlist=netlist,
        cached=built.cached,
        build_seconds=built.build_seconds,
    )


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    pointer, i64, u64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64
    _declare_lifecycle(lib, "tessera_accel")
    lib.tessera_accel_run.argtypes = [
        pointer,  # handle
        pointer,  # memory
        i64,  # memory bytes
        pointer,  # program
        i64,  # words
        i64,  # latency
        i64,  # bytes_per_cycle
        u64,  # max_cycles (0: none)
        u64,  # quiet_limit (0: none)
        i64,  # progress counter index
        pointer,  # counters
        pointer,  # status
    ]
    lib.tessera_accel_run.restype = i64
    return lib


def _count(name: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; a `TypeError` / `ValueError` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, not {value!r}")
    return int(value)


class NativeAccelerator(_HarnessModel):
    """The accelerator of `config` as a native Verilator simulation.

    Parameters
    ----------
    config:
        The configuration (the bus width and default memory latency come from it).
    trace:
        Build with VCD tracing, so that `run` can write waveforms (``vcd_path``).
    factory:
        Makes the component to simulate from `config` (default ``hdl.top.Accelerator``); any
        component with ``accelerator_signature(config)``, e.g. a stand-in in tests.
    netlist:
        ``"optimized"`` (default) or ``"gen"``; see `sim.drivers.native`.

    The library is built on first use of a design and reused from the cache afterwards. One
    `NativeAccelerator` runs one program at a time (calls from several threads are serialised);
    the simulation itself runs without the GIL.
    """

    def __init__(
        self,
        config: AccelConfig,
        *,
        trace: bool = False,
        factory: Factory | None = None,
        netlist: str = "optimized",
    ):
        self.config = config
        self.build = build_accel_native(config, trace=trace, factory=factory, netlist=netlist)
        self._lib = _load(self.build.library)
        info = (ctypes.c_int64 * 8)()
        self._lib.tessera_accel_info(info)
        found = tuple(info[:6])
        expected = (
            _ABI_VERSION,
            config.bus_bytes,
            len(COUNTERS),
            COUNTER_BITS,
            int(trace),
            _STATUS,
        )
        if found != expected:
            raise BuildError(
                f"native library {self.build.library} does not match this harness (abi, bus "
                f"bytes, counters, counter bits, traced, status: found {found}, expected "
                f"{expected}); delete {self.build.directory} to rebuild it"
            )
        self._open(self._lib, "tessera_accel", self.build.library)

    def run(
        self,
        memory: np.ndarray,
        program: np.ndarray,
        *,
        latency: int | None = None,
        bytes_per_cycle: int | None = None,
        max_cycles: int | None = None,
        quiet_cycles: int | None = None,
        vcd_path: str | os.PathLike[str] | None = None,
    ) -> AccelRun:
        """Reset the accelerator and run `program` against `memory` until it stops.

        Parameters
        ----------
        memory:
            Main memory: a writeable, contiguous 1-D uint8 array; the accelerator's writes land
            in it in place. Byte address 0 is ``memory[0]``.
        program:
            Instruction words, uint32 ``[n, 4]`` least significant first
            (`hdl.isa.encode_program`).
        latency:
            Cycles between a read request's acceptance and the cycle its first word is offered
            (that is ``latency + 1`` cycles after the request's cycle); default
            ``config.mem_latency``.
        bytes_per_cycle:
            Memory bandwidth of each direction (read, write) in bytes per cycle, 1 to
            ``config.bus_bytes`` (the default, one word per cycle).
        max_cycles:
            Stop (`SimulationTimeoutError`) after this many cycles; default no limit.
        quiet_cycles:
            Stop (`SimulationTimeoutError`) after this many quiet cycles in a row (no transfer
            on any port, no new MACs, the memory not holding back a read); default
            `QUIET_CYCLES`.
        vcd_path:
            Write a VCD waveform of this run (reset included) there; needs ``trace=True``.

        Returns
        -------
        AccelRun
            Cycles, error status, counters and memory statistics. An accelerator error (e.g.
            BAD_OPCODE) is returned, not raised: ``run.error`` and ``run.error_index``.

        Raises
        ------
        SimulationTimeoutError
            The accelerator did not finish within `max_cycles` or hung (`quiet_cycles`); its
            ``counters`` are the accelerator's.
        MemoryRangeError
            A burst reached past the end of `memory`.
        PortProtocolError
            A misaligned or empty burst, or ``idle`` high while bursts were outstanding.
        TypeError, ValueError
            An argument of the wrong type, shape or range (the message names it).
        """
        bus = self.config.bus_bytes
        memory = self._check_memory(memory)
        program = self._check_program(program)
        latency = _count(
            "latency", self.config.mem_latency if latency is None else latency, 0, 1 << 31
        )
        bandwidth = _count(
            "bytes_per_cycle", bus if bytes_per_cycle is None else bytes_per_cycle, 1, bus
        )
        limit = 0 if max_cycles is None else _count("max_cycles", max_cycles, 1)
        quiet = QUIET_CYCLES if quiet_cycles is None else _count("quiet_cycles", quiet_cycles, 1)
        if vcd_path is not None and not self.build.trace:
            raise ValueError("vcd_path needs a traced build: NativeAccelerator(config, trace=True)")
        counters = np.zeros(len(COUNTERS), np.int64)
        status = np.zeros(_STATUS, np.int64)
        args = (
            memory.ctypes.data,
            memory.size,
            program.ctypes.data,
            program.shape[0],
            latency,
            bandwidth,
            limit,
            quiet,
            list(COUNTERS).index(_PROGRESS),
            counters.ctypes.data,
            status.ctypes.data,
        )
        result, error = self._call(vcd_path, args)
        named = dict(zip(COUNTERS, (int(value) for value in counters), strict=True))
        if result >= 0:
            return self._result(int(result), status, named)
        if result in (_TIMEOUT, _HANG):
            why = (
                f"did not finish within max_cycles={limit}"
                if result == _TIMEOUT
                else f"hung: nothing moved for {quiet} cycles"
            )
            raise SimulationTimeoutError(
                f"native simulation of the accelerator {why}; stopped at cycle "
                f"{status[_CYCLES]} with {status[_ACCEPTED]} of {program.shape[0]} instruction "
                f"words accepted, {status[_PENDING_READS]} read and {status[_PENDING_WRITES]} "
                f"write words outstanding; last transfer in cycle {status[_LAST_TRANSFER]}",
                int(status[_CYCLES]),
                named,
            )
        if result in (_MEMORY_RANGE, _PROTOCOL):
            raise self._fault(int(result), status, memory.size)
        if result == _FATAL:
            raise RuntimeError(f"native simulation failed: {error.decode(errors='replace')}")
        raise ValueError(f"tessera_accel_run rejected its arguments (code {result})")

    def _check_memory(self, memory: Any) -> np.ndarray:
        if not isinstance(memory, np.ndarray):
            raise TypeError(f"memory must be a numpy array, not {type(memory)!r}")
        if memory.dtype != np.uint8:
            raise TypeError(f"memory must be a uint8 array, not {memory.dtype}")
        if memory.ndim != 1:
            raise ValueError(f"memory must be one-dimensional, not of shape {memory.shape}")
        if not memory.flags.c_contiguous or not memory.flags.writeable:
            raise ValueError(
                "memory must be a contiguous, writeable array (it is written in place)"
            )
        return memory

    def _check_program(self, program: Any) -> np.ndarray:
        if not isinstance(program, np.ndarray):
            raise TypeError(f"program must be a numpy array, not {type(program)!r}")
        if program.dtype != np.uint32:
            raise TypeError(f"program must be a uint32 array, not {program.dtype}")
        if program.ndim != 2 or program.shape[1] != _WORDS:
            raise ValueError(f"program must have shape [n, {_WORDS}], not {list(program.shape)}")
        return np.ascontiguousarray(program)

    def _result(self, cycles: int, status: np.ndarray, counters: dict[str, int]) -> AccelRun:
        code = int(status[_ERROR])
        try:
            error = ErrorCode(code)
        except ValueError:
            raise RuntimeError(
                f"the accelerator reported error {code}, which is no hdl.isa.ErrorCode"
            ) from None
        return AccelRun(
            cycles=cycles,
            error=error,
            error_index=int(status[_ERROR_INDEX]),
            accepted=int(status[_ACCEPTED]),
            cmd_stall_cycles=int(status[_CMD_STALL]),
            counters=counters,
            memory=MemoryStats(
                read_bursts=int(status[_READ_BURSTS]),
                write_bursts=int(status[_WRITE_BURSTS]),
                read_words=int(status[_READ_WORDS]),
                written_words=int(status[_WRITTEN_WORDS]),
                read_wait_cycles=int(status[_READ_WAIT]),
                rdata_stall_cycles=int(status[_RDATA_STALL]),
                wdata_held_cycles=int(status[_WDATA_HELD]),
            ),
        )

    def _fault(self, code: int, status: np.ndarray, memory_bytes: int) -> RuntimeError:
        kind = int(status[_FAULT_KIND])
        address, beats = int(status[_FAULT_ADDRESS]), int(status[_FAULT_BEATS])
        write, cycles = bool(status[_FAULT_WRITE]), int(status[_CYCLES])
        what = "write" if write else "read"
        if code == _MEMORY_RANGE:
            end = address + beats * self.config.bus_bytes
            return MemoryRangeError(
                f"the accelerator's {what} burst at address {address} ({address:#x}) of {beats} "
                f"words reaches byte {end}, past the end of memory ({memory_bytes} bytes), at "
                f"cycle {cycles}",
                address,
                beats,
                write,
                memory_bytes,
                cycles,
            )
        words = "words outstanding" if kind == 4 else "beats"
        return PortProtocolError(
            f"the accelerator's {what} burst at address {address} ({address:#x}), {beats} "
            f"{words}, {_FAULTS[kind]} "
            f"(bus width {self.config.bus_bytes} bytes), at cycle {cycles}",
            address,
            beats,
            write,
            cycles,
        )
