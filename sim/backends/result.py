"""The result every simulation backend returns for one GEMM."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GemmResult:
    """Output and cost of one GEMM on a backend.

    Attributes
    ----------
    output: int32 M x N result (two's-complement wrap, as the hardware accumulates).
    cycles: clock cycles the whole accelerator takes, from reset to idle with the result in
        main memory, by `cycle_model`.
    counters: the accelerator's hardware counters (`hdl.top_ports.COUNTERS`; ``macs`` counts
        R x C slots per streamed MATMUL row and C per SPMM nonzero, so ragged tiles count idle
        slots too); the golden backend has those `sim.perf` predicts.
    cycle_model: where `cycles` comes from: ``"rtl"`` (counted in a cycle-accurate simulation)
        or ``"perf"`` (the analytical model `sim.perf`).
    """

    output: np.ndarray
    cycles: int
    counters: dict[str, int] = field(default_factory=dict)
    cycle_model: str = "rtl"
