"""Run a `StreamProgram` on its hardware unit in a native Verilator harness: the fast path.

The unit's Verilog (any unit of `hdl.units`: the systolic array, the requantizer, the sparse
engine) is Verilated together with ``sim/native/harness.cpp`` into a shared library that runs a
whole program per call (all beats in, all beats out, flow control and cycle counting in C++),
loaded with ctypes. Results and cycle counts follow `sim.drivers.pysim` exactly: after reset,
cycle 0 is the first clock edge; with no flow control the cycle count equals pysim's and the
models of `sim.cycles`. Random flow control (`FlowControl`) uses the harness's own generator, so
the outputs are the same as pysim's but the cycle counts of a random run are not.

Typical use::

    from sim.array_program import gemm_program
    from sim.drivers.native import NativeSim

    array = NativeSim(config)                   # builds once per design, then cached
    output, cycles, counters = array.run(gemm_program(a, b, config))
    engine = NativeSim(config, unit="sparse")   # the sparse engine, for spmm_program(w, x, config)

Speed (one thread, 256x256x256 GEMM, 2-core AMD EPYC VM): about 4.5M cycles/s (8x8 WS),
2.5M (8x8 OS), 1.3M (16x16 WS) and 0.75M (16x16 OS). Three things make it fast:

- Netlist. By default the library is built from the unit's RTLIL optimised by Yosys
  (`sim.drivers.native_netlist`: ``opt_dff`` alone makes it 6-10x faster).
- ``sim/native/fastops.h`` replaces Verilator's sign-extension helpers in the model
  (`sim.drivers.native_build`).
- The whole program runs in one C++ call, two ``eval()`` per cycle, no Python per cycle.

`sim.drivers.unit_build` builds the library (`build_native`, cached per design) and
`sim.drivers.native_binding` holds the model's lifecycle; `sim.drivers.accel_native` runs the
whole accelerator with the same machinery and its own harness.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hdl.config import AccelConfig
from hdl.units import get_unit, payload_bits, payload_words
from sim.drivers.native_binding import _declare_lifecycle, _HarnessModel
from sim.drivers.pysim import FlowControl, quiet_limit, unit_latency
from sim.drivers.unit_build import build_native
from sim.stream_program import StreamProgram
from sim.toolchain import BuildError

__all__ = ["NO_FLOW_CONTROL", "NativeSim", "SimulationTimeoutError", "run_native"]

#: Inputs always valid, output always ready (the default of `NativeSim.run`).
NO_FLOW_CONTROL = FlowControl()

_ABI_VERSION = 3
_COUNTERS = 8
# Return codes of tessera_run.
_TIMEOUT, _NO_PROGRESS, _BAD_ARGUMENT, _FATAL = -1, -2, -3, -4


class SimulationTimeoutError(RuntimeError):
    """A native run stopped before the program's last output beat: the unit hung.

    Attributes
    ----------
    cycles : int
        Cycles simulated when the run was stopped.
    counters : dict of str to int
        The run's counters (see `NativeSim.run`), e.g. ``out_beats`` collected so far.
    """

    def __init__(self, message: str, cycles: int, counters: dict[str, int]):
        super().__init__(message)
        self.cycles = cycles
        self.counters = counters


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    pointer, i64, u64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_double
    _declare_lifecycle(lib, "tessera")
    lib.tessera_run.argtypes = [
        pointer,  # handle
        pointer,  # in0
        i64,  # beats0
        pointer,  # in1
        i64,  # beats1
        pointer,  # out
        i64,  # out_beats
        f64,  # idle
        f64,  # stall
        u64,  # seed
        i64,  # ordered (StreamProgram.ORDERED)
        u64,  # max_cycles (0: none)
        u64,  # quiet_limit (0: none)
        pointer,  # counters
    ]
    lib.tessera_run.restype = i64
    return lib


class NativeSim(_HarnessModel):
    """One hardware unit of `config` as a native Verilator simulation.

    Parameters
    ----------
    config:
        The configuration; programs must be made for the same one.
    unit:
        The `hdl.units` name: ``"array"`` (default), ``"requant"`` or ``"sparse"``.
    trace:
        Build with VCD tracing, so that `run` can write waveforms (``vcd_path``); a traced
        library is a separate build and simulates somewhat slower.
    netlist:
        ``"optimized"`` (default) or ``"gen"``; see `sim.drivers.native_netlist`.

    The library is built on first use of a design (`build_native`) and reused from the cache
    afterwards. One `NativeSim` runs one program at a time (calls from several threads are
    serialised); the simulation itself runs without the GIL.
    """

    def __init__(
        self,
        config: AccelConfig,
        unit: str = "array",
        *,
        trace: bool = False,
        netlist: str = "optimized",
    ):
        self.config = config
        self.unit = get_unit(unit)
        self.build = build_native(config, unit=unit, trace=trace, netlist=netlist)
        self.streams = self.unit.streams(config)
        self._bits = payload_bits(self.unit, config)
        self._out_words = payload_words(self._bits["out"])
        self._lib = _load(self.build.library)
        info = (ctypes.c_int64 * 8)()
        self._lib.tessera_info(info)
        abi, streams, words0, words1, words_out, traced, _, counters = list(info)
        expected = (_ABI_VERSION, len(self.streams), int(trace), _COUNTERS, self._out_words)
        found = (abi, streams, traced, counters, words_out)
        if found != expected:
            raise BuildError(
                f"native library {self.build.library} does not match the {unit} unit "
                f"(abi, streams, traced, counters, out words: found {found}, expected "
                f"{expected}); delete {self.build.directory} to rebuild it"
            )
        self.words = dict(zip(self.streams, (words0, words1), strict=False))
        self._open(self._lib, "tessera", self.build.library)

    def _check_program(self, program: StreamProgram) -> list[np.ndarray]:
        if not isinstance(program, StreamProgram):
            raise TypeError(f"program must be a StreamProgram, not {type(program)!r}")
        if self.unit.name != program.UNIT:
            raise ValueError(
                f"program is for the {program.UNIT!r} unit, this NativeSim simulates the "
                f"{self.unit.name!r} unit"
            )
        mine, theirs = self.config.to_dict(), program.config.to_dict()
        differences = [
            f"{key} {theirs[key]!r} != {mine[key]!r}" for key in mine if mine[key] != theirs[key]
        ]
        if differences:
            raise ValueError(
                "program is for another configuration than this NativeSim's: "
                + ", ".join(differences)
            )
        if set(program.inputs) != set(self.streams):
            raise ValueError(
                f"program streams {sorted(program.inputs)} differ from the unit's "
                f"{sorted(self.streams)}"
            )
        beats = []
        for name in self.streams:
            data = program.inputs[name]
            if data.ndim != 2 or data.shape[1] != self.words[name]:
                raise ValueError(
                    f"stream {name!r} must have shape [beats, {self.words[name]}], "
                    f"not {list(data.shape)}"
                )
            data = np.ascontiguousarray(data, dtype=np.uint32)
            spare = self._bits[name] % 32
            if spare and data.size and np.any(data[:, -1] >> np.uint32(spare)):
                # Verilator expects clean inputs: nothing above the port's width.
                raise ValueError(f"stream {name!r} has bits set above its {spare}-bit last word")
            beats.append(data)
        if program.output_beats < 0:
            raise ValueError(f"output_beats must be >= 0, not {program.output_beats}")
        return beats

    def run(
        self,
        program: StreamProgram,
        flow: FlowControl = NO_FLOW_CONTROL,
        vcd_path: str | os.PathLike[str] | None = None,
        *,
        max_cycles: int | None = None,
        quiet_cycles: int | None = None,
    ) -> tuple[np.ndarray, int, dict[str, int]]:
        """Reset the unit and run `program`; semantics of `sim.drivers.pysim.run_pysim`.

        Parameters
        ----------
        program:
            What to stream in and how many ``out`` beats to collect.
        flow:
            Random idle input cycles and withheld output ``ready`` (seeded, reproducible).
        vcd_path:
            Write a VCD waveform of this run (reset included) there; needs ``trace=True``.
        max_cycles:
            Stop after this many cycles (default: no limit besides `quiet_cycles`).
        quiet_cycles:
            Stop once no stream transferred for this many cycles in a row, i.e. the unit
            hung; default `sim.drivers.pysim.quiet_limit`.

        Returns
        -------
        (output, cycles, counters)
            ``out`` beats as uint32 words ``[output_beats, words]`` (for the program's
            ``assemble``); the cycle count (index of the cycle of the last output
            transfer, plus one); counters: ``cycles``, ``<stream>_beats`` per input stream and
            ``out_beats`` (beats transferred), ``out_stall_cycles`` (out valid, not ready),
            ``<stream>_blocked_cycles`` (input valid, not ready), ``last_transfer_cycle``.

        Raises
        ------
        SimulationTimeoutError
            The run hit `max_cycles` or `quiet_cycles` before the last output beat.
        ValueError
            The program is for another unit or configuration, or its streams have the wrong
            shape.
        """
        if not isinstance(flow, FlowControl):
            raise TypeError(f"flow must be a FlowControl, not {type(flow)!r}")
        beats = self._check_program(program)
        if vcd_path is not None and not self.build.trace:
            raise ValueError("vcd_path needs a traced build: NativeSim(config, trace=True)")
        for name, value in (("max_cycles", max_cycles), ("quiet_cycles", quiet_cycles)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive int or None, not {value!r}")
        if quiet_cycles is None:
            quiet = quiet_limit(flow, unit_latency(self.config))
        else:
            quiet = quiet_cycles
        limit = 0 if max_cycles is None else max_cycles
        in0 = beats[0]
        in1 = beats[1] if len(beats) > 1 else np.zeros((0, 1), np.uint32)
        output = np.zeros((program.output_beats, self._out_words), np.uint32)
        counters = np.zeros(_COUNTERS, np.int64)
        args = (
            in0.ctypes.data,
            in0.shape[0],
            in1.ctypes.data,
            in1.shape[0],
            output.ctypes.data,
            program.output_beats,
            float(flow.idle),
            float(flow.stall),
            int(flow.seed) & 0xFFFF_FFFF_FFFF_FFFF,
            int(program.ORDERED),
            limit,
            quiet,
            counters.ctypes.data,
        )
        result, error = self._call(vcd_path, args)
        named = self._counters(counters)
        if result >= 0:
            return output, int(result), named
        if result in (_TIMEOUT, _NO_PROGRESS):
            raise SimulationTimeoutError(
                self._hang_message(program, result, named, limit, quiet), named["cycles"], named
            )
        if result == _FATAL:
            raise RuntimeError(f"native simulation failed: {error.decode(errors='replace')}")
        raise ValueError(f"tessera_run rejected its arguments (code {result})")

    def _counters(self, values: np.ndarray) -> dict[str, int]:
        names = {"cycles": 0, "out_beats": 3, "out_stall_cycles": 4, "last_transfer_cycle": 7}
        for index, stream in enumerate(self.streams):
            names[f"{stream}_beats"] = 1 + index
            names[f"{stream}_blocked_cycles"] = 5 + index
        return {name: int(values[index]) for name, index in names.items()}

    def _hang_message(
        self, program: StreamProgram, code: int, counters: dict[str, int], limit: int, quiet: int
    ) -> str:
        config = self.config
        if code == _TIMEOUT:
            why = f"did not finish within max_cycles={limit}"
        else:
            why = f"hung: no transfer on any stream for {quiet} cycles"
        consumed = ", ".join(
            f"{name} {counters[f'{name}_beats']}/{program.inputs[name].shape[0]}"
            for name in self.streams
        )
        return (
            f"native simulation of the {self.unit.name} unit ({config.rows}x{config.cols} "
            f"{config.dataflow.value}) {why}; stopped at cycle {counters['cycles']} with "
            f"{counters['out_beats']} of {program.output_beats} output beats collected "
            f"(input beats consumed: {consumed})"
        )


_SIMS: dict[tuple[Any, ...], NativeSim] = {}
_SIMS_LOCK = threading.Lock()


def run_native(
    program: StreamProgram, flow: FlowControl = NO_FLOW_CONTROL, vcd_path: str | None = None
) -> tuple[np.ndarray, int]:
    """`sim.drivers.pysim.run_pysim` on the native harness: (``out`` beats, cycles).

    Keeps one `NativeSim` per unit, configuration and tracing for the rest of the process.
    """
    key = (program.UNIT, program.config, vcd_path is not None)
    with _SIMS_LOCK:
        sim = _SIMS.get(key)
        if sim is None:
            sim = _SIMS[key] = NativeSim(program.config, program.UNIT, trace=vcd_path is not None)
    output, cycles, _ = sim.run(program, flow, vcd_path)
    return output, cycles
