"""The ``pysim`` backend: the whole accelerator in Amaranth's own simulator (small configs only)."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.backends.rtl import RtlBackend
from sim.drivers.accel_pysim import PysimRun, run_accelerator


class PysimBackend(RtlBackend):
    """Runs each product's program on ``hdl.top.Accelerator`` in Amaranth's simulator
    (`sim.drivers.accel_pysim`): about 1 s to elaborate, then about 700 cycles per second for a
    2x3 array (2-core VM).

    Parameters
    ----------
    config:
        The accelerator (see `RtlBackend`); keep it small: the design is elaborated and
        simulated in Python for every product.
    stall, seed:
        Optional random memory back-pressure (`sim.drivers.memory_model.MemoryModel`): the
        results are the same, the cycles more. Default none, which counts the same cycles as
        the ``verilator`` backend.
    """

    name = "pysim"

    def __init__(self, config: AccelConfig, *, stall: float = 0.0, seed: int = 0) -> None:
        super().__init__(config)
        if not 0.0 <= stall < 1.0:
            raise ValueError(f"stall must be in [0, 1), not {stall!r}")
        self.stall = stall
        self.seed = seed

    def _run(self, memory: np.ndarray, words: np.ndarray) -> PysimRun:
        run = run_accelerator(self.config, memory, words, stall=self.stall, seed=self.seed)
        memory[:] = run.memory
        return run
