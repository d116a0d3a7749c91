"""The exceptions of the simulation flow, and the log tail their messages end with."""

from __future__ import annotations

from pathlib import Path


class ToolchainError(RuntimeError):
    """A tool or package the simulation flow needs is missing or unusable.

    The message says what is missing and how to install it.
    """


class BuildError(RuntimeError):
    """Verilator or the C++ build of a simulation failed (the log tail is in the message)."""


class CocotbTestError(AssertionError):
    """A cocotb run had failing tests, ran no test at all, or ended without a results file."""


def _log_tail(path: Path | None, lines: int = 40) -> str:
    """Return the last *lines* lines of the log at *path* (or a note that there is none)."""
    if path is None or not path.is_file():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
