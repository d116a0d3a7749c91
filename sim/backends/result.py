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
    cycles: clock cycles the GEMM takes, by `cycle_model`.
    counters: named event counts (``macs``: useful multiply-accumulates M*N*K, ...).
    cycle_model: where `cycles` comes from: ``"rtl"`` (counted in a cycle-accurate simulation)
        or the name of an analytical model (``"scalesim"``).
    """

    output: np.ndarray
    cycles: int
    counters: dict[str, int] = field(default_factory=dict)
    cycle_model: str = "rtl"
