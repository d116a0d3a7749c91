"""Shared cocotb stream machinery of the unit testbenches (systolic_tb, sparse_tb, requant_tb).

Not a test module. Structure (cocotbext-axi style): `TB` owns the clock, the reset, one
`StreamDriver` per input stream of the unit (random idle cycles, junk payloads while not valid)
and a `StreamMonitor` on ``out`` (random back-pressure, protocol checks). A testbench supplies a
*case* (`StreamCase`): the `sim.stream_program.StreamProgram` to send, its flow control, the
model's cycle count and a per-beat checker.

Environment: ``TESSERA_ACCEL_CONFIG`` (required) is the `AccelConfig` JSON of the build;
``TESSERA_SPEED_JSON`` (optional) a path that `SPEED` rewrites after every run with the simulated
cycles and wall seconds so far; ``TESSERA_TB_JUNK=0`` keeps the last payload on an idle input
instead of random junk (for debugging).

Cycle convention (that of `sim.drivers.pysim`): cycle 0 is the first cycle inputs are offered;
a run takes (index of the cycle in which its last output beat transfers) + 1 cycles.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hdl.config import AccelConfig
from hdl.units import get_unit, payload_bits
from sim.stream_program import StreamProgram

#: Flow-control patterns: name -> (P(idle input cycle) per beat, P(out not ready) per cycle).
FLOWS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "idle": (0.4, 0.0),
    "stall": (0.0, 0.5),
    "both": (0.6, 0.7),
}


def load_config() -> AccelConfig:
    """The `AccelConfig` of the design under test, from ``TESSERA_ACCEL_CONFIG``."""
    text = os.environ.get("TESSERA_ACCEL_CONFIG")
    if not text:
        raise RuntimeError("TESSERA_ACCEL_CONFIG must hold the AccelConfig JSON of the build")
    return AccelConfig.from_json(text)


def words_to_int(row: np.ndarray) -> int:
    """One packed beat (uint32 words, word 0 lowest) as the integer the Verilog port holds."""
    return int.from_bytes(np.asarray(row, "<u4").tobytes(), "little")


@dataclass
class SpeedLog:
    """Simulated cycles and wall seconds per run, written to ``TESSERA_SPEED_JSON`` if set."""

    path: Path | None
    runs: list[dict] = field(default_factory=list)

    def add(self, record: dict) -> None:
        """Record one run and rewrite the file (so it is complete whenever the run stops)."""
        if self.path is None:
            return
        self.runs.append(record)
        cycles = sum(run["cycles"] for run in self.runs)
        seconds = sum(run["seconds"] for run in self.runs)
        summary = {
            "cycles": cycles,
            "seconds": seconds,
            "cycles_per_second": cycles / seconds if seconds else None,
            "runs": self.runs,
        }
        self.path.write_text(json.dumps(summary, indent=2) + "\n")


_SPEED_PATH = os.environ.get("TESSERA_SPEED_JSON")
SPEED = SpeedLog(Path(_SPEED_PATH) if _SPEED_PATH else None)

#: ``COCOTB_RANDOM_SEED`` of the run (cocotb reseeds per test; this is read at import).
REGRESSION_SEED: int = cocotb.RANDOM_SEED

JUNK = os.environ.get("TESSERA_TB_JUNK", "1") == "1"


class StreamDriver:
    """Drives one valid/ready input stream ``<name>__payload/__valid/__ready`` of the DUT.

    Before beat i it stays idle (valid low) for ``gaps.get(i, 0)`` cycles, then for one more cycle
    with probability `idle` at a time, as `sim.drivers.pysim` does; while valid is low the payload
    holds random junk, which the DUT must ignore. A presented beat is held unchanged until the
    cycle in which ready is high.
    """

    def __init__(
        self,
        tb: TB,
        name: str,
        beats: list[int],
        idle: float,
        rng: random.Random,
        gaps: dict[int, int] | None = None,
    ):
        self.tb = tb
        self.name = name
        self.payload = getattr(tb.dut, f"{name}__payload")
        self.valid = getattr(tb.dut, f"{name}__valid")
        self.ready = getattr(tb.dut, f"{name}__ready")
        self.width = len(self.payload)
        self.beats = beats
        self.idle = idle
        self.rng = rng
        self.gaps = gaps or {}
        self.junk = random.Random(rng.random())  # its own stream: junk does not move idle cycles

    def _idle_cycle(self) -> None:
        self.valid.value = 0
        if JUNK:
            self.payload.value = self.junk.getrandbits(self.width)

    async def run(self) -> None:
        """Send every beat; call in cycle 0 (right after a rising edge)."""
        clock_edge = RisingEdge(self.tb.dut.clk)
        for index, beat in enumerate(self.beats):
            for _ in range(self.gaps.get(index, 0)):
                self._idle_cycle()
                await clock_edge
            while self.idle and self.rng.random() < self.idle:
                self._idle_cycle()
                await clock_edge
            self.payload.value = beat
            self.valid.value = 1
            while True:
                await ReadOnly()
                taken = self.ready.value == 1
                await clock_edge
                if taken:
                    break
        self._idle_cycle()


class ProtocolError(AssertionError):
    """The DUT broke the valid/ready stream rules on ``out``."""


class StreamMonitor:
    """Collects beats from ``out`` while applying random back-pressure; counts cycles.

    Checks the stream rules: once ``out`` is valid and not taken, the next cycle must present
    the same payload, still valid; no beat may appear after `expected` beats (also watched for
    `drain` cycles after the last one); valid must not be X or Z. `on_beat(index, value)` is called
    for every transferred beat, in the cycle it transfers.
    """

    def __init__(self, tb: TB, stall: float, rng: random.Random):
        self.tb = tb
        self.payload = tb.dut.out__payload
        self.valid = tb.dut.out__valid
        self.ready = tb.dut.out__ready
        self.stall = stall
        self.rng = rng

    async def run(self, expected: int, max_cycles: int, drain: int, on_beat) -> tuple[list, int]:
        """Collect `expected` beats; returns (payload integers, cycles). Call in cycle 0."""
        clock_edge = RisingEdge(self.tb.dut.clk)
        beats: list[int] = []
        held = None  # payload offered but not taken in the previous cycle
        cycles = 0
        cycle = 0
        quiet = 0
        while len(beats) < expected or quiet < drain:
            collecting = len(beats) < expected
            ready = not (collecting and self.stall and self.rng.random() < self.stall)
            self.ready.value = int(ready)
            await ReadOnly()
            valid = self.valid.value
            if not valid.is_resolvable:
                raise ProtocolError(f"cycle {cycle}: out__valid is {valid}")
            valid = int(valid)
            payload = self.payload.value.to_unsigned() if valid or held is not None else None
            if held is not None and (not valid or payload != held):
                raise ProtocolError(
                    f"cycle {cycle}: out beat {len(beats)} changed while valid and not ready "
                    f"(valid={valid}, payload {held:#x} -> {payload:#x})"
                )
            held = None
            if valid and not collecting:
                raise ProtocolError(
                    f"cycle {cycle}: an extra out beat, {cycle - cycles + 1} cycle(s) after the "
                    f"last of the {expected} expected (payload {payload:#x})"
                )
            if valid and ready:
                on_beat(len(beats), payload)
                beats.append(payload)
                cycles = cycle + 1
            elif valid:
                held = payload
            if not collecting:
                quiet += 1
            if cycle >= max_cycles:
                raise AssertionError(
                    f"timeout: {len(beats)} of {expected} out beats after {cycle} cycles"
                )
            await clock_edge
            cycle += 1
        self.ready.value = 0
        return beats, cycles


class StreamCase(Protocol):
    """What `TB.run` needs of a test case."""

    program: StreamProgram
    idle: float  # P(idle input cycle)
    stall: float  # P(out not ready)
    flow_seed: str  # seeds the flow-control generators
    gaps: dict[str, dict[int, int]]  # stream -> {beat index: idle cycles before it}
    model_cycles: int  # the model's cycle count without flow control
    monitor_beats: int  # out beats to collect

    def check_beat(self, index: int, value: int) -> None:
        """Check out beat `index` (its payload as an integer) as it transfers."""


def split_out_beat(value: int, cols: int) -> tuple[list[int], bool]:
    """An int32 ``out`` payload integer (array, sparse engine) as (C signed values, last)."""
    values = []
    for col in range(cols):
        word = (value >> (32 * col)) & 0xFFFF_FFFF
        values.append(word - (1 << 32) if word >> 31 else word)
    return values, bool((value >> (32 * cols)) & 1)


def beats_to_words(beats: list[int], words: int) -> np.ndarray:
    """Collected payload integers as uint32 words [beats, words] (for ``assemble``)."""
    return np.array(
        [np.frombuffer(v.to_bytes(4 * words, "little"), "<u4") for v in beats], np.uint32
    ).reshape(-1, words)


class TB:
    """Testbench of one unit (`hdl.units`): clock, reset, stream drivers, the ``out`` monitor.

    Checks that the DUT's stream ports have the widths the unit has for `config`, so a wrong
    ``TESSERA_ACCEL_CONFIG`` fails at once instead of sending misaligned beats.
    """

    def __init__(self, dut, config: AccelConfig, unit: str):
        self.dut = dut
        self.config = config
        spec = get_unit(unit)
        self.inputs = spec.streams(config)
        for name, width in payload_bits(spec, config).items():
            if not hasattr(dut, f"{name}__payload"):
                raise RuntimeError(f"the DUT has no {name} stream: TESSERA_ACCEL_CONFIG is wrong")
            actual = len(getattr(dut, f"{name}__payload"))
            if actual != width:
                raise RuntimeError(
                    f"{name}__payload is {actual} bits, not {width}: TESSERA_ACCEL_CONFIG "
                    f"does not match the {unit} build"
                )

    async def start(self) -> None:
        """Start the 100 MHz clock, reset for 3 cycles, release the reset in cycle 0.

        Returns right after the rising edge that starts cycle 0, every stream idle.
        """
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.rst.value = 1
        self.dut.out__ready.value = 0
        for name in self.inputs:
            getattr(self.dut, f"{name}__valid").value = 0
            getattr(self.dut, f"{name}__payload").value = 0
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def run(self, case: StreamCase) -> tuple[list[int], int, float]:
        """Stream `case` through the DUT from this cycle on (call right after a rising edge).

        Returns the ``out`` payloads, the cycles taken and the wall seconds of the run; the DUT
        is idle again afterwards (its output quiet for the monitor's drain window).
        """
        seed = case.flow_seed
        drivers = [
            StreamDriver(
                self,
                name,
                [words_to_int(row) for row in case.program.inputs[name]],
                case.idle,
                random.Random(f"{seed}/{name}"),
                case.gaps.get(name),
            )
            for name in self.inputs
        ]
        monitor = StreamMonitor(self, case.stall, random.Random(f"{seed}/out"))
        # Generous bound: every input beat and output beat slowed by its flow control, 4x over.
        slowdown = 1 / ((1 - case.idle) * (1 - case.stall))
        max_cycles = int(8 * slowdown * case.model_cycles) + 100
        start = time.perf_counter()
        if case.program.ORDERED:  # each stream starts in the cycle after the previous one ends

            async def in_order() -> None:
                for driver in drivers:
                    await driver.run()

            tasks = [cocotb.start_soon(in_order())]
        else:
            tasks = [cocotb.start_soon(driver.run()) for driver in drivers]
        drain = 2 * self.config.rows + self.config.cols + 4  # longer than any unit's latency
        beats, cycles = await monitor.run(case.monitor_beats, max_cycles, drain, case.check_beat)
        seconds = time.perf_counter() - start
        for task in tasks:
            if not task.done():
                raise AssertionError(f"an input stream still has beats after {cycles} cycles")
        return beats, cycles, seconds


async def run_cases(dut, unit: str, specs: list, make_case, flags: tuple[str, ...], name: str):
    """Reset once, then run one case per spec back to back, checking each.

    `make_case(config, spec, seed)` builds a `StreamCase` with a ``check(beats, cycles)`` method
    (seed: ``(REGRESSION_SEED, index)``); after each case every DUT output named in `flags`
    (sticky error flags) must be low. Each run is logged and recorded in `SPEED`.
    """
    config = load_config()
    tb = TB(dut, config, unit)
    await tb.start()
    for index, spec in enumerate(specs):
        case = make_case(config, spec, (REGRESSION_SEED, index))
        beats, cycles, seconds = await tb.run(case)
        case.check(beats, cycles)
        raised = [flag for flag in flags if int(getattr(dut, flag).value)]
        if raised:
            raise AssertionError(f"{case}: {', '.join(raised)} set by a valid program")
        dut._log.info("%s: %d cycles in %.3f s", case, cycles, seconds)
        SPEED.add({"test": name, "case": spec, "cycles": cycles, "seconds": seconds})
