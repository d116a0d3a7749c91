"""cocotb verification of the Verilog requantizer (``requantizer`` from `hdl.gen`).

Run by ``sim.toolchain.run_cocotb`` (see tests/test_requant_cocotb.py), never collected by pytest.
Besides the variables of `streams`, ``TESSERA_REQUANT_CASES`` is a JSON list of
``[kind, rows, zero_point, relu]`` with kind ``"random"`` (accumulators over all of int32,
multipliers over the hardware's whole range) or ``"ties"`` (exact .5 ties), run back to back
after one reset; default `DEFAULT_CASES`. Cases come from tests/requant_cases.py (the runner puts
tests/ on ``PYTHONPATH``), seeded from ``COCOTB_RANDOM_SEED`` and the case's index.

Tests: ``test_requant/flow=none|idle|stall|both``; ``test_checker_must_fail/fault=...`` (skipped
unless selected) must fail.

`RequantCase` is the model and checker: each ``out`` beat must equal torch's float32
requantization (`sim.golden.requant.requantize_float`) of its row, checked as it arrives; then the
whole result through `RequantProgram.assemble`, the ``overflow`` and ``bad_param`` flags (low),
and, without flow control, the cycle count (C + rows + LATENCY).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from requant_cases import random_case, tie_case
from streams import FLOWS, beats_to_words, run_cases

from hdl.config import AccelConfig
from sim.golden.requant import requantize_float
from sim.requant_program import RequantProgram, requant_cycles, requant_program

DEFAULT_CASES = [["random", 200, 0, False], ["random", 100, 41, True], ["ties", 150, -9, False]]
#: Deliberate faults of the must-fail test: a model that rounds half away from zero, a cycle
#: count one too high, one beat fewer.
FAULTS = ("model", "cycles", "beats")


def load_cases() -> list[list]:
    text = os.environ.get("TESSERA_REQUANT_CASES")
    return json.loads(text) if text else DEFAULT_CASES


class RequantCase:
    """One seeded requantization: operands, program, model and checker (`streams.StreamCase`)."""

    def __init__(self, config: AccelConfig, spec: list, seed, flow: str, fault=None):
        kind, rows, zero_point, relu = spec
        self.config, self.spec, self.flow, self.fault = config, spec, flow, fault
        self.idle, self.stall = FLOWS[flow]
        self.flow_seed = f"{seed}/{flow}"
        self.gaps: dict[str, dict[int, int]] = {}
        seed = list(seed)
        cols = config.cols
        if kind == "ties":
            acc, bias, params = tie_case(seed, rows, cols, zero_point)
        else:
            acc, bias, params = random_case(seed, rows, cols, zero_point, relu)
        self.program: RequantProgram = requant_program(acc, bias, params, config)
        sums = (acc.astype(np.int64) + bias).astype(np.int32)
        if fault == "model":  # round half away from zero instead of to even
            scaled = (sums.astype(np.float32) * params.multiplier).astype(np.float64)
            rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
            self.expected = np.clip(rounded + zero_point, params.low, 127).astype(np.int8)
        else:
            self.expected = requantize_float(sums, params)
        self.model_cycles = requant_cycles(rows, config) + (fault == "cycles")
        self.monitor_beats = self.program.output_beats - (fault == "beats")
        self.words = -(-(8 * cols + 1) // 32)

    def __str__(self) -> str:
        return f"requant {self.spec} flow={self.flow}"

    def check_beat(self, index: int, value: int) -> None:
        """Scoreboard: beat `index` must be row `index` of the model, ``last`` on the final row."""
        cols = self.config.cols
        got = np.frombuffer(value.to_bytes(cols + 1, "little")[:cols], np.int8)
        last = bool((value >> (8 * cols)) & 1)
        want = np.zeros(cols, np.int8)
        if index < self.expected.shape[0]:
            want[: self.expected.shape[1]] = self.expected[index]
        want_last = index == self.expected.shape[0] - 1
        if not np.array_equal(got, want) or last != want_last:
            raise AssertionError(
                f"{self}: out beat {index} is {got.tolist()} last={last}, model "
                f"{want.tolist()} last={want_last}"
            )

    def check(self, beats: list[int], cycles: int) -> None:
        result = self.program.assemble(beats_to_words(beats, self.words))
        if not np.array_equal(result, self.expected):
            raise AssertionError(f"{self}: {int((result != self.expected).sum())} outputs differ")
        if self.flow == "none" and cycles != self.model_cycles:
            raise AssertionError(
                f"{self}: took {cycles} cycles, the model says {self.model_cycles}"
            )


async def run_requant_cases(dut, flow: str, fault: str | None = None, name: str = "") -> None:
    """Every configured case with `flow`, after one reset (`streams.run_cases`)."""

    def make_case(config, spec, seed):
        return RequantCase(config, spec, seed, flow, fault)

    await run_cases(dut, "requant", load_cases(), make_case, ("overflow", "bad_param"), name)


@cocotb.test()
@cocotb.parametrize(flow=list(FLOWS))
async def test_requant(dut, flow: str) -> None:
    """Every configured case, exact int8 results; exact cycles when ``flow`` is ``"none"``."""
    await run_requant_cases(dut, flow, name=f"test_requant/flow={flow}")


@cocotb.test(skip=True)
@cocotb.parametrize(fault=list(FAULTS))
async def test_checker_must_fail(dut, fault: str) -> None:
    """The checker with a deliberate `fault`; MUST fail (selected by test_requant_cocotb.py)."""
    await run_requant_cases(dut, "none", fault, name=f"test_checker_must_fail/fault={fault}")
