"""MACs on the accelerator vs the CPU and host<->device bytes of an offloaded model.

`host.macs` is checked against torch's own FLOP counter (``torch.utils.flop_counter``: 2 FLOPs
per MAC), `OffloadedModel.summary` against the GEMMs and transfers a model implies.
"""

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hdl.config import AccelConfig
from host.device import Device
from host.macs import operation_macs
from host.offload import OffloadWarning, offload
from host.quant import layer_params
from sim.golden.param_records import pack_param_records


def torch_macs(operation, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        operation(*args)
    return counter.get_total_flops() // 2


CASES = {
    "linear": (nn.Linear(5, 3), (torch.rand(4, 5),)),
    "linear 3-d": (nn.Linear(6, 2), (torch.rand(2, 3, 6),)),
    "conv2d grouped": (nn.Conv2d(4, 6, 3, groups=2, stride=2), (torch.rand(2, 4, 9, 9),)),
    "conv1d": (nn.Conv1d(3, 5, 4, padding=1), (torch.rand(2, 3, 11),)),
    "conv transpose": (nn.ConvTranspose2d(4, 6, 3, groups=2, stride=2), (torch.rand(1, 4, 5, 5),)),
    "bmm": (torch.bmm, (torch.rand(2, 3, 4), torch.rand(2, 4, 5))),
    "matmul": (torch.matmul, (torch.rand(2, 3, 4), torch.rand(4, 5))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operation_macs_equal_torchs_flop_counter(case):
    operation, args = CASES[case]
    with torch.no_grad():
        output = operation(*args)
        assert operation_macs(operation, args, output) == torch_macs(operation, *args) > 0


def test_recurrent_macs_count_the_gates_matmuls():
    lstm = nn.LSTM(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = torch.rand(5, 2, 3)  # 5 steps, batch 2
    with torch.no_grad():
        output = lstm(x)
    # layer 0: 2 directions x 10 step-rows x 4 gates x 4 hidden x (3 + 4); layer 1: inputs 8
    assert operation_macs(lstm, (x,), output) == 2 * 10 * 16 * 7 + 2 * 10 * 16 * 12


def test_elementwise_and_pooling_count_no_macs():
    x = torch.rand(2, 3, 4, 4)
    assert operation_macs(nn.ReLU(), (x,), torch.relu(x)) == 0
    assert operation_macs(nn.MaxPool2d(2), (x,), nn.MaxPool2d(2)(x)) == 0
    assert operation_macs(torch.add, (x, x), x + x) == 0


class ConvThenFloatLinear(nn.Module):
    """A quantized conv on the accelerator, then a Linear the model keeps float (CPU)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv = nn.Conv2d(2, 4, 3)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.dequant(self.conv(self.quant(x))).flatten(1))


def quantized_conv_then_float_linear() -> nn.Module:
    model = ConvThenFloatLinear().eval()
    model.qconfig = tq.get_default_qconfig("qnnpack")
    model.head.qconfig = None
    torch.backends.quantized.engine = "qnnpack"
    prepared = tq.prepare(model)
    prepared(torch.rand(8, 2, 6, 6))
    return tq.convert(prepared)


def test_summary_counts_macs_on_each_side_and_the_bytes_moved():
    qmodel = quantized_conv_then_float_linear()
    x = torch.rand(3, 2, 6, 6)
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.warns(OffloadWarning, match=r"head \(Linear\)"):
            offloaded = offload(qmodel, device)
        summaries = []
        for _ in range(2):
            assert torch.equal(offloaded(x), qmodel(x))
            summaries.append(offloaded.summary())
    m, k, n = 3 * 4 * 4, 2 * 9, 4  # im2col patches x weight
    conv_macs = torch_macs(nn.Conv2d(2, 4, 3), x)
    head_macs = torch_macs(nn.Linear(64, 3), torch.rand(3, 64))
    layer = layer_params(qmodel, x)["conv"]
    records = pack_param_records(layer.bias32, layer.requant).size
    first, second = summaries
    for summary in summaries:
        assert summary.accelerator_macs == m * n * k == conv_macs
        assert summary.cpu_macs == head_macs
        assert summary.cpu_macs_by_operation == {"head (Linear)": head_macs}
        assert summary.accelerator_share == pytest.approx(conv_macs / (conv_macs + head_macs))
        assert summary.bytes_from_device == m * n
        assert summary.accelerator_cycles > 0
    assert first.bytes_to_device == m * k + k * n + records  # weights and records: first use
    assert second.bytes_to_device == m * k
