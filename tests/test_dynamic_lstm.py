"""Dynamic-quantized LSTMs (`host.dynamic_lstm`) offloaded: outputs and final states equal to
torch's ``quantized_lstm`` bit for bit, on both kernels, golden and verilator."""

from __future__ import annotations

import warnings

import pytest
import torch
from accel_checks import native_config
from test_dynamic_quant import PACKING_ENGINE, x86_engine  # noqa: F401 - autouse fixture
from torch import nn

import host
from hdl.config import AccelConfig
from host.device import Device
from host.dynamic import quantized_engine
from host.dynamic_lstm import DynamicLSTM
from host.layer_runner import OffloadWarning
from host.macs import operation_macs

pytestmark = pytest.mark.filterwarnings("ignore:Currently, qnnpack incorrectly ignores")


def quantize_lstm(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear})


class Tagger(nn.Module):
    """A sequence tagger: a 2-layer bidirectional LSTM (batch first) and a Linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


@pytest.mark.parametrize("kernel", ["fbgemm", "qnnpack"])
@pytest.mark.parametrize(
    ("layers", "bidirectional", "batch_first"),
    [(1, False, False), (2, True, False), (2, False, True)],
)
def test_lstm_equals_torch(kernel, layers, bidirectional, batch_first):
    torch.manual_seed(layers + 2 * bidirectional + 4 * batch_first)
    with quantized_engine(PACKING_ENGINE[kernel]):
        lstm = nn.LSTM(
            7, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first
        )
        qmodel = quantize_lstm(nn.Sequential(lstm))
        x = torch.randn(4, 6, 7) * 2
        x[0, 0, :3] = torch.tensor([40.0, -40.0, 0.0])  # an outlier pair stretches the range
        with Device("golden", AccelConfig(4, 4)) as device:
            offloaded = host.offload(qmodel, device)
            (out, (h, c)), (ref, (h_ref, c_ref)) = offloaded(x), qmodel(x)
            summary = offloaded.summary()
        assert DynamicLSTM.of(qmodel[0]).kernel == kernel
    assert torch.equal(out, ref) and torch.equal(h, h_ref) and torch.equal(c, c_ref)
    assert summary.cpu_macs == 0
    assert summary.accelerator_macs == operation_macs(qmodel[0], (x,), ref)


def test_tagger_on_verilator_with_its_report():
    torch.manual_seed(0)
    qmodel = quantize_lstm(Tagger().eval())
    x = torch.randn(2, 3, 8)
    with Device("verilator", native_config()) as device:
        with pytest.warns(OffloadWarning, match=r"getitem"):
            offloaded = host.offload(qmodel, device)
        got = offloaded(x)
        report = offloaded.report()
    assert torch.equal(got, qmodel(x))
    # per layer and direction: one input projection (T*B rows) then T hidden projections
    names = [row.name for row in report]
    assert names.count("lstm.l0.ih") == 1 and names.count("lstm.l0_reverse.hh") == 3
    assert {row.cycle_model for row in report} == {"rtl"}
    assert len(report) == 2 * 2 * (1 + 3) + 1


def test_initial_state_and_several_inputs():
    torch.manual_seed(2)
    qmodel = quantize_lstm(nn.Sequential(nn.LSTM(5, 4)))
    x, h0, c0 = torch.randn(6, 2, 5), torch.randn(1, 2, 4), torch.randn(1, 2, 4)

    class WithState(nn.Module):
        def __init__(self, lstm):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, h, c):
            return self.lstm(x, (h, c))

    model = WithState(qmodel[0])
    with Device("golden", AccelConfig(4, 4)) as device:
        offloaded = host.offload(model, device)
        out, (h, c) = offloaded(x, h0, c0)
        with pytest.raises(TypeError, match=r"takes 3 inputs \(x, h, c\), not 1"):
            offloaded(x)
    ref, (h_ref, c_ref) = model(x, h0, c0)
    assert out.shape == (6, 2, 4)
    assert torch.equal(out, ref) and torch.equal(h, h_ref) and torch.equal(c, c_ref)


def test_bad_input_names_the_lstm():
    qmodel = quantize_lstm(nn.Sequential(nn.LSTM(5, 4)))
    with Device("golden", AccelConfig(4, 4)) as device:
        offloaded = host.offload(qmodel, device)
        with pytest.raises(ValueError, match=r"0: the input has 3 features, the LSTM 5"):
            offloaded(torch.randn(2, 1, 3))
        with pytest.raises(ValueError, match=r"0: a dynamic LSTM takes a float32"):
            offloaded(torch.randn(2, 1, 5, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"0: a dynamic LSTM takes a float32 .*\[2, 5\]"):
            offloaded(torch.randn(2, 5))
