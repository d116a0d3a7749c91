"""The ``verilator`` backend: the whole accelerator compiled by Verilator, run by the native
accelerator harness (`sim.drivers.accel_native`)."""

from __future__ import annotations

import numpy as np

from hdl.config import AccelConfig
from sim.backends.rtl import RtlBackend
from sim.drivers.accel_native import AccelRun, NativeAccelerator


class VerilatorBackend(RtlBackend):
    """Runs each product's program on ``hdl.top.Accelerator`` inside C++ (about 1M cycles/s for
    a 2x2 array, docs/accelerator-harness.md).

    One `NativeAccelerator` per backend, built (or loaded from the on-disk cache, keyed by the
    Verilog's content) on the first product and reused after; `close` frees it.
    """

    name = "verilator"

    def __init__(self, config: AccelConfig) -> None:
        super().__init__(config)
        self._accelerator: NativeAccelerator | None = None

    def close(self) -> None:
        if self._accelerator is not None:
            self._accelerator.close()
            self._accelerator = None

    def _run(self, memory: np.ndarray, words: np.ndarray) -> AccelRun:
        if self._accelerator is None:
            self._accelerator = NativeAccelerator(self.config)
        # Latency and bandwidth default to config.mem_latency and config.bus_bytes.
        return self._accelerator.run(memory, words)
