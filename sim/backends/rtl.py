"""What every backend that simulates the whole accelerator shares: memory image, program, result.

`RtlBackend.gemm` and `RtlBackend.spmm` run a product end to end on ``hdl.top.Accelerator``, as
a host would: the operands are laid out in a main-memory image (`sim.schedule.gemm_memory` /
`sim.schedule.spmm_memory`), the scheduler's program (`sim.schedule`) is encoded
(`hdl.isa.encode_program`) and pushed on the accelerator's command port, the accelerator loads
the operands, computes and stores the int32 result into the image, and the result is read back
from it. Subclasses (``pysim``, ``verilator``) define `RtlBackend._run`, which simulates the
accelerator on the image with the memory latency of ``config.mem_latency`` and a bandwidth of
``config.bus_bytes`` bytes per cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import ErrorCode, Instruction, encode_program
from hdl.top_ports import COUNTERS
from sim.backends.result import GemmResult
from sim.schedule import gemm_memory
from sim.spmm_schedule import spmm_memory, spmm_schedule


class AcceleratorRun(Protocol):
    """What `RtlBackend._run` returns (`sim.drivers.accel_results.AccelRun`,
    `sim.drivers.accel_pysim.PysimRun`)."""

    cycles: int
    error: ErrorCode
    error_index: int
    counters: dict[str, int]


class RtlBackend:
    """Base of the ``pysim`` and ``verilator`` backends; subclasses define `_run`.

    Parameters
    ----------
    config:
        The accelerator to simulate; its ``mem_latency`` and ``bus_bytes`` are the memory's
        latency and bandwidth, ``mem_bytes`` bounds the memory image.

    Every product returns a `GemmResult` with ``cycle_model="rtl"``: ``cycles`` counted from
    reset until the accelerator is idle with the whole program done (loads, compute, stores:
    equal to its ``cycles`` counter) and ``counters`` the accelerator's hardware counters, every
    entry of `hdl.top_ports.COUNTERS`.
    """

    name = "rtl"

    def __init__(self, config: AccelConfig) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config

    def gemm(self, a: np.ndarray, b: np.ndarray) -> GemmResult:
        """int8 a (M x K) @ int8 b (K x N) on the accelerator -> `GemmResult`, int32 M x N.

        Raises
        ------
        TypeError, ValueError
            Operands that are not int8 matrices of matching shapes (`sim.schedule.gemm_memory`),
            or operands that do not fit in ``config.mem_bytes``.
        RuntimeError
            The accelerator stopped with an error (a bug of the scheduler), or a simulation
            failure of the subclass (e.g. `sim.drivers.native.SimulationTimeoutError`).
        """
        image, layout = gemm_memory(a, b, self.config)
        return self._execute(image, layout.size, layout.schedule(), layout.result)

    def spmm(self, w: np.ndarray, x: np.ndarray) -> GemmResult:
        """int8 w (N x K, zeros skipped) @ int8 x (K x M) on the accelerator's sparse engine.

        W's nonzeros are packed into ``nonzeros`` beats in memory (`sim.schedule.spmm_memory`)
        and the SPMM program runs as for `gemm`; the result's output is int32 N x M. Raises as
        `gemm` (also for K > 65536).
        """
        image, layout = spmm_memory(w, x, self.config)
        return self._execute(image, layout.size, spmm_schedule(layout), layout.result)

    def close(self) -> None:
        """Free what the backend holds (a simulation model); a later product rebuilds it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _execute(
        self,
        image: np.ndarray,
        size: int,
        program: list[Instruction],
        result: Callable[[np.ndarray], np.ndarray],
    ) -> GemmResult:
        """Run `program` on the accelerator with main memory `image`; read the output back."""
        # Every burst covers whole bus words: pad the image to a whole word at its end.
        bus = self.config.bus_bytes
        padded = -(-size // bus) * bus
        if padded > self.config.mem_bytes:
            raise ValueError(
                f"the operands and the result need {padded} bytes of main memory, more than "
                f"config.mem_bytes = {self.config.mem_bytes}"
            )
        memory = np.zeros(padded, np.uint8)
        memory[: image.size] = image
        run = self._run(memory, encode_program(program))
        if run.error is not ErrorCode.NONE:
            index = run.error_index
            what = f": {program[index]}" if 0 <= index < len(program) else ""
            raise RuntimeError(
                f"the accelerator stopped with error {run.error.name} at instruction {index} of "
                f"{len(program)}{what} (a bug of the scheduler, sim/schedule.py)"
            )
        counters = {name: int(run.counters[name]) for name in COUNTERS}
        return GemmResult(result(memory), int(run.cycles), counters, cycle_model="rtl")

    def _run(self, memory: np.ndarray, words: np.ndarray) -> AcceleratorRun:
        """Simulate the accelerator running `words` (uint32 [n, 4]) against `memory` (uint8,
        written in place) until it is idle or stops with an error."""
        raise NotImplementedError
