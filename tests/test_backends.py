"""The backend interface: get_backend and the golden backend's GemmResult."""

import numpy as np
import pytest

from hdl.config import AccelConfig
from sim.backends import GemmResult, get_backend
from sim.cycles import array_cycles


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
    with pytest.raises(ValueError, match=r"^unknown backend 'fpga'; available: 'golden', 'pysim'$"):
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
