"""The sparse engine in the native Verilator harness: exact results and cycles at every sparsity.

Acceptance of the sparse engine: bit-exact against the golden sparse GEMM for random matrices at
0, 50, 75, 90 and 99 % sparsity and for 2:4 patterns, with input gaps and output back-pressure,
and cycle counts equal to `sim.cycles.sparse_cycles`. Builds are cached (cold: 5-25 s each).
"""

import numpy as np
import pytest
from accel_checks import assert_rtl_result
from sparse_operands import SPARSITIES, pattern_24_operands, sparse_operands

from hdl.config import AccelConfig
from sim.backends import get_backend
from sim.cycles import sparse_cycles
from sim.drivers.native import NativeSim
from sim.drivers.pysim import FlowControl, run_pysim
from sim.golden.sparse import csr_compress, csr_spmm
from sim.sparse_program import pass_beats, spmm_program
from sim.spmm_schedule import spmm_memory, spmm_schedule

FLOWS = [(0.4, 0.0), (0.0, 0.5), (0.6, 0.7)]
# (rows, cols, sparse_lanes, sparse_depth): G = 4 and G = 3 with several K-chunks, and the
# default 16 x 16 configuration (G = 16, depth 512).
ENGINES = [(4, 4, 16, 64), (2, 2, 6, 16), (16, 16, None, 512)]


@pytest.fixture(scope="module")
def engine():
    """NativeSim of the sparse engine per (rows, cols, lanes, depth), built once per module."""
    sims = {}

    def get(rows, cols, lanes, depth):
        key = (rows, cols, lanes, depth)
        if key not in sims:
            config = AccelConfig(rows=rows, cols=cols, sparse_lanes=lanes, sparse_depth=depth)
            sims[key] = NativeSim(config, "sparse")
        return sims[key]

    yield get
    for sim in sims.values():
        sim.close()


def golden(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return csr_spmm(csr_compress(w), x)


@pytest.mark.parametrize(("rows", "cols", "lanes", "depth"), ENGINES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_exact_at_every_sparsity(engine, rows, cols, lanes, depth, sparsity):
    sim = engine(rows, cols, lanes, depth)
    for seed, (n, k, m) in enumerate([(37, 70, 21), (64, 129, 5), (3, 1, 1)]):
        w, x = sparse_operands(seed, n, k, m, sparsity)
        program = spmm_program(w, x, sim.config)
        output, cycles, counters = sim.run(program)
        np.testing.assert_array_equal(program.assemble(output), golden(w, x))
        assert cycles == sparse_cycles(pass_beats(csr_compress(w), m, sim.config))
        assert counters["out_stall_cycles"] == 0
        for idle, stall in FLOWS:
            flow = FlowControl(idle, stall, seed)
            output, slower, _ = sim.run(program, flow)
            np.testing.assert_array_equal(program.assemble(output), golden(w, x))
            assert slower > cycles


@pytest.mark.parametrize(("rows", "cols", "lanes", "depth"), ENGINES)
def test_exact_for_two_four_patterns(engine, rows, cols, lanes, depth):
    sim = engine(rows, cols, lanes, depth)
    for seed, (n, k, m) in enumerate([(16, 64, 16), (9, 30, 7)]):
        w, x = pattern_24_operands(seed, n, k, m)
        program = spmm_program(w, x, sim.config)
        output, cycles, _ = sim.run(program)
        np.testing.assert_array_equal(program.assemble(output), golden(w, x))
        assert cycles == sparse_cycles(pass_beats(csr_compress(w), m, sim.config))
        output, _, _ = sim.run(program, FlowControl(0.3, 0.5, seed))
        np.testing.assert_array_equal(program.assemble(output), golden(w, x))


def test_same_words_and_cycles_as_pysim(engine):
    sim = engine(2, 2, 6, 16)
    w, x = sparse_operands(7, 6, 40, 3, 0.75)
    program = spmm_program(w, x, sim.config)
    reference, reference_cycles = run_pysim(program)
    output, cycles, _ = sim.run(program)
    np.testing.assert_array_equal(output, reference)
    assert cycles == reference_cycles


@pytest.fixture(scope="module")
def backend():
    """The verilator backend of a 4x4 accelerator, built once for the module."""
    config = AccelConfig(
        rows=4,
        cols=4,
        sparse_lanes=16,
        sparse_depth=64,
        spad_bytes=1024,
        acc_rows=64,
        bus_bytes=8,
        mem_latency=12,
        mem_bytes=1 << 16,
    )
    with get_backend("verilator", config) as verilator:
        yield verilator


@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.99])
def test_verilator_backend_spmm_runs_on_the_accelerator(backend, sparsity):
    """The whole accelerator's SPMM path: several row groups (N = 40 > acc_rows / 2), K-chunks
    (K = 100 > sparse_depth 64) and column blocks (M = 9 on 4 columns)."""
    config = backend.config
    w, x = sparse_operands(8, 40, 100, 9, sparsity)
    rtl = backend.spmm(w, x)
    np.testing.assert_array_equal(rtl.output, get_backend("golden", config).spmm(w, x).output)
    image, layout = spmm_memory(w, x, config)
    assert len(layout.row_groups) > 1 and len(layout.chunks) > 1
    assert_rtl_result(rtl, config, image, spmm_schedule(layout), layout.result)
