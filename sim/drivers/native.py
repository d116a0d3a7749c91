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

- Netlist. By default the library is built not from the `hdl.units.Unit.verilog` text itself
  but from the same RTLIL run through more Yosys passes (``netlist="optimized"``: flatten,
  ``opt``, ``wreduce``, ``opt_dff``). Amaranth computes every register's next value in a
  combinational process (the array-wide enable is a mux in front of each register), which
  Verilator evaluates as input-dependent logic twice per cycle; ``opt_dff`` folds the enables
  into the flip-flops (6-10x faster), ``opt`` merges equal registers, and Yosys's bit-by-bit sign
  extensions are rewritten as replications. It is the same design (Yosys's passes preserve
  behaviour; the tests check both netlists bit-exactly); ``netlist="gen"`` builds the exact
  ``Unit.verilog`` text.
- ``sim/native/fastops.h`` replaces Verilator's sign-extension helpers in the model with shift
  pairs that compile to one instruction (about half of all instructions of a 16x16 array).
- The whole program runs in one C++ call, two ``eval()`` per cycle, no Python per cycle.

Builds are content-addressed in ``cache_dir()/native/<key>/`` (key: Verilog, harness sources,
flags, tool versions), built under a lock with a marker file (`sim.toolchain.cached_build`), so
a design is Verilated once per machine; Verilator's run-time objects and the optimised netlists
are cached too. Cold builds on 2 cores: 2x2 about 4 s (plus 7 s once for the run-time objects),
16x16 about 15-30 s (Yosys 5-10 s of it, then cached). `sim.drivers.accel_native` builds the
whole accelerator with the same machinery (`_build_library`) and its own harness.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import importlib.resources
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from hdl.config import AccelConfig
from hdl.units import Unit, get_unit, payload_bits, payload_words
from sim.drivers.pysim import FlowControl, quiet_limit, unit_latency
from sim.stream_program import StreamProgram
from sim.toolchain import (
    MAKEFLAGS,
    VERILATOR_BUILD_ARGS,
    BuildError,
    ToolchainError,
    _log_tail,
    _require_build_tools,
    cache_dir,
    cached_build,
    content_hash,
    simulator_env,
    tool_versions,
    verilator_bin_dir,
)

__all__ = [
    "NATIVE_BUILD_ARGS",
    "NETLISTS",
    "NO_FLOW_CONTROL",
    "NativeBuild",
    "NativeSim",
    "SimulationTimeoutError",
    "build_native",
    "native_verilog",
    "run_native",
]

#: Verilator flags of native builds (besides the fixed ones `build_native` adds).
NATIVE_BUILD_ARGS: tuple[str, ...] = (*VERILATOR_BUILD_ARGS, "--noassert")

#: Inputs always valid, output always ready (the default of `NativeSim.run`).
NO_FLOW_CONTROL = FlowControl()

#: Netlists a native build can be made from; see the module docstring.
NETLISTS = ("optimized", "gen")

# C++ flags of every object in the library: position-independent (it is a shared object), only
# the harness's tessera_* functions exported (two designs loaded in one process stay apart), and
# Verilator's fatal errors thrown as exceptions instead of exiting the process.
_CFLAGS = ("-fPIC", "-fvisibility=hidden", "-DVL_USER_FATAL")
_PREFIX = "Varray"  # C++ class of the model (--prefix); harness.cpp includes "Varray.h"
_LIBRARY = "libtessera.so"
_FASTOPS = "fastops.h"  # faster sign extension for the model, see sim/native/fastops.h
_COMMON = "harness_common.h"  # what every harness shares (ports, model lifecycle, vl_fatal)
_MAKEFILE = "tessera.mk"


def _wrapper_makefile(prefix: str) -> str:
    """Makefile of the library: Verilator's (model class `prefix`) plus the harness.

    It builds on top of Verilator's generated makefile (all its flags, the precompiled header of
    the model, the run-time objects), with the harness compiled on its own: given to Verilator
    as a user file, it would wait for the model's precompiled header (3-4 s even for a 2x2
    array) because of --compiler-include. The harness source is ``harness.cpp`` in the build
    folder, whichever harness it is.
    """
    return f"""\
include {prefix}.mk

harness.o: ../harness.cpp
\t$(OBJCACHE) $(CXX) $(CXXFLAGS) $(CPPFLAGS) $(OPT_FAST) -c -o $@ $<

{_LIBRARY}: harness.o $(VK_GLOBAL_OBJS) $(VM_PREFIX)__ALL.a
\t$(LINK) $(LDFLAGS) -shared $^ $(LOADLIBES) $(LDLIBS) $(LIBS) -o $@
"""


_FORMAT = "tessera-native-build-v3"
_ABI_VERSION = 3
_COUNTERS = 8
_YOSYS_PASSES = ("proc", "flatten", "opt", "wreduce", "opt_dff", "opt_clean -purge")
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


# --------------------------------------------------------------------------------------------
# Netlist and build
# --------------------------------------------------------------------------------------------

_IDENT = r"(?:_\d+_|\\\S+ |[A-Za-z_][A-Za-z0-9_$]*)"
_SIGN_EXTENSION = re.compile(r"\{ ((" + _IDENT + r")\[\d+\]), ((?:\1, )*)(" + _IDENT + r") \}")


def _compact_sign_extensions(verilog: str) -> str:
    """Write Yosys's bit-by-bit sign extensions ``{ x[15], x[15], x }`` as ``{ {2{x[15]}}, x }``.

    The two are the same expression; Verilator turns the replication into one shift-and-or, but
    the long concatenation into a chain of per-bit operations (a 16x16 array has 256 of them).
    """

    def replace(match: re.Match[str]) -> str:
        bit, name, rest, base = match.groups()
        if name != base:
            return match.group(0)
        return f"{{ {{{1 + rest.count(bit)}{{{bit}}}}}, {base} }}"

    return _SIGN_EXTENSION.sub(replace, verilog)


def _yosys():
    try:
        from amaranth._toolchain.yosys import find_yosys
    except ImportError as error:  # pragma: no cover - amaranth is a dependency
        raise ToolchainError(
            f"Amaranth's Yosys runner is not importable ({error}); install the project's "
            "dependencies with `pip install -e .`."
        ) from error
    return find_yosys(lambda version: version >= (0, 40))


def _optimized_verilog(rtlil_text: str, top: str) -> str:
    """Run `_YOSYS_PASSES` on the RTLIL; the result is cached on disk (16x16: 5-10 s of Yosys)."""
    yosys = _yosys()
    key = content_hash(
        "tessera-native-netlist-v1",
        rtlil_text,
        list(_YOSYS_PASSES),
        yosys.__name__,
        list(yosys.version()),
    )
    path = cache_dir() / "native" / "netlist" / f"{key}.v"
    if path.is_file():
        return path.read_text()
    script = "\n".join(
        [
            f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil",
            f"hierarchy -top {top}",
            *_YOSYS_PASSES,
            "write_verilog -noattr",
        ]
    )
    verilog = _compact_sign_extensions(yosys.run(["-q", "-"], script, ignore_warnings=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{key}.", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        file.write(verilog)
    os.replace(partial, path)
    return verilog


def native_verilog(config: AccelConfig, netlist: str = "optimized", unit: str = "array") -> str:
    """Verilog of `unit` for `config` as the native harness builds it.

    ``netlist="gen"`` is exactly `hdl.units.Unit.verilog`; ``"optimized"`` (the default) is the
    same RTLIL flattened and optimised by Yosys (module docstring), with the same ports.
    """
    if netlist not in NETLISTS:
        raise ValueError(f"netlist must be one of {NETLISTS}, not {netlist!r}")
    spec = get_unit(unit)
    if netlist == "gen":
        return spec.verilog(config)
    from amaranth.back import rtlil

    text = rtlil.convert(spec.component(config), name=spec.top, emit_src=False)
    return _optimized_verilog(text, spec.top)


@functools.lru_cache(maxsize=4)
def _native_source(name: str) -> str:
    """Text of a file of the ``sim.native`` package (``harness.cpp``, ``fastops.h``)."""
    return importlib.resources.files("sim.native").joinpath(name).read_text()


@functools.lru_cache(maxsize=1)
def _compiler_identity() -> tuple[str, str]:
    """(path, first line of ``--version``) of ``c++``, the compiler the wheel's makefiles run."""
    path = shutil.which("c++") or ""
    if not path:
        return "", ""
    completed = subprocess.run(
        [path, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    return path, (completed.stdout.splitlines() or [""])[0]


def _logged_run(command: list[str], cwd: Path, log: Any, log_file: Path) -> None:
    """Run one build step with its output appended to `log`; `BuildError` if it fails."""
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    try:
        completed = subprocess.run(
            command,
            cwd=cwd,
            env=simulator_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=3600,
        )
    except subprocess.TimeoutExpired as error:
        raise BuildError(
            f"native build step {command[0]} timed out after {error.timeout} s; log: {log_file}"
        ) from error
    log.flush()
    if completed.returncode != 0:
        raise BuildError(
            f"native build step `{Path(command[0]).name}` failed (exit status "
            f"{completed.returncode}); full log: {log_file}\n" + _log_tail(log_file)
        )


# Verilator's run-time library (verilated.cpp and friends, about 7 s of compiling) is the same for
# every design built with the same flags: builds keep its objects in
# cache_dir()/native/runtime/<key>/ and later builds copy them into their obj/ folder before
# running make, which then sees them up to date (a traced build adds verilated_vcd_c.o). Tracing
# changes nothing in these objects: VM_TRACE only defines WAVES in verilated.h, which they do not
# use.
_RUNTIME_GLOB = "verilated*.o"


def _runtime_dir(compiler: tuple[str, str]) -> Path:
    key = content_hash(
        "tessera-native-runtime-v1",
        list(NATIVE_BUILD_ARGS),
        list(_CFLAGS),
        MAKEFLAGS,
        tool_versions()["verilator"],
        verilator_bin_dir(),
        list(compiler),
        platform.machine(),
    )
    return cache_dir() / "native" / "runtime" / key


def _reuse_runtime(runtime: Path, obj_dir: Path) -> list[str]:
    """Copy the cached run-time objects into `obj_dir`; returns their names."""
    names = []
    for source in sorted(runtime.glob(_RUNTIME_GLOB)):
        shutil.copyfile(source, obj_dir / source.name)  # fresh mtime: newer than the makefile
        names.append(source.name)
    return names


def _keep_runtime(runtime: Path, obj_dir: Path) -> None:
    """Store the run-time objects of a finished build that the cache does not have yet."""
    runtime.mkdir(parents=True, exist_ok=True)
    for source in sorted(obj_dir.glob(_RUNTIME_GLOB)):
        target = runtime / source.name
        if target.exists():
            continue
        handle, partial = tempfile.mkstemp(prefix=f".{source.name}.", dir=runtime)
        os.close(handle)
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)  # atomic: readers never see a partial object
        finally:
            Path(partial).unlink(missing_ok=True)


def _stream_macros(unit: Unit, config: AccelConfig) -> list[str]:
    """The harness's -D flags naming the unit's input streams (see harness.cpp)."""
    streams = unit.streams(config)
    names = [f"-DTESSERA_IN{i}={name}" for i, name in enumerate(streams)]
    return [f"-DTESSERA_STREAMS={len(streams)}", *names]


@dataclasses.dataclass(frozen=True)
class NativeBuild:
    """A built native harness library, as returned by `build_native`.

    Attributes
    ----------
    key : str
        Content hash naming the cache folder.
    directory : pathlib.Path
        ``cache_dir()/native/<key>``: ``<top>.v``, ``harness.cpp``, ``build.log``, the marker
        file and Verilator's ``obj/`` folder.
    library, log_file, verilog_path : pathlib.Path
        The shared library, the build log and the Verilog that was built.
    config : AccelConfig
        The configuration it simulates.
    unit : str
        The `hdl.units` name of the unit it simulates.
    trace : bool
        Built with VCD tracing (``--trace``).
    netlist : str
        ``"optimized"`` or ``"gen"``.
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
    unit: str
    trace: bool
    netlist: str
    cached: bool
    build_seconds: float


@dataclasses.dataclass(frozen=True)
class _Library:
    """A harness library built (or found) by `_build_library`; fields as in `NativeBuild`."""

    key: str
    directory: Path
    library: Path
    log_file: Path
    verilog_path: Path
    cached: bool
    build_seconds: float


def _build_library(
    verilog: str,
    top: str,
    harness: str,
    *,
    prefix: str,
    macros: list[str],
    trace: bool,
    record: dict[str, Any],
) -> _Library:
    """Verilate `verilog` (module `top`, model class `prefix`) with the C++ `harness` into a
    shared library, or reuse the cached one: the build machinery of every native harness.

    `macros` are the harness's -D flags; `record` goes into the marker file (``BUILT.json``)
    with the build's flags, times and tool versions. The cache key covers the Verilog, the
    harness, ``harness_common.h``, ``fastops.h``, the makefile, every flag and the tool versions.
    """
    fastops = _native_source(_FASTOPS)
    common = _native_source(_COMMON)
    makefile = _wrapper_makefile(prefix)
    args = [*NATIVE_BUILD_ARGS, *(["--trace"] if trace else [])]
    cflags = [*_CFLAGS, *macros, *(["-DTESSERA_TRACE"] if trace else [])]
    compiler = _compiler_identity()
    jobs = os.cpu_count() or 1
    key = content_hash(
        _FORMAT,
        verilog,
        harness,
        common,
        fastops,
        makefile,
        args,
        cflags,
        MAKEFLAGS,
        tool_versions()["verilator"],
        verilator_bin_dir(),
        list(compiler),
        platform.machine(),
    )
    directory = cache_dir() / "native" / key
    obj_dir = directory / "obj"
    library = obj_dir / _LIBRARY
    log_file = directory / "build.log"
    verilog_path = directory / f"{top}.v"

    runtime = _runtime_dir(compiler)

    def build() -> dict[str, Any]:
        _require_build_tools()
        if obj_dir.exists():
            shutil.rmtree(obj_dir)
        verilog_path.write_text(verilog)
        (directory / "harness.cpp").write_text(harness)
        (directory / _COMMON).write_text(common)
        (directory / _FASTOPS).write_text(fastops)
        (directory / _MAKEFILE).write_text(makefile)
        verilate = [
            str(verilator_bin_dir() / "verilator"),
            "--cc",
            "-j",
            str(jobs),
            *args,
            "--prefix",
            prefix,
            "--top-module",
            top,
            "--compiler-include",
            str(directory / _FASTOPS),
            "-Mdir",
            "obj",
            *[part for flag in cflags for part in ("-CFLAGS", flag)],
            verilog_path.name,
        ]
        make = ["make", "-C", "obj", "-f", f"../{_MAKEFILE}", "-j", str(jobs), _LIBRARY]
        start = time.perf_counter()
        with log_file.open("w") as log:
            _logged_run(verilate, directory, log, log_file)
            reused = _reuse_runtime(runtime, obj_dir)
            _logged_run(make, directory, log, log_file)
        seconds = time.perf_counter() - start
        if not library.is_file():
            raise BuildError(f"native build produced no {library}; full log: {log_file}")
        _keep_runtime(runtime, obj_dir)
        return {
            "format": _FORMAT,
            **record,
            "trace": trace,
            "build_args": args,
            "cflags": cflags,
            "makeflags": MAKEFLAGS,
            "runtime_reused": reused,
            "build_seconds": round(seconds, 3),
            "versions": tool_versions(),
        }

    cached, stored = cached_build(directory, [library], build)
    try:
        seconds = float(stored.get("build_seconds", 0.0))
    except (TypeError, ValueError):
        seconds = 0.0
    return _Library(key, directory, library, log_file, verilog_path, cached, seconds)


def build_native(
    config: AccelConfig, *, unit: str = "array", trace: bool = False, netlist: str = "optimized"
) -> NativeBuild:
    """Build (or reuse) the native harness library of `unit` for `config`.

    Raises
    ------
    ToolchainError
        Verilator, perl, make or a C++ compiler is missing.
    BuildError
        Verilator or the C++ compiler failed; the message ends with the tail of the build log.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    spec = get_unit(unit)
    built = _build_library(
        native_verilog(config, netlist, unit),
        spec.top,
        _native_source("harness.cpp"),
        prefix=_PREFIX,
        macros=_stream_macros(spec, config),
        trace=trace,
        record={"unit": unit, "config": config.to_dict(), "netlist": netlist},
    )
    return NativeBuild(
        key=built.key,
        directory=built.directory,
        library=built.library,
        log_file=built.log_file,
        verilog_path=built.verilog_path,
        config=config,
        unit=unit,
        trace=trace,
        netlist=netlist,
        cached=built.cached,
        build_seconds=built.build_seconds,
    )


# --------------------------------------------------------------------------------------------
# Loading and running
# --------------------------------------------------------------------------------------------


def _declare_lifecycle(lib: ctypes.CDLL, prefix: str) -> None:
    """Prototypes of a harness library's ``<prefix>_info/create/destroy/error`` (the functions
    of sim/native/harness_common.h that every harness exports)."""
    pointer = ctypes.c_void_p
    for name, argtypes, restype in (
        ("info", [pointer], None),
        ("create", [ctypes.c_char_p], pointer),
        ("destroy", [pointer], None),
        ("error", [pointer], ctypes.c_char_p),
    ):
        function = getattr(lib, f"{prefix}_{name}")
        function.argtypes, function.restype = argtypes, restype


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


class _HarnessModel:
    """The persistent model of a loaded harness library (``<prefix>_*`` functions of
    sim/native/harness_common.h): created on `_open`, freed by `close`, on leaving a ``with``
    block or when collected; one run at a time (`_call` holds a lock)."""

    def _open(self, lib: ctypes.CDLL, prefix: str, library: Path) -> None:
        self._lib, self._prefix = lib, prefix
        self._lock = threading.Lock()
        handle = getattr(lib, f"{prefix}_create")(None)
        if not handle:
            raise RuntimeError(f"{prefix}_create failed for {library}")
        self._handle = handle
        self._finalizer = weakref.finalize(self, getattr(lib, f"{prefix}_destroy"), handle)

    def close(self) -> None:
        """Free the simulation model (also done when the object is garbage-collected)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, vcd_path, args) -> tuple[int, bytes]:
        """Call ``<prefix>_run(handle, *args)``; (result, fatal message).

        With `vcd_path`, the run goes instead to a fresh model (``<prefix>_create(path)``) that
        writes the waveform and is destroyed afterwards.
        """
        lib, prefix = self._lib, self._prefix
        run, error = getattr(lib, f"{prefix}_run"), getattr(lib, f"{prefix}_error")
        with self._lock:
            if not self._finalizer.alive:
                raise RuntimeError(f"this {type(self).__name__} is closed")
            if vcd_path is None:
                result = run(self._handle, *args)
                return result, error(self._handle) if result == _FATAL else b""
            path = Path(vcd_path)
            if not path.parent.is_dir():
                raise FileNotFoundError(f"no folder {path.parent} for the VCD file")
            traced = getattr(lib, f"{prefix}_create")(os.fsencode(path))
            if not traced:
                raise OSError(f"cannot write the VCD file {path}")
            try:
                result = run(traced, *args)
                return result, error(traced) if result == _FATAL else b""
            finally:
                getattr(lib, f"{prefix}_destroy")(traced)


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
        ``"optimized"`` (default) or ``"gen"``; see the module docstring.

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
