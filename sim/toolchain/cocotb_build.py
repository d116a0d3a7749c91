"""Building Verilog into a cocotb-ready Verilator simulation, cached by content (`build_cocotb`).

The key (`content_hash`) covers the Verilog text, the top-level name, the Verilator flags, the
``MAKEFLAGS`` fix, and the cocotb and Verilator versions and install locations. A key that was
built successfully before is reused without running Verilator or make.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.toolchain.cache import _MARKER_NAME, _file_lock, cache_dir, content_hash
from sim.toolchain.cocotb_run import CocotbResult, run_cocotb
from sim.toolchain.errors import BuildError, ToolchainError, _log_tail
from sim.toolchain.runner import _new_runner
from sim.toolchain.tools import (
    MAKEFLAGS,
    VERILATOR_BUILD_ARGS,
    _dist_version,
    _require_build_tools,
    _require_fst_headers,
    _verilator_version,
    ensure_verilator_on_path,
    tool_versions,
    verilator_bin_dir,
)

_TOPLEVEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILD_FORMAT = "tessera-cocotb-build-v1"
_TRUE_WORDS = frozenset({"1", "yes", "y", "on", "true", "enable"})
_FALSE_WORDS = frozenset({"0", "no", "n", "off", "false", "disable"})


@dataclasses.dataclass(frozen=True)
class CocotbBuild:
    """A Verilator simulation binary built for cocotb, as returned by `build_cocotb`.

    Attributes
    ----------
    key : str
        Content hash naming the cache folder.
    directory : pathlib.Path
        ``cache_dir()/cocotb/<key>``: the Verilog source, ``build.log``, the marker file and
        the ``build/`` folder that cocotb's runner used.
    toplevel : str
        HDL top-level module name.
    verilog_path, build_dir, binary, log_file : pathlib.Path
        The written Verilog, the runner's build folder, the simulation executable and the log.
    waves : {None, "vcd", "fst"}
        The waveform format the binary writes to the run folder (``dump.vcd`` / ``dump.fst``),
        or ``None`` when it was built without tracing.
    cached : bool
        ``True`` when this call reused an earlier build instead of running Verilator.
    build_seconds : float
        Wall time the (original) build took.
    """

    key: str
    directory: Path
    toplevel: str
    verilog_path: Path
    build_dir: Path
    binary: Path
    log_file: Path
    waves: str | None
    cached: bool
    build_seconds: float

    def run(self, test_module: str, test_dir: Path, **options: Any) -> CocotbResult:
        """Run *test_module* from *test_dir* against this build; see `run_cocotb`."""
        return run_cocotb(self, test_module, test_dir, **options)


def _build_key(verilog: str, toplevel: str, build_args: Sequence[str], waves: str | None) -> str:
    """Return the cache key of a build; raises `ToolchainError` if a tool is missing."""
    bin_dir = verilator_bin_dir()
    try:
        import cocotb_tools.config as cocotb_config
    except ImportError as error:
        raise ToolchainError(
            f"cocotb is not importable ({error}). Install it with `pip install 'cocotb>=2.1,<2.2'` "
            "(or `pip install -e .` from the repository root)."
        ) from error
    return content_hash(
        _BUILD_FORMAT,
        verilog,
        toplevel,
        list(build_args),
        waves,
        MAKEFLAGS,
        _verilator_version(),
        bin_dir,
        _dist_version("cocotb"),
        Path(cocotb_config.libs_dir),
        list(sys.version_info[:2]),
    )


def build_cocotb(
    verilog: str,
    toplevel: str,
    *,
    build_args: Sequence[str] = VERILATOR_BUILD_ARGS,
    waves: bool | str = False,
) -> CocotbBuild:
    """Build *verilog* into a cocotb-ready Verilator simulation, reusing a cached build.

    The Verilog is written to ``cache_dir()/cocotb/<key>/<toplevel>.v`` and built there by
    cocotb's Verilator runner (the class ``cocotb_tools.runner.get_runner("verilator")`` returns,
    subclassed to fix its environment handling, see `_new_runner`). A marker file is written only
    after a successful build; while it exists, later calls with the same key return at once with
    ``cached=True``. A failed build leaves no marker (the next call builds from scratch) but
    keeps ``build.log`` for inspection. An ``fcntl.flock`` lock on ``<key>/.lock`` makes
    concurrent callers (e.g. parallel pytest processes) wait for one build instead of racing.

    Parameters
    ----------
    verilog : str
        Verilog source text, e.g. from ``amaranth.back.verilog.convert(..., emit_src=False)``
        (without ``emit_src=False`` the text holds absolute source paths, so a moved checkout
        rebuilds).
    toplevel : str
        Name of the top-level module (a plain identifier); also the binary's file name.
    build_args : sequence of str, optional
        Verilator flags, `VERILATOR_BUILD_ARGS` by default. Part of the cache key.
    waves : bool or {"vcd", "fst"}, optional
        Build with tracing so that runs write a waveform to their run folder: ``True`` or
        ``"vcd"`` gives ``dump.vcd`` (needs nothing else); ``"fst"`` gives the much smaller
        ``dump.fst`` (``--trace-fst``; needs the lz4 and zlib C headers, e.g. ``apt-get install
        liblz4-dev zlib1g-dev``). The ``WAVES`` environment variable switches tracing on (as
        VCD) or off, as it does for cocotb. Part of the cache key.

    Returns
    -------
    CocotbBuild
        The build; pass it to `run_cocotb` or call its ``run`` method.

    Raises
    ------
    ToolchainError
        If Verilator, cocotb, perl, make or a C++ compiler is missing.
    BuildError
        If Verilator or the C++ build fails; the message ends with the tail of the build log.
    ValueError
        If *toplevel* is not a plain identifier or *waves* is not one of the values above.
    """
    if not _TOPLEVEL_RE.fullmatch(toplevel):
        raise ValueError(f"toplevel must be a plain Verilog identifier, not {toplevel!r}")
    trace = _waves_format(waves)
    args = [str(arg) for arg in build_args]
    if trace == "fst":
        _require_fst_headers()
        if "--trace-fst" not in args:
            args.append("--trace-fst")
    key = _build_key(verilog, toplevel, args, trace)

    directory = cache_dir() / "cocotb" / key
    build_dir = directory / "build"
    verilog_path = directory / f"{toplevel}.v"
    log_file = directory / "build.log"
    marker = directory / _MARKER_NAME
    binary = build_dir / toplevel

    def result(cached: bool, seconds: float) -> CocotbBuild:
        return CocotbBuild(
            key=key,
            directory=directory,
            toplevel=toplevel,
            verilog_path=verilog_path,
            build_dir=build_dir,
            binary=binary,
            log_file=log_file,
            waves=trace,
            cached=cached,
            build_seconds=seconds,
        )

    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / ".lock"):
        if marker.is_file() and binary.is_file():
            try:
                seconds = float(json.loads(marker.read_text())["build_seconds"])
            except (ValueError, KeyError, TypeError):
                seconds = 0.0
            return result(cached=True, seconds=seconds)

        marker.unlink(missing_ok=True)
        if build_dir.exists():
            shutil.rmtree(build_dir)
        verilog_path.write_text(verilog)
        ensure_verilator_on_path()
        _require_build_tools()
        runner = _new_runner()
        start = time.perf_counter()
        try:
            runner.build(
                sources=[verilog_path],
                hdl_toplevel=toplevel,
                build_args=args,
                build_dir=build_dir,
                waves=trace is not None,
                log_file=log_file,
            )
        except (RuntimeError, subprocess.SubprocessError, SystemExit) as error:
            raise BuildError(
                f"Verilator build of {toplevel!r} failed ({error}); full log: {log_file}\n"
                + _log_tail(log_file)
            ) from error
        seconds = time.perf_counter() - start
        if not binary.is_file():
            raise BuildError(
                f"Verilator build of {toplevel!r} produced no {binary}; full log: {log_file}\n"
                + _log_tail(log_file)
            )
        record = {
            "format": _BUILD_FORMAT,
            "toplevel": toplevel,
            "build_args": args,
            "waves": trace,
            "makeflags": MAKEFLAGS,
            "build_seconds": round(seconds, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": tool_versions(),
        }
        partial = marker.with_suffix(".tmp")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, marker)
        return result(cached=False, seconds=seconds)


def _env_flag(name: str, default: bool) -> bool:
    """Read a boolean environment variable the way cocotb does (``WAVES`` and friends)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ValueError(f"Environment variable {name}={os.environ[name]!r} is not a boolean")


def _waves_format(waves: bool | str) -> str | None:
    """Resolve the *waves* argument of `build_cocotb` (and ``$WAVES``) to None, "vcd" or "fst"."""
    if isinstance(waves, str):
        if waves.lower() not in ("vcd", "fst"):
            raise ValueError(f"waves must be a bool, 'vcd' or 'fst', not {waves!r}")
        trace: str | None = waves.lower()
    elif isinstance(waves, bool):
        trace = "vcd" if waves else None
    else:
        raise ValueError(f"waves must be a bool, 'vcd' or 'fst', not {waves!r}")
    enabled = _env_flag("WAVES", trace is not None)
    if not enabled:
        return None
    return trace or "vcd"
