"""The accelerator's hardware counters against the functional model, shared by the tests that run
whole programs (native harness, Amaranth simulator, the pysim and verilator backends)."""

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import Instruction
from hdl.top_ports import COUNTERS
from sim.fuzz import native_config  # noqa: F401 - the tests' shared 4x4 build, re-exported
from sim.fuzz.expected import dma_bytes_read as bytes_read
from sim.golden.layers import QuantLayer
from sim.golden.requant import RequantParams
from sim.isa_model import Counters, IsaModel


def small_config(rows: int = 2, cols: int = 2, dataflow: str = "ws", **options) -> AccelConfig:
    """A configuration Amaranth's simulator runs quickly (tiny scratchpads and accumulator, a
    4-byte bus, 16 KiB of memory) that still splits GEMMs into several tiles, blocks and
    double-buffered steps; `options` override any field."""
    fields = dict(
        rows=rows,
        cols=cols,
        dataflow=dataflow,
        spad_bytes=256,
        acc_rows=16,
        bus_bytes=4,
        mem_bytes=1 << 14,
        sparse_depth=16,
    )
    return AccelConfig(**{**fields, **options})


def model_run(config: AccelConfig, image: np.ndarray, program: list[Instruction]):
    """The functional model on a copy of `image`: (final memory, `Counters`)."""
    model = IsaModel(config, image.copy())
    counters = model.run(program)
    return model.memory, counters


def assert_counters_agree(
    counters: dict, model: Counters, program: list[Instruction], config: AccelConfig
) -> None:
    """The hardware counters of a clean run of `program` agree with the functional model's
    `Counters` where it defines them (and the counters nobody models are at least sane)."""
    assert set(counters) == set(COUNTERS)
    assert counters["macs"] == model.macs
    assert counters["bytes_written"] == model.bytes_stored
    assert counters["bytes_read"] == bytes_read(program, config) >= model.bytes_loaded
    assert counters["instructions"] == len(program)
    for name in ("load_busy", "compute_busy", "store_busy"):
        assert 0 < counters[name] <= counters["cycles"], name


def assert_rtl_result(result, config: AccelConfig, image, program, read_result) -> None:
    """A ``pysim`` / ``verilator`` backend's `GemmResult` against the functional model running
    the same `program` on the same memory `image`: equal output (read from the final memory
    with `read_result`, a layout's ``result``) and counters, sane cycles."""
    memory, counters = model_run(config, image, program)
    assert result.cycle_model == "rtl"
    assert result.output.dtype == np.int32
    np.testing.assert_array_equal(result.output, read_result(memory))
    assert_counters_agree(result.counters, counters, program, config)
    assert all(type(value) is int for value in result.counters.values())
    assert result.cycles > 0
    assert result.counters["cycles"] == result.cycles  # the run stops in the first idle cycle


def random_layer(rng, n: int, k: int, relu: bool = False) -> QuantLayer:
    weight = rng.integers(-128, 128, (n, k), dtype=np.int8)
    weight[0, 0] = -128
    return QuantLayer(
        weight=weight,
        bias32=rng.integers(-(2**15), 2**15, n).astype(np.int32),
        requant=RequantParams(
            (2.0 ** rng.uniform(-14, -8, n)).astype(np.float32), int(rng.integers(-20, 20)), relu
        ),
        in_zero_point=0,
        in_scale=0.01,
        out_scale=0.02,
        weight_scales=np.full(n, 0.01, np.float32),
    )
