"""The ``pysim`` backend: the RTL units in Amaranth's own simulator (small configs only)."""

from __future__ import annotations

import numpy as np

from sim.backends.rtl import RtlBackend
from sim.drivers.pysim import run_pysim
from sim.stream_program import StreamProgram


class PysimBackend(RtlBackend):
    """Runs each product cycle by cycle in Amaranth's simulator (hundreds to thousands of
    cycles/s)."""

    name = "pysim"

    def _run(self, program: StreamProgram) -> tuple[np.ndarray, int, dict[str, int]]:
        output_words, cycles = run_pysim(program, self.flow)
        counters = {
            "output_beats": program.output_beats,
            **{f"{name}_beats": int(beats.shape[0]) for name, beats in program.inputs.items()},
        }
        return output_words, cycles, counters
