"""sim/perf.py, the accelerator's analytical model, against the gateware in the native harness.

The model must predict the RTL's end-to-end cycles of scheduled GEMMs within 5 % (issue 5; the
16x16 sweep and random shapes are in tests/test_top_native.py's slow test and
bench/accel_sweep.py) and the bytes and MACs the hardware counts exactly.
"""

import numpy as np
import pytest
from accel_checks import native_config
from sparse_operands import sparse_operands

from hdl.config import AccelConfig
from hdl.isa import ErrorCode, Instruction, Op, encode_program
from sim.drivers.accel_native import NativeAccelerator
from sim.golden.requant import RequantParams
from sim.perf import gemm_estimate, program_estimate, spmm_estimate
from sim.schedule import gemm_memory
from sim.spmm_schedule import spmm_memory, spmm_schedule

#: GEMMs: (m, n, k, int8 output, memory latency, bytes per cycle).
GEMMS = [
    (1, 1, 1, False, 12, 8),
    (16, 16, 16, False, 12, 8),
    (13, 7, 9, False, 0, 8),
    (40, 23, 37, False, 12, 8),
    (64, 20, 70, True, 30, 8),
    (33, 50, 12, False, 40, 4),
    (20, 33, 10, True, 3, 2),
    (100, 12, 60, False, 100, 8),
]


@pytest.fixture(scope="module")
def accelerator():
    sims = {}

    def get(dataflow):
        if dataflow not in sims:
            sims[dataflow] = NativeAccelerator(native_config(dataflow))  # test_top_native's build
        return sims[dataflow]

    yield get
    for sim in sims.values():
        sim.close()


def run_rtl(sim, memory, program, **options):
    image = np.zeros(sim.config.mem_bytes, np.uint8)
    image[: memory.size] = memory
    run = sim.run(image, encode_program(program), **options)
    assert run.error is ErrorCode.NONE
    return run


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_gemm_cycles_within_5_percent_and_counts_exact(accelerator, dataflow):
    sim = accelerator(dataflow)
    rng = np.random.default_rng(7)
    errors = []
    for m, n, k, int8, latency, bandwidth in GEMMS:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        params = RequantParams(np.full(n, 2**-12, np.float32), 0) if int8 else None
        memory, layout = gemm_memory(a, b, sim.config, params=params)
        run = run_rtl(sim, memory, layout.schedule(), latency=latency, bytes_per_cycle=bandwidth)
        estimate = gemm_estimate(
            m, n, k, sim.config, requant=int8, latency=latency, bytes_per_cycle=bandwidth
        )
        counters = run.counters
        assert (estimate.macs, estimate.bytes_read, estimate.bytes_written) == (
            counters["macs"],
            counters["bytes_read"],
            counters["bytes_written"],
        )
        assert estimate.instructions == counters["instructions"]
        errors.append(abs(estimate.cycles - run.cycles) / run.cycles)
    assert max(errors) <= 0.05, errors


@pytest.mark.parametrize("sparsity", [0.0, 0.75, 0.99])
def test_spmm_cycles_within_10_percent(accelerator, sparsity):
    """The sparse model is looser (docs/performance.md): the nonzeros and a concurrent load
    share the read channel word by word, which the model treats as one after the other."""
    sim = accelerator("ws")
    w, x = sparse_operands(int(100 * sparsity), 21, 70, 9, sparsity)
    memory, layout = spmm_memory(w, x, sim.config)
    run = run_rtl(sim, memory, spmm_schedule(layout))
    estimate = spmm_estimate(w, x.shape[1], sim.config)
    assert estimate.macs == run.counters["macs"]
    assert estimate.bytes_read == run.counters["bytes_read"]
    assert abs(estimate.cycles - run.cycles) <= 0.10 * run.cycles, (estimate.cycles, run.cycles)


def test_estimate_respects_its_own_bounds():
    """Cycles are at least what compute and each memory direction need; the bound names the
    busiest resource."""
    config = AccelConfig()
    big = gemm_estimate(512, 512, 512, config)
    assert big.cycles >= big.compute_cycles >= 512**3 // (16 * 16)
    assert big.bound == "compute" and big.cycles < 1.01 * big.compute_cycles
    small = gemm_estimate(16, 16, 16, config)
    assert small.bound == "latency" and small.cycles > config.mem_latency
    slow = gemm_estimate(256, 256, 256, config, bytes_per_cycle=2)
    assert slow.bound == "read" and slow.cycles >= slow.read_cycles


def test_more_latency_or_less_bandwidth_never_helps():
    config = AccelConfig(rows=8, cols=8, bus_bytes=8, spad_bytes=4096, acc_rows=256)
    cycles = [gemm_estimate(96, 80, 72, config, latency=lat).cycles for lat in (0, 16, 64, 256)]
    assert cycles == sorted(cycles) and cycles[0] < cycles[-1]
    cycles = [gemm_estimate(96, 80, 72, config, bytes_per_cycle=b).cycles for b in (8, 4, 2, 1)]
    assert cycles == sorted(cycles) and cycles[0] < cycles[-1]


def test_bad_arguments_are_named():
    config = AccelConfig()
    program = [Instruction(Op.FENCE)]
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not <class 'dict'>$"):
        program_estimate(program, {})
    with pytest.raises(ValueError, match=r"^latency must be an int >= 0, not -1$"):
        program_estimate(program, config, latency=-1)
    with pytest.raises(
        ValueError, match=r"^bytes_per_cycle must be in \[1, 16\] \(the bus width\), not 32$"
    ):
        program_estimate(program, config, bytes_per_cycle=32)
    with pytest.raises(ValueError, match=r"^program is empty$"):
        program_estimate([], config)
    with pytest.raises(TypeError, match=r"^program\[1\] must be a hdl.isa.Instruction, not 7$"):
        program_estimate([Instruction(Op.FENCE), 7], config)


def test_a_program_that_would_hang_is_refused():
    """A MATMUL waiting for a load token nobody pushes: the hardware would hang."""
    program = [
        Instruction(Op.MATMUL, act_row=0, wgt_row=0, rows=4, acc_row=0, accumulate=0, pop_prev=True)
    ]
    with pytest.raises(ValueError, match=r"never finishes"):
        program_estimate(program, AccelConfig())
