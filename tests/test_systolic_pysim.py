"""The systolic array in Amaranth's simulator: exact results, exact cycles, flow control."""

import dataclasses

import numpy as np
import pytest
from gemm_operands import operands

from hdl.config import AccelConfig
from sim.array_program import gemm_program
from sim.cycles import array_cycles
from sim.drivers.pysim import FlowControl, run_pysim
from sim.golden.gemm import gemm

ARRAYS = [(1, 1), (2, 2), (2, 3), (3, 2)]
SHAPES = [(1, 1, 1), (5, 7, 3), (2, 9, 4), (9, 2, 7), (8, 13, 5)]  # (M, K, N)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(("rows", "cols"), ARRAYS)
def test_exact_results_and_cycles(dataflow, rows, cols):
    config = AccelConfig(rows=rows, cols=cols, dataflow=dataflow)
    for seed, (m, k, n) in enumerate(SHAPES):
        a, b = operands(seed, m, k, n)
        program = gemm_program(a, b, config)
        output, cycles = run_pysim(program)
        np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
        assert cycles == array_cycles(m, n, k, config), (m, k, n)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_idle_gaps_and_back_pressure_lose_nothing(dataflow):
    config = AccelConfig(rows=3, cols=2, dataflow=dataflow)
    a, b = operands(11, 7, 8, 5)
    program = gemm_program(a, b, config)
    for seed, (idle, stall) in enumerate([(0.4, 0.0), (0.0, 0.5), (0.3, 0.3), (0.6, 0.7)]):
        output, cycles = run_pysim(program, FlowControl(idle, stall, seed))
        np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
        assert cycles > array_cycles(7, 5, 8, config)


def test_zero_operands_and_overflow_free_extremes():
    config = AccelConfig(rows=2, cols=2, dataflow="ws")
    a = np.full((3, 6), -128, np.int8)
    b = np.full((6, 3), -128, np.int8)
    b[:, 1] = 0
    program = gemm_program(a, b, config)
    output, _ = run_pysim(program)
    np.testing.assert_array_equal(program.assemble(output), [[98304, 0, 98304]] * 3)


def test_assemble_detects_lost_and_misplaced_beats():
    config = AccelConfig(rows=2, cols=2, dataflow="os")
    a, b = operands(3, 3, 4, 3)
    program = gemm_program(a, b, config)
    output, _ = run_pysim(program)
    with pytest.raises(ValueError, match=r"^expected 8 output beats, the unit produced 7$"):
        program.assemble(output[:-1])
    with pytest.raises(ValueError, match=r"^output beat 0 has last=True, expected otherwise$"):
        program.assemble(output[[1, 0, 2, 3, 4, 5, 6, 7]])


def test_program_refuses_bad_operands():
    config = AccelConfig(rows=2, cols=2)
    with pytest.raises(ValueError, match=r"^inner dimensions differ: a is 2x3, b is 2x2$"):
        gemm_program(np.zeros((2, 3), np.int8), np.zeros((2, 2), np.int8), config)
    with pytest.raises(TypeError, match=r"^a must have dtype int8, not int32$"):
        gemm_program(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int8), config)
    with pytest.raises(ValueError, match=r"^idle probability must be in \[0, 1\), not 1\.0$"):
        FlowControl(idle=1.0)


def test_a_hang_is_reported_not_endless():
    config = AccelConfig(rows=2, cols=2, dataflow="os")
    a, b = operands(4, 2, 3, 2)
    program = gemm_program(a, b, config)
    too_many = dataclasses.replace(program, output_beats=program.output_beats + 1)
    with pytest.raises(
        RuntimeError,
        match=r"^no transfer on any stream for \d+ cycles at cycle \d+: the array "
        r"unit hangs after 2 of 3 output beats$",
    ):
        run_pysim(too_many)
