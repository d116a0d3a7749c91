"""The ``verilator`` backend: the whole accelerator compiled by Verilator, run by the native
accelerator harness (`sim.drivers.accel_native`)."""

from __future__ import annotations

import os

import numpy as np

from hdl.config import AccelConfig
from sim.backends.rtl import RtlBackend
from sim.drivers.accel_native import NativeAccelerator
from sim.drivers.accel_results import AccelRun


class VerilatorBackend(RtlBackend):
    """Runs each product's program on ``hdl.top.Accelerator`` inside C++ (about 1M cycles/s for
    a 2x2 array, docs/accelerator-harness.md).

    One `NativeAccelerator` per backend, built (or loaded from the on-disk cache, keyed by the
    Verilog's content) on the first product and reused after; `close` frees it.

    Parameters
    ----------
    config : AccelConfig
        The accelerator.
    vcd_path : path, optional
        Write a VCD waveform of each product's run there (the last product's remains); uses a
        traced build of the accelerator, which simulates several times slower.
    """

    name = "verilator"

    def __init__(self, config: AccelConfig, *, vcd_path: str | os.PathLike[str] | None = None):
        super().__init__(config)
        self.vcd_path = vcd_path
        self._accelerator: NativeAccelerator | None = None

    def close(self) -> None:
        if self._accelerator is not None:
            self._accelerator.close()
            self._accelerator = None

    def _run(self, memory: np.ndarray, words: np.ndarray) -> AccelRun:
        if self._accelerator is None:
            self._accelerator = NativeAccelerator(self.config, trace=self.vcd_path is not None)
        # Latency and bandwidth default to config.mem_latency and config.bus_bytes.
        return self._accelerator.run(memory, words, vcd_path=self.vcd_path)
