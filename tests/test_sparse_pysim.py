"""The sparse engine in Amaranth's simulator: exact results and cycles, flow control, errors."""

import dataclasses

import numpy as np
import pytest
from accel_checks import assert_rtl_result, small_config
from amaranth.sim import Simulator
from sparse_operands import SPARSITIES, pattern_24_operands, sparse_operands

from hdl.config import AccelConfig
from hdl.sparse import LATENCY, SparseEngine, product_widths
from sim.backends import get_backend
from sim.cycles import sparse_cycles
from sim.drivers.pysim import FlowControl, run_pysim
from sim.golden.gemm import gemm
from sim.golden.sparse import csr_compress
from sim.sparse_program import pass_beats, spmm_program
from sim.spmm_schedule import spmm_memory, spmm_schedule
from sim.stream_program import pack_beats

# (cols, sparse_lanes, sparse_depth): G = lanes / cols nonzeros per beat, from 1 to 3; a depth of
# 8 splits every K > 8 into several passes.
ENGINES = [(1, 1, 8), (2, 4, 8), (3, 6, 16), (2, 6, 8)]
SHAPES = [(1, 1, 1), (5, 7, 3), (4, 20, 5), (7, 9, 2)]  # (N, K, M)


def config_of(cols: int, lanes: int, depth: int) -> AccelConfig:
    return AccelConfig(rows=2, cols=cols, sparse_lanes=lanes, sparse_depth=depth)


def expected(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return gemm(np.ascontiguousarray(w), np.ascontiguousarray(x))


@pytest.mark.parametrize(("cols", "lanes", "depth"), ENGINES)
def test_exact_results_and_cycles(cols, lanes, depth):
    config = config_of(cols, lanes, depth)
    for seed, (n, k, m) in enumerate(SHAPES):
        for sparsity in SPARSITIES:
            w, x = sparse_operands(seed, n, k, m, sparsity)
            program = spmm_program(w, x, config)
            output, cycles = run_pysim(program)
            np.testing.assert_array_equal(program.assemble(output), expected(w, x))
            passes = pass_beats(csr_compress(w), m, config)
            assert cycles == sparse_cycles(passes), (n, k, m, sparsity)


def test_cycles_grow_with_nonzeros_not_with_n_times_k():
    config = config_of(2, 4, 32)  # G = 2
    cycles = []
    for sparsity in (0.0, 0.5, 0.9):
        w, x = sparse_operands(3, 8, 32, 2, sparsity, edges=False)
        _, count = run_pysim(spmm_program(w, x, config))
        cycles.append(count)
        nnz_row = np.count_nonzero(w, axis=1)
        # One pass: K acts beats, then sum over rows of max(1, ceil(nnz / G)) beats, then LATENCY.
        assert count == 32 + int(np.maximum(1, -(-nnz_row // 2)).sum()) + LATENCY
    assert cycles[0] > cycles[1] > cycles[2]


@pytest.mark.parametrize(("cols", "lanes"), [(2, 4), (3, 3)])
def test_two_four_patterns(cols, lanes):
    config = config_of(cols, lanes, 16)
    for seed, (n, k, m) in enumerate([(4, 8, 3), (3, 22, 4)]):
        w, x = pattern_24_operands(seed, n, k, m)
        program = spmm_program(w, x, config)
        output, cycles = run_pysim(program)
        np.testing.assert_array_equal(program.assemble(output), expected(w, x))
        assert cycles == sparse_cycles(pass_beats(csr_compress(w), m, config))


@pytest.mark.parametrize(("idle", "stall"), [(0.4, 0.0), (0.0, 0.5), (0.6, 0.7)])
def test_idle_gaps_and_back_pressure_lose_nothing(idle, stall):
    config = config_of(2, 4, 8)
    w, x = sparse_operands(9, 6, 19, 5, 0.5)
    program = spmm_program(w, x, config)
    best = sparse_cycles(pass_beats(csr_compress(w), 5, config))
    for seed in range(2):
        output, cycles = run_pysim(program, FlowControl(idle, stall, seed))
        np.testing.assert_array_equal(program.assemble(output), expected(w, x))
        assert cycles > best


@pytest.mark.parametrize("sparsity", [0.0, 0.75])
def test_pysim_backend_spmm_runs_on_the_accelerator(sparsity):
    """The whole accelerator's SPMM path: two K-chunks (K = 20 > sparse_depth 16), three column
    blocks of X (M = 5 on 2 columns), -128 / 127 planted; output as the golden backend's."""
    config = small_config(2, 2, sparse_lanes=4, mem_latency=3)
    w, x = sparse_operands(5, 6, 20, 5, sparsity)
    rtl = get_backend("pysim", config).spmm(w, x)
    model = get_backend("golden", config).spmm(w, x)
    np.testing.assert_array_equal(rtl.output, expected(w, x))
    np.testing.assert_array_equal(model.output, expected(w, x))
    image, layout = spmm_memory(w, x, config)
    assert_rtl_result(rtl, config, image, spmm_schedule(layout), layout.result)
    # C lanes per nonzero, for each of the 3 column blocks (the last one half used).
    assert rtl.counters["macs"] == 3 * config.cols * np.count_nonzero(w)


def test_product_register_widths_keep_adders_equal():
    assert product_widths(1) == [32]
    assert product_widths(4) == [16] * 4
    assert product_widths(3) == [16, 16, 17]
    assert product_widths(5) == [16, 16, 16, 16, 18]


def test_assemble_detects_lost_and_misplaced_beats():
    config = config_of(2, 4, 8)
    w, x = sparse_operands(2, 3, 5, 2, 0.5)
    program = spmm_program(w, x, config)
    output, _ = run_pysim(program)
    with pytest.raises(ValueError, match=r"^expected 3 output beats, the unit produced 2$"):
        program.assemble(output[:-1])
    with pytest.raises(ValueError, match=r"^output beat 1 has last=True, expected otherwise$"):
        program.assemble(output[[0, 2, 1]])


def test_program_refuses_bad_operands():
    config = config_of(2, 4, 8)
    with pytest.raises(ValueError, match=r"^inner dimensions differ: w is 2x3, x is 2x2$"):
        spmm_program(np.zeros((2, 3), np.int8), np.zeros((2, 2), np.int8), config)
    with pytest.raises(TypeError, match=r"^w must have dtype int8, not int16$"):
        spmm_program(np.zeros((2, 2), np.int16), np.zeros((2, 2), np.int8), config)
    with pytest.raises(ValueError, match=r"^w must have 2 dimensions, not shape \(2,\)$"):
        spmm_program(np.zeros(2, np.int8), np.zeros((2, 2), np.int8), config)


def test_a_hang_is_reported_not_endless():
    config = config_of(2, 4, 8)
    w, x = sparse_operands(4, 2, 3, 2, 0.0)
    program = spmm_program(w, x, config)
    too_many = dataclasses.replace(program, output_beats=program.output_beats + 1)
    with pytest.raises(RuntimeError, match=r"the sparse unit hangs after 2 of 3 output beats$"):
        run_pysim(too_many)


def test_error_flag_for_out_of_range_index_and_overlong_block():
    """A column index beyond the loaded block, or a block longer than the bank, sets ``error``;
    the engine keeps going (no hang) and a clean run leaves ``error`` low."""
    config = config_of(2, 2, 4)  # G = 1, depth 4: 2-bit indices

    def acts(rows: int) -> np.ndarray:
        data = np.ones((rows, 2), np.int64)
        return pack_beats([(data, 8), ((np.arange(rows) == rows - 1)[:, None], 1)])

    def nonzeros(indices: list[int]) -> np.ndarray:
        count = len(indices)
        ones = np.ones((count, 1), np.int64)
        index = np.array(indices, np.int64)[:, None]
        return pack_beats(
            [(ones, 8), (index, 2), (ones, 1), ((np.arange(count) == count - 1)[:, None], 1)]
        )

    def error_after(act_beats: np.ndarray, nonzero_beats: np.ndarray) -> tuple[bool, int]:
        dut = SparseEngine(config)
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        seen = {}

        async def testbench(ctx):
            ctx.set(dut.out.ready, 1)
            for name, beats in (("acts", act_beats), ("nonzeros", nonzero_beats)):
                port = getattr(dut, name)
                for beat in beats:
                    ctx.set(port.payload.as_value(), int(beat[0]))
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
            outputs = 0
            for _ in range(10):
                _, _, valid = await ctx.tick().sample(dut.out.valid)
                outputs += valid
            seen["error"], seen["outputs"] = bool(ctx.get(dut.error)), outputs

        sim.add_testbench(testbench)
        sim.run()
        return seen["error"], seen["outputs"]

    assert error_after(acts(3), nonzeros([0, 2])) == (False, 2)
    assert error_after(acts(3), nonzeros([0, 3])) == (True, 2)  # index 3 of a 3-row block
    assert error_after(acts(6), nonzeros([1])) == (True, 1)  # 6 rows into a 4-row bank
