"""Simulation backends behind one interface: ``get_backend(name, config)``.

``.gemm(a, b)`` computes a dense int8 GEMM, ``.spmm(w, x)`` a sparse one (w's zeros skipped), as
the accelerator of `config` (`hdl.top.Accelerator`) does. Every backend returns a `GemmResult`
(int32 output, cycles, counters):

- ``golden``: numpy results (`sim.golden`, the numeric spec), with cycles from the accelerator's
  analytical performance model (`sim.perf`): fast, any size, the cycles an estimate;
- ``pysim``: the whole accelerator in Amaranth's simulator (slow; small configurations);
- ``verilator``: the whole accelerator compiled by Verilator, run by the native harness.

The two RTL backends run a product end to end (`sim.backends.rtl`): the operands are placed in
a main-memory image, the scheduler's program (`sim.schedule`) is pushed on the command port,
the result is read back from memory; ``.cycles`` is the end-to-end count from reset to idle and
``.counters`` the hardware counters (`hdl.top_ports.COUNTERS`). The memory's latency is
``config.mem_latency`` and its bandwidth ``config.bus_bytes`` bytes per cycle. Both RTL backends
count the same cycles for the same product.
"""

from __future__ import annotations

from hdl.config import AccelConfig
from sim.backends.golden import GoldenBackend
from sim.backends.pysim import PysimBackend
from sim.backends.result import GemmResult
from sim.backends.verilator import VerilatorBackend

BACKENDS = {"golden": GoldenBackend, "pysim": PysimBackend, "verilator": VerilatorBackend}


def get_backend(name: str, config: AccelConfig | None = None, **options):
    """A backend instance by name (see `BACKENDS`), for `config` (default `AccelConfig()`);
    `options` go to its constructor (``verilator``: ``vcd_path``; ``pysim``: ``stall``,
    ``seed``)."""
    if name not in BACKENDS:
        choices = ", ".join(repr(n) for n in BACKENDS)
        raise ValueError(f"unknown backend {name!r}; available: {choices}")
    return BACKENDS[name](config if config is not None else AccelConfig(), **options)


__all__ = ["BACKENDS", "GemmResult", "get_backend"]
