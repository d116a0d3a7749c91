# amaranth: UnusedElaboratable=no
"""Scheduled programs (sim/schedule.py) on the whole accelerator in Amaranth's simulator.

The scheduler's programs, checked on the functional model in tests/test_schedule.py, here run on
the gateware itself: results equal sim.golden and the hardware counters equal the model's.
"""

import numpy as np
import pytest
from accel_checks import assert_counters_agree, model_run, small_config
from sparse_operands import sparse_operands

from hdl.isa import ErrorCode, encode_program
from sim.drivers.accel_pysim import run_accelerator
from sim.golden.gemm import gemm
from sim.golden.requant import RequantParams, requantize_float
from sim.schedule import gemm_memory
from sim.spmm_schedule import spmm_memory, spmm_schedule

MEMORY = 1 << 14


def run_both(config, memory, program):
    """Run on the gateware and on the functional model; both final memories and counters."""
    image = np.zeros(MEMORY, np.uint8)
    image[: memory.size] = memory
    model_memory, counters = model_run(config, image, program)
    run = run_accelerator(config, image, encode_program(program), latency=0)
    assert run.error is ErrorCode.NONE
    np.testing.assert_array_equal(run.memory, model_memory)  # every byte, not only C
    assert_counters_agree(run.counters, counters, program, config)
    assert run.counters["cycles"] == run.cycles
    return run


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(("rows", "cols"), [(2, 3), (3, 2)])
def test_scheduled_gemms_int32_and_int8(dataflow, rows, cols):
    config = small_config(rows, cols, dataflow)
    rng = np.random.default_rng(rows * 10 + cols)
    for m, k, n in [(5, 4, 4), (9, 7, 2)]:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        a[0], b[:, 0] = -128, -128
        memory, layout = gemm_memory(a, b, config)
        run = run_both(config, memory, layout.schedule())
        np.testing.assert_array_equal(layout.result(run.memory), gemm(a, b))
    bias = rng.integers(-5000, 5000, 3).astype(np.int32)
    params = RequantParams(np.array([0.01, 0.002, 0.05], np.float32), 3, relu=True)
    a = rng.integers(-128, 128, (6, 5), dtype=np.int8)
    b = rng.integers(-128, 128, (5, 3), dtype=np.int8)
    memory, layout = gemm_memory(a, b, config, bias=bias, params=params)
    run = run_both(config, memory, layout.schedule())
    sums = (gemm(a, b).astype(np.int64) + bias).astype(np.int32)
    np.testing.assert_array_equal(layout.result(run.memory), requantize_float(sums, params))


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_scheduled_sparse_product(sparsity):
    config = small_config(2, 2, "ws")
    w, x = sparse_operands(3, 7, 20, 5, sparsity)  # K = 20 > sparse_depth: two K-chunks
    memory, layout = spmm_memory(w, x, config)
    run = run_both(config, memory, spmm_schedule(layout))
    np.testing.assert_array_equal(layout.result(run.memory), gemm(w, x))
