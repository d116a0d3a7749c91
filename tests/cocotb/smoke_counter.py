"""cocotb tests of the toolchain smoke design (``SmokeAccumulator`` in tests/test_toolchain.py).

The design is an 8-bit signed accumulator: on each rising clock edge ``acc`` becomes 0 when
``rst`` or ``clear`` is high, else ``acc + x`` wrapped to 8 bits when ``en`` is high, else it
holds. `AccumulatorModel` is that behaviour in Python; every cycle's output is checked against it.

Run by ``sim.toolchain.run_cocotb`` (see tests/test_toolchain.py), not collected by pytest. This
folder must stay without an ``__init__.py``: as a package named ``cocotb`` it would shadow the real
cocotb for anything that has ``tests/`` on its import path.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

WIDTH = 8  # must match SmokeAccumulator in tests/test_toolchain.py


def wrap(value: int, width: int = WIDTH) -> int:
    """Two's-complement wrap of *value* to *width* bits."""
    half = 1 << (width - 1)
    return ((value + half) % (1 << width)) - half


class AccumulatorModel:
    """Cycle model of the smoke accumulator: `step` is one rising clock edge."""

    def __init__(self) -> None:
        self.acc = 0

    def step(self, *, rst: int, clear: int, en: int, x: int) -> int:
        """Apply one clock edge with these inputs and return the new ``acc``."""
        if rst or clear:
            self.acc = 0
        elif en:
            self.acc = wrap(self.acc + x)
        return self.acc


class UnwrappedModel(AccumulatorModel):
    """A deliberately wrong model (no 8-bit wrap), to prove the check can fail."""

    def step(self, *, rst: int, clear: int, en: int, x: int) -> int:
        if rst or clear:
            self.acc = 0
        elif en:
            self.acc += x
        return self.acc


# Directed opening: two large adds overflow 8 bits (127 + 127 wraps to -2), then the two
# negative extremes (-2 - 128 - 128 wraps to -2), so wrap-around is checked whatever the seed.
DIRECTED = [
    {"rst": 0, "clear": 0, "en": 1, "x": 127},
    {"rst": 0, "clear": 0, "en": 1, "x": 127},
    {"rst": 0, "clear": 0, "en": 1, "x": -128},
    {"rst": 0, "clear": 0, "en": 1, "x": -128},
    {"rst": 0, "clear": 1, "en": 1, "x": 5},  # clear beats enable
    {"rst": 0, "clear": 0, "en": 0, "x": 99},  # idle: en low, acc holds
]


def random_stimulus(rng: random.Random, cycles: int) -> list[dict[str, int]]:
    """Return *cycles* random input vectors: ~30% idle cycles, rare clears and resets."""
    vectors = []
    for _ in range(cycles):
        roll = rng.random()
        vectors.append(
            {
                "rst": int(roll < 0.01),
                "clear": int(0.01 <= roll < 0.04),
                "en": int(rng.random() >= 0.3),
                "x": rng.randint(-(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1),
            }
        )
    return vectors


async def reset(dut) -> None:
    """Start the clock and hold ``rst`` for two cycles; leaves inputs driven low."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.clear.value = 0
    dut.en.value = 0
    dut.x.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def drive_and_check(dut, model: AccumulatorModel, vectors: list[dict[str, int]]) -> None:
    """Apply *vectors* one per cycle and compare ``acc`` with *model* after every edge.

    Inputs change on the falling edge; ``acc`` is sampled in the read-only phase after the
    rising edge, so the check does not depend on the simulator's event ordering.
    """
    for cycle, vector in enumerate(vectors):
        for name, value in vector.items():
            getattr(dut, name).value = value
        await RisingEdge(dut.clk)
        await ReadOnly()
        expected = model.step(**vector)
        got = dut.acc.value.to_signed()
        assert got == expected, (
            f"cycle {cycle}: inputs {vector}: acc is {got}, model says {expected}"
        )
        await FallingEdge(dut.clk)


@cocotb.test()
async def test_accumulator_random(dut) -> None:
    """Directed wrap-around cases, then 400 seeded random cycles with idles, clears and resets."""
    rng = random.Random(cocotb.RANDOM_SEED)
    await reset(dut)
    await drive_and_check(dut, AccumulatorModel(), DIRECTED + random_stimulus(rng, 400))


@cocotb.test()
async def test_reset_clears_accumulator(dut) -> None:
    """A reset pulse in the middle of accumulation returns ``acc`` to 0."""
    await reset(dut)
    vectors = [{"rst": 0, "clear": 0, "en": 1, "x": 3}] * 5
    vectors += [{"rst": 1, "clear": 0, "en": 1, "x": 3}]
    vectors += [{"rst": 0, "clear": 0, "en": 1, "x": -7}] * 3
    await drive_and_check(dut, AccumulatorModel(), vectors)


@cocotb.test(skip=True)
async def test_wrong_model_must_fail(dut) -> None:
    """Checks the design against `UnwrappedModel`; MUST fail (selected explicitly by name).

    Skipped in a normal run; tests/test_toolchain.py selects it with ``testcase=`` (which runs
    skipped tests) and asserts that the run reports the failure.
    """
    await reset(dut)
    await drive_and_check(dut, UnwrappedModel(), DIRECTED)
