"""The ``verilator`` backend: the RTL units compiled by Verilator, run by the native harness."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.backends.rtl import RtlBackend
from sim.drivers.native import NativeSim
from sim.drivers.pysim import FlowControl
from sim.stream_program import StreamProgram


class VerilatorBackend(RtlBackend):
    """Runs each product inside C++ (about 1M cycles/s at 16x16); builds are cached on disk.

    Each unit's harness library is built (or loaded from the cache) on its first use.
    """

    name = "verilator"

    def __init__(self, config: AccelConfig, flow: FlowControl | None = None) -> None:
        super().__init__(config, flow)
        self._sims: dict[str, NativeSim] = {}

    def _run(self, program: StreamProgram) -> tuple[np.ndarray, int, dict[str, int]]:
        if program.UNIT not in self._sims:
            self._sims[program.UNIT] = NativeSim(self.config, program.UNIT)
        return self._sims[program.UNIT].run(program, self.flow)
