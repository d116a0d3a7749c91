"""The backend interface: get_backend and the golden backend's GemmResult."""

import numpy as np
import pytest

from hdl.config import AccelConfig
from sim.backends import GemmResult, get_backend
from sim.cycles import array_cycles, utilization


def test_golden_backend_gemm():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (9, 20), dtype=np.int8)
    b = rng.integers(-128, 128, (20, 3), dtype=np.int8)
    result = get_backend("golden", AccelConfig(rows=4, cols=4)).gemm(a, b)
    assert isinstance(result, GemmResult)
    assert result.output.dtype == np.int32
    np.testing.assert_array_equal(result.output, a.astype(np.int64) @ b.astype(np.int64))
    assert result.counters["macs"] == 9 * 3 * 20
    assert result.cycle_model == "analytical"
    assert result.cycles == array_cycles(9, 3, 20, AccelConfig(rows=4, cols=4))


def test_unknown_backend_lists_available_ones():
    with pytest.raises(
        ValueError, match=r"^unknown backend 'fpga'; available: 'golden', 'pysim', 'verilator'$"
    ):
        get_backend("fpga")


def test_backend_refuses_non_config():
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not <class 'dict'>$"):
        get_backend("golden", {"rows": 4})


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_pysim_backend_agrees_with_golden(dataflow):
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (5, 7), dtype=np.int8)
    b = rng.integers(-128, 128, (7, 3), dtype=np.int8)
    config = AccelConfig(rows=2, cols=2, dataflow=dataflow)
    rtl = get_backend("pysim", config).gemm(a, b)
    model = get_backend("golden", config).gemm(a, b)
    np.testing.assert_array_equal(rtl.output, model.output)
    assert rtl.cycles == model.cycles and rtl.cycle_model == "rtl"
    assert rtl.counters["macs"] == model.counters["macs"] == 105


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_verilator_backend_agrees_with_golden(dataflow):
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (13, 37), dtype=np.int8)
    b = rng.integers(-128, 128, (37, 11), dtype=np.int8)
    config = AccelConfig(rows=4, cols=4, dataflow=dataflow)
    rtl = get_backend("verilator", config).gemm(a, b)
    np.testing.assert_array_equal(rtl.output, get_backend("golden", config).gemm(a, b).output)
    assert rtl.cycles == array_cycles(13, 11, 37, config) and rtl.cycle_model == "rtl"


def test_256_cubed_on_16x16_ws_reaches_90_percent_utilization():
    """Issue acceptance: fill and drain counted, back-to-back weight tiles overlap."""
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (256, 256), dtype=np.int8)
    b = rng.integers(-128, 128, (256, 256), dtype=np.int8)
    config = AccelConfig(rows=16, cols=16, dataflow="ws")
    result = get_backend("verilator", config).gemm(a, b)
    np.testing.assert_array_equal(result.output, get_backend("golden", config).gemm(a, b).output)
    assert result.cycles == array_cycles(256, 256, 256, config) == 65_585
    assert utilization(256, 256, 256, result.cycles, config) >= 0.90
