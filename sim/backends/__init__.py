"""Simulation backends behind one interface: ``get_backend(name, config)``.

``.gemm(a, b)`` runs a dense int8 GEMM on the systolic array, ``.spmm(w, x)`` a sparse one on the
sparse engine (w's zeros skipped). Every backend returns a `GemmResult` (int32 output, cycles,
counters):

- ``golden``: numpy results, cycles from the exact analytical models of the units;
- ``pysim``: the RTL units in Amaranth's simulator (slow; small configurations);
- ``verilator``: the RTL units compiled by Verilator, run by the native C++ harness.
"""

from __future__ import annotations

from hdl.config import AccelConfig
from sim.backends.golden import GoldenBackend
from sim.backends.pysim import PysimBackend
from sim.backends.result import GemmResult
from sim.backends.verilator import VerilatorBackend

BACKENDS = {"golden": GoldenBackend, "pysim": PysimBackend, "verilator": VerilatorBackend}


def get_backend(name: str, config: AccelConfig | None = None):
    """A backend instance by name (see `BACKENDS`), for `config` (default `AccelConfig()`)."""
    if name not in BACKENDS:
        choices = ", ".join(repr(n) for n in BACKENDS)
        raise ValueError(f"unknown backend {name!r}; available: {choices}")
    return BACKENDS[name](config if config is not None else AccelConfig())


__all__ = ["BACKENDS", "GemmResult", "get_backend"]
