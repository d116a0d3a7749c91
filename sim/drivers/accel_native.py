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

The library is built by `sim.drivers.accel_build` (`build_accel_native`) with the unit harness's
machinery (`sim.drivers.native_build`): the Yosys-optimised netlist (``netlist=``), the
content-addressed cache (key: Verilog, harness sources, flags, tool versions) and Verilator's
cached run-time objects. What a run returns and the memory faults it raises are in
`sim.drivers.accel_results`.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import WORD_BITS, ErrorCode
from hdl.top_ports import COUNTER_BITS, COUNTERS
from sim.drivers.accel_build import Factory, build_accel_native
from sim.drivers.accel_results import AccelRun, MemoryRangeError, MemoryStats, PortProtocolError
from sim.drivers.native import SimulationTimeoutError
from sim.drivers.native_binding import _declare_lifecycle, _HarnessModel
from sim.toolchain import BuildError

__all__ = ["QUIET_CYCLES", "NativeAccelerator"]

#: Default of `NativeAccelerator.run`'s ``quiet_cycles``: a run with no transfer on any port, no
#: change of the ``macs`` counter and no read held back by the memory for this many cycles in a
#: row has hung (a MATMUL of 65535 rows issues MACs all along, so it is never quiet).
QUIET_CYCLES = 1 << 16

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
        ``"optimized"`` (default) or ``"gen"``; see `sim.drivers.native_netlist`.

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
        fresh: bool = False,
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
        fresh:
            Run on a newly created model (every memory and register at its initial value, as
            after power-on) instead of the persistent one, whose memories (scratchpads,
            accumulator, the sparse engine's banks) keep what earlier runs left: reset clears
            registers only. Costs about 40 us (a 4x4 top).

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
        result, error = self._call(vcd_path, args, fresh=fresh)
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
