"""Build a native Verilator harness library: the machinery every native harness shares.

`_build_library` Verilates a design's Verilog (`sim.drivers.native_netlist`) together with a C++
harness from ``sim/native/`` (``harness.cpp`` for one unit, `sim.drivers.unit_build`;
``accel_harness.cpp`` for the whole accelerator, `sim.drivers.accel_build`) into a shared library
that the harness's driver loads with ctypes (`sim.drivers.native_binding`).

``sim/native/fastops.h`` replaces Verilator's sign-extension helpers in the model with shift
pairs that compile to one instruction (about half of all instructions of a 16x16 array).

Builds are content-addressed in ``cache_dir()/native/<key>/`` (key: Verilog, harness sources,
flags, tool versions), built under a lock with a marker file (`sim.toolchain.cached_build`), so
a design is Verilated once per machine; Verilator's run-time objects are cached too. Cold builds
on 2 cores: 2x2 about 4 s (plus 7 s once for the run-time objects), 16x16 about 15-30 s (Yosys
5-10 s of it, then cached).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.toolchain import (
    MAKEFLAGS,
    VERILATOR_BUILD_ARGS,
    BuildError,
    _log_tail,
    _require_build_tools,
    cache_dir,
    cached_build,
    content_hash,
    simulator_env,
    tool_versions,
    verilator_bin_dir,
)

__all__ = ["NATIVE_BUILD_ARGS"]

#: Verilator flags of native builds (besides the fixed ones `_build_library` adds).
NATIVE_BUILD_ARGS: tuple[str, ...] = (*VERILATOR_BUILD_ARGS, "--noassert")

# C++ flags of every object in the library: position-independent (it is a shared object), only
# the harness's tessera_* functions exported (two designs loaded in one process stay apart), and
# Verilator's fatal errors thrown as exceptions instead of exiting the process.
_CFLAGS = ("-fPIC", "-fvisibility=hidden", "-DVL_USER_FATAL")
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


@dataclasses.dataclass(frozen=True)
class _Library:
    """A harness library built (or found) by `_build_library`; fields as in
    `sim.drivers.unit_build.NativeBuild`."""

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
