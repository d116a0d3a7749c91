"""cocotb verification of the Verilog systolic array (``systolic_array`` from `hdl.gen`).

Run by ``sim.toolchain.run_cocotb`` (see tests/test_systolic_cocotb.py), never collected by pytest.
Everything the run needs comes from the environment (besides those of `streams`):

``TESSERA_SYSTOLIC_GEMMS``
    JSON list of ``[M, N, K]`` shapes, run back to back (no reset in between) by every test;
    default `default_shapes`. Operands are seeded from ``COCOTB_RANDOM_SEED`` and the GEMM's index.

Tests: ``test_gemm/flow=none|idle|stall|both`` (`FLOWS`) runs every shape; the directed
``test_gap_before_last_beat`` puts an idle gap before the last input beat of a tile;
``test_checker_must_fail/fault=...`` (skipped unless selected) must fail.

The stream drivers, the ``out`` monitor and the `TB` are in `streams`. `GemmCase` is the model
and checker: it predicts every output beat from `sim.golden.gemm.gemm` on the tile the beat
belongs to, checks each beat as it arrives, then checks the whole result through
`ArrayProgram.assemble` against ``gemm(a, b)`` and, without flow control, the cycle count against
`sim.cycles.array_cycles`.
"""

from __future__ import annotations

import json
import math
import os

import cocotb
import numpy as np
from streams import (
    FLOWS,
    REGRESSION_SEED,
    SPEED,
    TB,
    beats_to_words,
    load_config,
    split_out_beat,
)

from hdl.config import AccelConfig, Dataflow
from sim.array_program import ArrayProgram, gemm_program
from sim.cycles import array_cycles
from sim.golden.gemm import gemm
from sim.stream_program import out_words

#: Deliberate faults of the must-fail test (see `test_checker_must_fail`).
FAULTS = ("model", "cycles", "beats")


def default_shapes(config: AccelConfig) -> list[tuple[int, int, int]]:
    """Ragged (M, N, K) shapes for `config`: partial tiles in every dimension, tiny and long M."""
    r, c = config.rows, config.cols
    return [(1, 1, 1), (r + 1, c + 1, r + 1), (2 * r + c + 1, 2 * c - 1, 2 * r - 1), (3, c, 3 * r)]


def load_shapes(config: AccelConfig) -> list[tuple[int, int, int]]:
    """(M, N, K) shapes from ``TESSERA_SYSTOLIC_GEMMS``, else `default_shapes`."""
    text = os.environ.get("TESSERA_SYSTOLIC_GEMMS")
    if not text:
        return default_shapes(config)
    shapes = [tuple(int(v) for v in shape) for shape in json.loads(text)]
    for shape in shapes:
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"TESSERA_SYSTOLIC_GEMMS entries must be [M, N, K] >= 1, not {shape}")
    return shapes


def random_operands(rng: np.random.Generator, m: int, n: int, k: int):
    """Random int8 A (M x K) and B (K x N) with planted extremes.

    Row 0 of A and column 0 of B are -128 (the largest product, 2**14, in output [0, 0]); the last
    row of A and the last column of B are 127; so are A's last column and B's last row when the
    dimension allows, so the extremes also meet the other operand's random values.
    """
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    if k > 1:
        a[:, -1], b[-1, :] = 127, -128
    if m > 1:
        a[-1, :] = 127
    if n > 1:
        b[:, -1] = 127
    a[0, :], b[:, 0] = -128, -128
    return a, b


def expected_beats(a: np.ndarray, b: np.ndarray, config: AccelConfig) -> list[tuple[list, bool]]:
    """Every ``out`` beat the array must produce, as (C int32 values, last), in order.

    Written from the tiling in `sim.array_program`'s docstring, independently of its packing
    code: each beat is one row of `gemm` on one zero-padded tile (padding outputs included).
    """
    r, c = config.rows, config.cols
    (m, k), n = a.shape, b.shape[1]
    os_flow = config.dataflow is Dataflow.OS
    m_pad = math.ceil(m / r) * r if os_flow else m
    k_pad = k if os_flow else math.ceil(k / r) * r
    n_pad = math.ceil(n / c) * c
    a_pad = np.zeros((m_pad, k_pad), np.int8)
    a_pad[:m, :k] = a
    b_pad = np.zeros((k_pad, n_pad), np.int8)
    b_pad[:k, :n] = b
    tiles = []
    if os_flow:
        for i in range(m_pad // r):
            for j in range(n_pad // c):
                tiles.append(gemm(a_pad[i * r : (i + 1) * r], b_pad[:, j * c : (j + 1) * c]))
    else:
        for j in range(n_pad // c):
            for i in range(k_pad // r):
                a_tile = a_pad[:, i * r : (i + 1) * r]
                tiles.append(gemm(a_tile, b_pad[i * r : (i + 1) * r, j * c : (j + 1) * c]))
    beats = []
    for tile in tiles:
        for row, values in enumerate(tile):
            beats.append(([int(v) for v in values], row == tile.shape[0] - 1))
    return beats


class GemmCase:
    """One seeded GEMM on the array: operands, program, model and checker.

    Parameters
    ----------
    config, shape, seed:
        The design, (M, N, K) and the operand seed (an int or a tuple of ints).
    flow:
        A `FLOWS` name; the flow-control random streams are seeded from `seed` and `flow`.
    fault:
        None, or a `FAULTS` entry that makes the checker wrong on purpose: ``"model"`` checks
        against a saturating model (int8 -128 read as -127), ``"cycles"`` expects one cycle more
        than `array_cycles`, ``"beats"`` tells the monitor to expect one beat fewer.
    gaps:
        Directed idle cycles: stream name -> {beat index: idle cycles before that beat}. The
        cycle count is checked only with flow ``"none"`` and no gaps.
    """

    def __init__(
        self,
        config: AccelConfig,
        shape,
        seed,
        flow: str,
        fault: str | None = None,
        gaps: dict[str, dict[int, int]] | None = None,
    ):
        self.config = config
        self.m, self.n, self.k = shape
        self.seed = seed
        self.flow = flow
        self.idle, self.stall = FLOWS[flow]
        self.flow_seed = f"{seed}/{flow}"  # str seeds of random.Random are stable across runs
        self.fault = fault
        self.gaps = gaps or {}
        rng = np.random.default_rng(seed)  # independent of the flow: same GEMMs in every test
        self.a, self.b = random_operands(rng, self.m, self.n, self.k)
        self.program: ArrayProgram = gemm_program(self.a, self.b, config)
        model_a = np.maximum(self.a, -127).astype(np.int8) if fault == "model" else self.a
        self.expected = gemm(model_a, self.b)
        self.beats = expected_beats(model_a, self.b, config)
        self.model_cycles = array_cycles(self.m, self.n, self.k, config) + (fault == "cycles")
        self.monitor_beats = self.program.output_beats - (fault == "beats")
        self.words = out_words(config.cols)

    def __str__(self) -> str:
        gaps = f" gaps={self.gaps}" if self.gaps else ""
        return f"GEMM M={self.m} N={self.n} K={self.k} seed={self.seed} flow={self.flow}{gaps}"

    def check_beat(self, index: int, value: int) -> None:
        """Scoreboard: the beat `index` must equal the model's, values and ``last`` flag."""
        if index >= len(self.beats):
            raise AssertionError(f"{self}: out beat {index} beyond the {len(self.beats)} expected")
        got, last = split_out_beat(value, self.config.cols)
        want, want_last = self.beats[index]
        if got != want or last != want_last:
            col = next((c for c, (g, w) in enumerate(zip(got, want, strict=True)) if g != w), None)
            where = f"column {col}: {got[col]} != model {want[col]}" if col is not None else ""
            raise AssertionError(
                f"{self}: out beat {index} is {got} last={last}, model {want} last={want_last}"
                f" {where}"
            )

    def check(self, beats: list[int], cycles: int) -> None:
        """The whole result through `ArrayProgram.assemble`, and the cycles without flow control."""
        result = self.program.assemble(
            beats_to_words(beats, self.words)
        )  # raises on a wrong beat count or `last` flag
        if not np.array_equal(result, self.expected):
            row, col = (int(i) for i in np.argwhere(result != self.expected)[0])
            raise AssertionError(
                f"{self}: result[{row}, {col}] = {result[row, col]}, "
                f"model {self.expected[row, col]} ({int((result != self.expected).sum())} differ)"
            )
        if self.flow == "none" and not self.gaps and cycles != self.model_cycles:
            raise AssertionError(
                f"{self}: took {cycles} cycles, array_cycles says {self.model_cycles}"
            )


async def run_and_check(tb: TB, case: GemmCase, name: str) -> None:
    """Run `case` on `tb`, check it, log it and record its speed."""
    beats, cycles, seconds = await tb.run(case)
    case.check(beats, cycles)
    tb.dut._log.info("%s: %d cycles in %.3f s", case, cycles, seconds)
    SPEED.add(
        {
            "test": name,
            "rows": case.config.rows,
            "cols": case.config.cols,
            "dataflow": case.config.dataflow.value,
            "m": case.m,
            "n": case.n,
            "k": case.k,
            "idle": case.idle,
            "stall": case.stall,
            "cycles": cycles,
            "seconds": seconds,
        }
    )


async def run_cases(dut, flow: str, fault: str | None = None, name: str = "") -> None:
    """Reset once, then run every configured GEMM with `flow`, back to back, checking each."""
    config = load_config()
    tb = TB(dut, config, "array")
    await tb.start()
    for index, shape in enumerate(load_shapes(config)):
        case = GemmCase(config, shape, (REGRESSION_SEED, index), flow, fault)
        await run_and_check(tb, case, name)


@cocotb.test()
@cocotb.parametrize(flow=list(FLOWS))
async def test_gemm(dut, flow: str) -> None:
    """Every configured GEMM, exact int32 results; exact cycles when ``flow`` is ``"none"``."""
    await run_cases(dut, flow, name=f"test_gemm/flow={flow}")


@cocotb.test()
async def test_gap_before_last_beat(dut) -> None:
    """Directed: R + C idle cycles before the last input beat of the first tile, then none.

    Output-stationary: two tiles of K = R - 1 < R beats (K = 2 for R < 3), so the first tile's
    last beat is late and the second tile's last beat follows it only K cycles later.
    Weight-stationary: the gap is before the last activation row of the first weight tile.
    """
    config = load_config()
    r, c = config.rows, config.cols
    if config.dataflow is Dataflow.OS:
        shape = (r, 2 * c, max(r - 1, 2))
        gaps = {"operands": {shape[2] - 1: r + c}}
    else:
        shape = (r, 2 * c, 2 * r)
        gaps = {"acts": {shape[0] - 1: r + c}}
    tb = TB(dut, config, "array")
    await tb.start()
    case = GemmCase(config, shape, (REGRESSION_SEED, 0), "none", gaps=gaps)
    await run_and_check(tb, case, "test_gap_before_last_beat")


@cocotb.test(skip=True)
@cocotb.parametrize(fault=list(FAULTS))
async def test_checker_must_fail(dut, fault: str) -> None:
    """The checker with a deliberate `fault` (see `GemmCase`); MUST fail.

    Skipped in a normal run; tests/test_systolic_cocotb.py selects it with ``testcase=`` and
    asserts that the failure is reported.
    """
    await run_cases(dut, "none", fault, name=f"test_checker_must_fail/fault={fault}")
