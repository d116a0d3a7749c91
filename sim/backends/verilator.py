"""The ``verilator`` backend: the RTL array compiled by Verilator, run by the native harness."""

from __future__ import annotations

import numpy as np

from sim.array_program import ArrayProgram
from sim.backends.rtl import RtlBackend
from sim.drivers.native import NativeArray


class VerilatorBackend(RtlBackend):
    """Runs each GEMM inside C++ (about 1M cycles/s at 16x16); the build is cached on disk.

    The harness library is built (or loaded from the cache) on the first GEMM.
    """

    name = "verilator"
    _array: NativeArray | None = None

    def _run(self, program: ArrayProgram) -> tuple[np.ndarray, int, dict[str, int]]:
        if self._array is None:
            self._array = NativeArray(self.config)
        return self._array.run(program, self.flow)
