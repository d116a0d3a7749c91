"""cocotb verification of the Verilog sparse engine (``sparse_engine`` from `hdl.gen`).

Run by ``sim.toolchain.run_cocotb`` (see tests/test_sparse_cocotb.py), never collected by pytest.
Besides the variables of `streams`, ``TESSERA_SPARSE_CASES`` is a JSON list of
``[N, K, M, sparsity]`` (sparsity a fraction of zeros, or ``"2:4"`` for a 2:4 pattern), run back
to back after one reset by every test; default `default_cases`. W and X are seeded from
``COCOTB_RANDOM_SEED`` and the case's index; W has an empty row, a dense row of -128 and a row
with a single nonzero planted (`tests/sparse_operands.py`, importable because the runner puts
tests/ on ``PYTHONPATH``).

Tests: ``test_spmm/flow=none|idle|stall|both`` (`streams.FLOWS`) runs every case;
``test_checker_must_fail/fault=...`` (skipped unless selected) must fail.

`SpmmCase` is the model and checker: it predicts every ``out`` beat as one row of W's K-chunk
times X's column block (`gemm` on the slices, written from the pass order in
`sim.sparse_program`'s docstring), checks each beat as it arrives, then the whole result through
`SparseProgram.assemble` against ``gemm(w, x)`` and, without flow control, the cycle count
against `sim.cycles.sparse_cycles`.
"""

from __future__ import annotations

import json
import math
import os

import cocotb
import numpy as np
from sparse_operands import pattern_24_operands, sparse_operands
from streams import FLOWS, beats_to_words, load_config, run_cases, split_out_beat

from hdl.config import AccelConfig
from sim.cycles import sparse_cycles
from sim.golden.gemm import gemm
from sim.golden.sparse import csr_compress
from sim.sparse_program import SparseProgram, pass_beats, spmm_program
from sim.stream_program import out_words

#: Deliberate faults of the must-fail test (see `SpmmCase`).
FAULTS = ("model", "cycles", "beats")


def default_cases(config: AccelConfig) -> list[list]:
    """Cases for `config`: every sparsity of the acceptance list, 2:4, ragged K and M, a 1x1x1."""
    c, depth = config.cols, config.sparse_depth
    return [
        [1, 1, 1, 0.0],
        [9, depth + 3, c + 1, 0.5],
        [12, 2 * depth - 1, 2 * c, 0.75],
        [8, 37, c - 1 if c > 1 else 1, 0.9],
        [16, 100, c, 0.99],
        [6, 2 * depth + 5, 3, 0.0],
        [10, 24, c + 2, "2:4"],
    ]


def load_cases(config: AccelConfig) -> list[list]:
    """``TESSERA_SPARSE_CASES`` or `default_cases`."""
    text = os.environ.get("TESSERA_SPARSE_CASES")
    return json.loads(text) if text else default_cases(config)


def expected_beats(w: np.ndarray, x: np.ndarray, config: AccelConfig) -> list[tuple[list, bool]]:
    """Every ``out`` beat: for each K-chunk, each block of C columns, each row of W."""
    (n, k), m = w.shape, x.shape[1]
    c, depth = config.cols, config.sparse_depth
    x_pad = np.zeros((k, math.ceil(m / c) * c), np.int8)
    x_pad[:, :m] = x
    beats = []
    for start in range(0, k, depth):
        w_chunk = np.ascontiguousarray(w[:, start : start + depth])
        for j in range(x_pad.shape[1] // c):
            block = np.ascontiguousarray(x_pad[start : start + depth, j * c : (j + 1) * c])
            for row, values in enumerate(gemm(w_chunk, block)):
                beats.append(([int(v) for v in values], row == n - 1))
    return beats


class SpmmCase:
    """One seeded sparse GEMM: operands, program, model and checker (`streams.StreamCase`).

    ``fault``: None, or a `FAULTS` entry that makes the checker wrong on purpose: ``"model"``
    reads W's -128 as -127, ``"cycles"`` expects one cycle more than `sparse_cycles`,
    ``"beats"`` tells the monitor to expect one beat fewer.
    """

    def __init__(self, config: AccelConfig, case: list, seed, flow: str, fault: str | None = None):
        self.config = config
        self.n, self.k, self.m, self.sparsity = case
        self.seed, self.flow, self.fault = seed, flow, fault
        self.idle, self.stall = FLOWS[flow]
        self.flow_seed = f"{seed}/{flow}"
        self.gaps: dict[str, dict[int, int]] = {}
        if self.sparsity == "2:4":
            self.w, self.x = pattern_24_operands(list(seed), self.n, self.k, self.m)
        else:
            self.w, self.x = sparse_operands(list(seed), self.n, self.k, self.m, self.sparsity)
        self.program: SparseProgram = spmm_program(self.w, self.x, config)
        model_w = np.maximum(self.w, -127).astype(np.int8) if fault == "model" else self.w
        self.expected = gemm(model_w, self.x)
        self.beats = expected_beats(model_w, self.x, config)
        passes = pass_beats(csr_compress(self.w), self.m, config)
        self.model_cycles = sparse_cycles(passes) + (fault == "cycles")
        self.monitor_beats = self.program.output_beats - (fault == "beats")
        self.words = out_words(config.cols)

    def __str__(self) -> str:
        return (
            f"SpMM N={self.n} K={self.k} M={self.m} sparsity={self.sparsity} seed={self.seed} "
            f"flow={self.flow}"
        )

    def check_beat(self, index: int, value: int) -> None:
        """Scoreboard: the beat `index` must equal the model's, values and ``last`` flag."""
        if index >= len(self.beats):
            raise AssertionError(f"{self}: out beat {index} beyond the {len(self.beats)} expected")
        got, last = split_out_beat(value, self.config.cols)
        want, want_last = self.beats[index]
        if got != want or last != want_last:
            raise AssertionError(
                f"{self}: out beat {index} is {got} last={last}, model {want} last={want_last}"
            )

    def check(self, beats: list[int], cycles: int) -> None:
        """The whole result through `SparseProgram.assemble`; cycles without flow control."""
        result = self.program.assemble(beats_to_words(beats, self.words))
        if not np.array_equal(result, self.expected):
            row, col = (int(i) for i in np.argwhere(result != self.expected)[0])
            raise AssertionError(
                f"{self}: result[{row}, {col}] = {result[row, col]}, model "
                f"{self.expected[row, col]}"
            )
        if self.flow == "none" and cycles != self.model_cycles:
            raise AssertionError(
                f"{self}: took {cycles} cycles, sparse_cycles says {self.model_cycles}"
            )


async def run_spmm_cases(dut, flow: str, fault: str | None = None, name: str = "") -> None:
    """Every configured case with `flow`, after one reset (`streams.run_cases`)."""

    def make_case(config, spec, seed):
        return SpmmCase(config, spec, seed, flow, fault)

    specs = load_cases(load_config())
    await run_cases(dut, "sparse", specs, make_case, ("error",), name)


@cocotb.test()
@cocotb.parametrize(flow=list(FLOWS))
async def test_spmm(dut, flow: str) -> None:
    """Every configured case, exact int32 results; exact cycles when ``flow`` is ``"none"``."""
    await run_spmm_cases(dut, flow, name=f"test_spmm/flow={flow}")


@cocotb.test(skip=True)
@cocotb.parametrize(fault=list(FAULTS))
async def test_checker_must_fail(dut, fault: str) -> None:
    """The checker with a deliberate `fault` (see `SpmmCase`); MUST fail (selected by
    tests/test_sparse_cocotb.py with ``testcase=``)."""
    await run_spmm_cases(dut, "none", fault, name=f"test_checker_must_fail/fault={fault}")
