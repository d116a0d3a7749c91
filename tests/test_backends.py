"""The backend interface: get_backend, the golden backend, and the RTL backends (pysim,
verilator) running GEMMs end to end on the whole accelerator.

The RTL backends' outputs equal the golden backend's exactly and their hardware counters equal
the functional model's (sim.isa_model) for the same memory image and program; both RTL backends
count the same cycles. Their cycles are not compared with the golden backend's (an analytical
estimate). pysim runs use small configurations (2x3 arrays, 4-byte bus), a few seconds each.
"""

import numpy as np
import pytest
from accel_checks import assert_rtl_result, small_config
from gemm_operands import operands
from sparse_operands import sparse_operands

from hdl.config import AccelConfig
from hdl.isa import Instruction, Op
from sim.backends import GemmResult, get_backend
from sim.golden.gemm import gemm
from sim.perf import gemm_estimate
from sim.schedule import GemmLayout, gemm_memory


def test_golden_backend_gemm():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (9, 20), dtype=np.int8)
    b = rng.integers(-128, 128, (20, 3), dtype=np.int8)
    config = AccelConfig(rows=4, cols=4)
    result = get_backend("golden", config).gemm(a, b)
    assert isinstance(result, GemmResult)
    assert result.output.dtype == np.int32
    np.testing.assert_array_equal(result.output, a.astype(np.int64) @ b.astype(np.int64))
    estimate = gemm_estimate(9, 3, 20, config)  # the analytical model of the accelerator
    assert result.cycle_model == "perf"
    assert result.cycles == estimate.cycles > 0
    assert result.counters["macs"] == estimate.macs


def test_unknown_backend_lists_available_ones():
    with pytest.raises(
        ValueError, match=r"^unknown backend 'fpga'; available: 'golden', 'pysim', 'verilator'$"
    ):
        get_backend("fpga")


def test_backend_refuses_non_config():
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not <class 'dict'>$"):
        get_backend("golden", {"rows": 4})


def pysim_config(dataflow: str, **options) -> AccelConfig:
    """A 2x3 configuration pysim simulates quickly (`small_config`) at a 3-cycle latency."""
    return small_config(**{"rows": 2, "cols": 3, "dataflow": dataflow, "mem_latency": 3, **options})


@pytest.fixture(scope="module")
def verilator():
    """One verilator backend per configuration for the module (built once, cached on disk)."""
    backends = {}

    def get(config):
        if config not in backends:
            backends[config] = get_backend("verilator", config)
        return backends[config]

    yield get
    for backend in backends.values():
        backend.close()


def check_rtl_gemm(result: GemmResult, a: np.ndarray, b: np.ndarray, config: AccelConfig):
    """Output as the golden backend's; output and counters as the functional model's."""
    np.testing.assert_array_equal(result.output, get_backend("golden", config).gemm(a, b).output)
    image, layout = gemm_memory(a, b, config)
    assert_rtl_result(result, config, image, layout.schedule(), layout.result)


# Ragged shapes: one element, partial tiles in every dimension, several K-tiles and blocks.
SMALL_SHAPES = [(1, 1, 1), (7, 5, 4), (9, 7, 2)]  # (M, K, N)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_pysim_backend_runs_gemms_on_the_accelerator(dataflow):
    config = pysim_config(dataflow)
    backend = get_backend("pysim", config)
    for seed, (m, k, n) in enumerate(SMALL_SHAPES):
        a, b = operands(seed, m, k, n)  # -128 and 127 planted
        check_rtl_gemm(backend.gemm(a, b), a, b, config)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_verilator_backend_runs_gemms_on_the_accelerator(verilator, dataflow):
    config = pysim_config(
        dataflow, rows=4, cols=4, spad_bytes=1024, acc_rows=64, bus_bytes=8, mem_latency=12
    )
    backend = verilator(config)
    for seed, (m, k, n) in enumerate([(1, 1, 1), (13, 37, 11), (20, 33, 10), (5, 70, 17)]):
        a, b = operands(seed, m, k, n)
        check_rtl_gemm(backend.gemm(a, b), a, b, config)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_pysim_and_verilator_count_the_same_cycles(verilator, dataflow):
    """Same program, same memory rules: the same cycles and counters, cycle for cycle."""
    config = pysim_config(dataflow)
    a, b = operands(7, 7, 5, 4)
    w, x = sparse_operands(7, 5, 20, 4, 0.5)
    pysim, native = get_backend("pysim", config), verilator(config)
    for product, operands_ in (("gemm", (a, b)), ("spmm", (w, x))):
        expected = getattr(native, product)(*operands_)
        found = getattr(pysim, product)(*operands_)
        np.testing.assert_array_equal(found.output, expected.output)
        assert found.cycles == expected.cycles, product
        assert found.counters == expected.counters, product


def test_memory_latency_comes_from_the_config():
    a, b = operands(3, 9, 7, 5)
    fast = get_backend("pysim", pysim_config("ws", mem_latency=0)).gemm(a, b)
    slow = get_backend("pysim", pysim_config("ws", mem_latency=40)).gemm(a, b)
    np.testing.assert_array_equal(fast.output, slow.output)
    assert slow.cycles > fast.cycles + 40
    assert slow.counters["memory_stall"] > fast.counters["memory_stall"]


@pytest.mark.parametrize("name", ["pysim", "verilator"])
@pytest.mark.parametrize(
    ("shapes", "dtype", "error", "message"),
    [
        (((2, 3), (3, 2)), np.int16, TypeError, r"^{0} must have dtype int8, not int16$"),
        (((2, 3), (2, 2)), np.int8, ValueError, r"^inner dimensions differ: {0} is 2x3, {1} is"),
        (((3,), (3, 2)), np.int8, ValueError, r"^{0} must have 2 dimensions, not shape \(3,\)$"),
    ],
)
def test_rtl_backends_refuse_bad_operands(name, shapes, dtype, error, message):
    """The same checks and messages as the golden models (`sim.golden.checks`)."""
    backend = get_backend(name, pysim_config("ws"))
    first, second = np.zeros(shapes[0], dtype), np.zeros(shapes[1], np.int8)
    with pytest.raises(error, match=message.format("a", "b")):
        backend.gemm(first, second)
    with pytest.raises(error, match=message.format("w", "x")):
        backend.spmm(first, second)


@pytest.mark.parametrize("name", ["pysim", "verilator"])
def test_operands_larger_than_the_memory_are_refused(name):
    config = pysim_config("ws", mem_bytes=256)
    a, b = operands(0, 8, 16, 8)  # 128 + 128 + 256 bytes
    with pytest.raises(
        ValueError,
        match=r"^the operands and the result need 512 bytes of main memory, more than "
        r"config.mem_bytes = 256$",
    ):
        get_backend(name, config).gemm(a, b)


@pytest.mark.parametrize("name", ["pysim", "verilator"])
def test_an_accelerator_error_is_raised_with_its_code_and_index(name, verilator, monkeypatch):
    """A scheduler bug: the program's last word reads past config.mem_bytes."""
    config = pysim_config("ws")
    schedule = GemmLayout.schedule
    bad = Instruction(
        Op.LOAD_ACT, dram_addr=config.mem_bytes - 2, dram_stride=4, rows=2, spad_row=0, width=2
    )
    monkeypatch.setattr(GemmLayout, "schedule", lambda layout: [*schedule(layout), bad])
    a, b = operands(1, 3, 2, 2)
    count = len(gemm_memory(a, b, config)[1].schedule())
    backend = verilator(config) if name == "verilator" else get_backend(name, config)
    with pytest.raises(
        RuntimeError,
        match=rf"^the accelerator stopped with error DRAM_RANGE at instruction {count - 1} of "
        rf"{count}: .*LOAD_ACT.* \(a bug of the scheduler, sim/schedule.py\)$",
    ):
        backend.gemm(a, b)


def test_verilator_backend_builds_on_first_use_and_closes():
    config = pysim_config("os")
    with get_backend("verilator", config) as backend:
        assert backend._accelerator is None
        a, b = operands(2, 3, 4, 5)
        first = backend.gemm(a, b)
        model = backend._accelerator
        assert model is not None
        assert backend.gemm(a, b).cycles == first.cycles  # same model, reset per run
        assert backend._accelerator is model
    assert backend._accelerator is None
    np.testing.assert_array_equal(first.output, gemm(a, b))
