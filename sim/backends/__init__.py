"""Simulation backends behind one interface: ``get_backend(name, config).gemm(a, b)``.

Every backend returns a `GemmResult` (int32 output, cycles, counters). Available now: ``golden``
(numpy). The Amaranth-simulator (``pysim``) and Verilator (``verilator``) backends of the
systolic array join this table as they are built.
"""

from __future__ import annotations

from hdl.config import AccelConfig
from sim.backends.golden import GoldenBackend
from sim.backends.result import GemmResult

BACKENDS = {"golden": GoldenBackend}


def get_backend(name: str, config: AccelConfig | None = None):
    """A backend instance by name (see `BACKENDS`), for `config` (default `AccelConfig()`)."""
    if name not in BACKENDS:
        choices = ", ".join(repr(n) for n in BACKENDS)
        raise ValueError(f"unknown backend {name!r}; available: {choices}")
    return BACKENDS[name](config if config is not None else AccelConfig())


__all__ = ["BACKENDS", "GemmResult", "get_backend"]
