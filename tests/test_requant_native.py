"""The requantizer in the native Verilator harness against the golden requantization.

Exact int8 results against torch's float32 arithmetic (`requantize_float`, itself equal to the
integer form) for accumulators over all of int32, multipliers over the whole hardware range, every
encodable shift, exact .5 ties and saturating values, under idle gaps and back-pressure; exact
cycle counts (a row every C / L cycles: the configs' default lanes, L < C). Builds are cached
(cold: 5-20 s each).
"""

import numpy as np
import pytest
from requant_cases import random_case, shift_case, tie_case

from hdl.config import AccelConfig
from sim.drivers.native import NativeSim
from sim.drivers.pysim import FlowControl, run_pysim
from sim.golden.requant import requantize_float, requantize_int
from sim.requant_program import requant_cycles, requant_program

FLOWS = [(0.4, 0.0), (0.0, 0.5), (0.6, 0.7)]


@pytest.fixture(scope="module")
def requantizer():
    sims = {}

    def get(cols):
        if cols not in sims:
            sims[cols] = NativeSim(AccelConfig(rows=2, cols=cols), "requant")
        return sims[cols]

    yield get
    for sim in sims.values():
        sim.close()


def golden(acc, bias, params):
    sums = (acc.astype(np.int64) + bias).astype(np.int32)
    expected = requantize_float(sums, params)
    np.testing.assert_array_equal(expected, requantize_int(sums, params))
    return expected


def check(sim, case, flows=FLOWS, seed=0):
    acc, bias, params = case
    program = requant_program(acc, bias, params, sim.config)
    expected = golden(acc, bias, params)
    output, cycles, _ = sim.run(program)
    np.testing.assert_array_equal(program.assemble(output), expected)
    assert cycles == requant_cycles(acc.shape[0], sim.config)
    for idle, stall in flows:
        output, slower, _ = sim.run(program, FlowControl(idle, stall, seed))
        np.testing.assert_array_equal(program.assemble(output), expected)
        assert slower > cycles
    return program


@pytest.mark.parametrize("cols", [4, 16])
@pytest.mark.parametrize(
    ("zero_point", "relu"), [(0, False), (-128, False), (37, True), (127, True)]
)
def test_random_accumulators_over_the_whole_range(requantizer, cols, zero_point, relu):
    sim = requantizer(cols)
    for seed in range(3):
        check(sim, random_case(seed, 500, cols, zero_point, relu), seed=seed)
    check(sim, random_case(9, 50, cols - 1, zero_point, relu))  # a lane left unconfigured


@pytest.mark.parametrize("zero_point", [0, -7, 100])
def test_exact_ties_round_half_to_even(requantizer, zero_point):
    sim = requantizer(16)
    acc, bias, params = tie_case(zero_point + 200, 400, 16, zero_point)
    check(sim, (acc, bias, params))
    # Independent of the golden: k + 1/2 rounds to the even one of k, k + 1.
    twice = ((acc.astype(np.int64) + bias) * 2) * params.multiplier.astype(np.float64)
    k = np.floor(twice / 2).astype(np.int64)
    even = np.where(k % 2 == 0, k, k + 1)
    expected = np.clip(even + zero_point, -128, 127)
    program = requant_program(acc, bias, params, sim.config)
    np.testing.assert_array_equal(program.assemble(sim.run(program)[0]), expected)


def test_every_encodable_shift(requantizer):
    sim = requantizer(16)
    shifts = np.arange(64)
    for block in range(4):
        check(sim, shift_case(shifts[16 * block : 16 * block + 16], block, 300), flows=[])


def test_same_words_and_cycles_as_pysim(requantizer):
    sim = requantizer(4)
    acc, bias, params = random_case(5, 30, 3, 11, True)
    program = requant_program(acc, bias, params, sim.config)
    reference, reference_cycles = run_pysim(program)
    output, cycles, _ = sim.run(program)
    np.testing.assert_array_equal(output, reference)
    assert cycles == reference_cycles
    flow = FlowControl(0.3, 0.4, 2)
    np.testing.assert_array_equal(sim.run(program, flow)[0], run_pysim(program, flow)[0])


def test_program_refuses_bad_input():
    config = AccelConfig(rows=2, cols=4)
    acc, bias, params = random_case(1, 4, 4, 0, False)
    with pytest.raises(ValueError, match=r"^acc has 5 channels; one program holds 1 to cols = 4$"):
        requant_program(np.zeros((2, 5), np.int32), np.zeros(5, np.int32), params, config)
    with pytest.raises(ValueError, match=r"^acc has 4 channels, bias 3, params 4$"):
        requant_program(acc, bias[:3], params, config)
    with pytest.raises(TypeError, match=r"^acc must have dtype int32, not int64$"):
        requant_program(acc.astype(np.int64), bias, params, config)
