"""Run fuzzed programs on the native accelerator and compare each with `expected_outcome`.

`Campaign(accelerator, seed)` makes a seeded pool of base programs (`base_programs`) for the
accelerator's configuration; `Campaign.run(count)` draws `count` programs (a kind from `KINDS`
in turn, a random base), runs each in the Verilator harness from memory with a cycle bound
(``max_cycles``, and ``quiet_cycles`` so a hang stops early and is reported as one: the model
predicts none, so every hang is a disagreement), predicts
it with `sim.fuzz.expected.expected_outcome` and compares: the verdict, the error code and
index, the words accepted, the ``macs`` / ``bytes_read`` / ``bytes_written`` counters and the
final memory image (where `Expected` says they are exact). It returns a `Report`: programs per
kind, verdicts, disagreements (each with its seed, kind and words, enough to replay it), hangs,
crashes (the harness raising anything but a hang) and the time taken.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import ErrorCode
from sim.drivers.accel_native import NativeAccelerator
from sim.drivers.native import SimulationTimeoutError
from sim.fuzz.expected import ERROR, HANG, OK, Expected, expected_outcome
from sim.fuzz.programs import KINDS, base_programs, mutate, words_array

#: Quiet cycles that end a run as a hang (the longest quiet spell of a good run on the small
#: configurations is the memory latency plus a few cycles).
QUIET_CYCLES = 512
#: Cycles after which a run is stopped (far above any fuzzed program's length).
MAX_CYCLES = 1 << 21


@dataclass(frozen=True)
class Disagreement:
    """One program on which the hardware and the model disagree."""

    number: int  # the program's number in the campaign
    kind: str
    base: str
    words: tuple[int, ...]
    what: str  # what differed

    def __str__(self) -> str:
        words = ", ".join(f"{w:#x}" for w in self.words)
        return f"program {self.number} ({self.kind} of {self.base}): {self.what}; words [{words}]"


@dataclass
class Report:
    """What a campaign ran and found."""

    programs: int = 0
    kinds: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)  # the hardware's: ok, error, hang
    codes: Counter = field(default_factory=Counter)  # ErrorCode names of the errors
    memory_compared: int = 0
    counters_compared: int = 0
    hangs: int = 0
    crashes: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    cycles: int = 0
    seconds: float = 0.0

    @property
    def programs_per_second(self) -> float:
        """Programs run per second of wall time."""
        return self.programs / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """The figures, one per line."""
        kinds = ", ".join(f"{kind} {self.kinds[kind]}" for kind in KINDS)
        verdicts = ", ".join(f"{v} {self.verdicts[v]}" for v in (OK, ERROR, HANG))
        codes = ", ".join(f"{name} {count}" for name, count in sorted(self.codes.items()))
        return "\n".join(
            [
                f"programs run: {self.programs}",
                f"per kind: {kinds}",
                f"hardware verdicts: {verdicts}",
                f"error codes: {codes}",
                f"memory compared: {self.memory_compared}, counters compared: "
                f"{self.counters_compared}",
                f"disagreements: {len(self.disagreements)}",
                f"hangs: {self.hangs}",
                f"crashes: {self.crashes}",
                f"simulated cycles: {self.cycles}",
                f"programs/s: {self.programs_per_second:.0f} ({self.seconds:.1f} s)",
            ]
        )


def native_config(dataflow: str = "ws", **options) -> AccelConfig:
    """The 4x4 configuration campaigns run on (bench/fuzz_programs.py) and the native-harness
    tests share, so one cached build per dataflow serves both: an 8-byte bus at a 12-cycle
    latency, 64 KiB of memory, sparse passes of 32 rows; `options` replace fields."""
    fields = dict(
        rows=4,
        cols=4,
        dataflow=dataflow,
        spad_bytes=1024,
        acc_rows=64,
        bus_bytes=8,
        mem_latency=12,
        mem_bytes=1 << 16,
        sparse_depth=32,
    )
    return AccelConfig(**{**fields, **options})


class Campaign:
    """Seeded fuzzing of `accelerator` (a `NativeAccelerator`) against the ISA model."""

    def __init__(self, accelerator: NativeAccelerator, seed: int, *, bases: int = 24):
        self.accelerator = accelerator
        self.config = accelerator.config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.bases = base_programs(self.config, bases, self.rng)
        self.report = Report()

    def run(self, count: int, progress=None) -> Report:
        """Run `count` more programs; `progress(report)` is called every 1000 programs."""
        start = time.perf_counter()
        for _ in range(count):
            number = self.report.programs
            kind = KINDS[number % len(KINDS)]
            base = self.bases[int(self.rng.integers(len(self.bases)))]
            words = mutate(kind, base.words, self.config, self.rng)
            self._one(number, kind, base, words)
            if progress is not None and self.report.programs % 1000 == 0:
                self.report.seconds += time.perf_counter() - start
                start = time.perf_counter()
                progress(self.report)
        self.report.seconds += time.perf_counter() - start
        return self.report

    def _one(self, number: int, kind: str, base, words: list[int]) -> None:
        report = self.report
        report.programs += 1
        report.kinds[kind] += 1
        expected = expected_outcome(self.config, words, base.memory)
        image = base.memory.copy()
        problems: list[str] = []
        try:
            run = self.accelerator.run(
                image,
                words_array(words),
                max_cycles=MAX_CYCLES,
                quiet_cycles=QUIET_CYCLES,
                fresh=True,
            )
        except SimulationTimeoutError as timeout:
            report.hangs += 1
            report.verdicts[HANG] += 1
            report.cycles += timeout.cycles
            problems.append(f"hardware hung, model says {_said(expected)}")
            self._compare_state(expected, image, timeout.counters, problems)
        except Exception as crash:  # a crash is a finding, not a test error
            report.crashes += 1
            problems.append(f"harness raised {type(crash).__name__}: {crash}")
        else:
            verdict = OK if run.error is ErrorCode.NONE else ERROR
            report.verdicts[verdict] += 1
            report.cycles += run.cycles
            if verdict == ERROR:
                report.codes[run.error.name] += 1
            found = (run.error, run.error_index if verdict == ERROR else -1)
            allowed = [(expected.code, expected.index), *expected.alternatives]
            if verdict != expected.verdict or (verdict == ERROR and found not in allowed):
                problems.append(
                    f"hardware says {verdict} {run.error.name} at {found[1]}, model says "
                    f"{_said(expected)}"
                )
            elif expected.accepted is not None and run.accepted != expected.accepted:
                problems.append(f"accepted {run.accepted} words, model {expected.accepted}")
            self._compare_state(expected, image, run.counters, problems)
        if problems:
            report.disagreements.append(
                Disagreement(number, kind, base.name, tuple(words), "; ".join(problems))
            )

    def _compare_state(self, expected: Expected, image, counters, problems: list[str]) -> None:
        """Counters and memory against the prediction, where it is exact."""
        if expected.counters_exact:
            self.report.counters_compared += 1
            for name, value in expected.counters.items():
                if counters[name] != value:
                    problems.append(f"counter {name} {counters[name]}, model {value}")
        if expected.memory_exact:
            self.report.memory_compared += 1
            differ = np.flatnonzero(image != expected.memory)
            if differ.size:
                problems.append(
                    f"memory differs at {differ.size} bytes from address {int(differ[0])}"
                )


def _said(expected: Expected) -> str:
    if expected.verdict == OK:
        return "ok"
    return f"{expected.verdict} {expected.code.name} at {expected.index}"
