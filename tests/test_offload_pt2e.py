"""host.offload of PT2E-quantized models (torch.export + torchao's prepare/convert_pt2e).

torch runs a converted PT2E model in float32 (dequantize, float conv/linear, quantize); the
accelerator in integers. The outputs agree except where float32 rounding or the bias's rounding
to int32 moves a value across a rounding boundary (host/pt2e.py), so these tests bound the
disagreement (measured on this net: 484 of 500 outputs equal, the rest one step apart; each
layer alone 0.05-0.1 % of its outputs one step apart, mostly from the bias rounded to the int32
accumulator scale as torch's own integer kernels round it) and check the lowering itself exactly:
which layers reach the accelerator, the MACs, the warning naming what stays on the CPU.
"""

import warnings

import pytest
import torch
from accel_checks import native_config
from torch import nn

from hdl.config import AccelConfig
from host.device import Device
from host.offload import OffloadWarning, offload
from host.pt2e import OffloadedPT2E, is_pt2e, offload_pt2e

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchao's notices about its CUDA kernels and XNNPACK's move
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )
    from torchao.testing.pt2e._xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )


class SeparableNet(nn.Module):
    """Conv, depthwise conv, pointwise conv, a residual add, a Conv1d view and a Linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 8, 1)
        self.temporal = nn.Conv1d(8, 6, 3, stride=2)
        self.head = nn.Linear(6 * 31, 5)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = y + torch.relu(self.pointwise(torch.relu(self.depthwise(y))))
        y = torch.relu(self.temporal(y.flatten(2)))  # [B, 8, 64] as a sequence
        return self.head(y.flatten(1))


def quantizer(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "XNNPACKQuantizer is deprecated!"
        if name == "xnnpack":
            return XNNPACKQuantizer().set_global(
                get_symmetric_quantization_config(is_per_channel=True)
            )
        return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())


def converted(name: str) -> torch.fx.GraphModule:
    model = SeparableNet().eval()
    calibration = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(model, (calibration,), dynamic_shapes=({0: batch},))
    prepared = prepare_pt2e(exported.module(), quantizer(name))
    prepared(calibration)
    return convert_pt2e(prepared)


@pytest.mark.parametrize("backend", ["golden", "verilator"])
def test_xnnpack_pt2e_model_runs_its_layers_on_the_accelerator(backend):
    model = converted("xnnpack")
    assert is_pt2e(model)
    # the verilator run shares the 4x4 test build (64 KiB of memory: batches of 4)
    config, batch = (native_config(), 4) if backend == "verilator" else (AccelConfig(4, 4), 20)
    with Device(backend, config) as device:
        with pytest.warns(OffloadWarning, match=r"add\.Tensor") as caught:
            offloaded = offload(model, device)
        assert isinstance(offloaded, OffloadedPT2E)
        equal = total = 0
        for seed in range(1, 6):
            x = torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
            ours, theirs = offloaded(x), model(x)
            step = (ours - theirs).abs()
            assert float(step.max()) <= 1.01 * _output_scale(model)  # at most one step
            equal, total = equal + int((ours == theirs).sum()), total + ours.numel()
        summary, report = offloaded.summary(), offloaded.report()
    assert equal >= 0.95 * total  # measured: 484 of 500
    assert "conv" not in str(caught[0].message) and "linear" not in str(caught[0].message)
    assert summary.cpu_macs == 0 and summary.accelerator_share == 1.0
    kinds = [row.kind for row in report]
    assert kinds[0] == "conv2d" and kinds[-2:] == ["conv1d", "linear"]
    assert sum("chunk" in kind for kind in kinds) == 2  # 8 depthwise groups on 4 columns
    expected = batch * (64 * 8 * 27 + 64 * 8 * 9 + 64 * 8 * 8 + 31 * 6 * 24 + 5 * 186)
    assert summary.accelerator_macs == expected


def test_x86_pt2e_model_runs_its_float_output_layers_on_the_accelerator_too():
    """X86InductorQuantizer leaves a layer's output float when no quantized op consumes it (the
    head, convs before the residual add): those run as int32 GEMMs with a float epilogue on the
    host, so every conv and linear is on the accelerator."""
    model = converted("x86")
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.warns(OffloadWarning) as caught:
            offloaded = offload_pt2e(model, device)
        x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            ours, theirs = offloaded(x), model(x)
        summary, report = offloaded.summary(), offloaded.report()
    message = str(caught[0].message)
    # the quantizer leaves the Conv1d unquantized (float input): the one layer torch runs
    assert "conv1d.default (its input is not dequantized from int8)" in message
    assert "conv2d" not in message and "linear" not in message
    assert summary.cpu_macs == 6 * 31 * 6 * 24  # the Conv1d's
    assert any(row.kind == "linear, float out" for row in report)
    # float32 rounding apart (measured: 1.7e-8 of outputs up to 0.124)
    assert float((ours - theirs).abs().max()) < 1e-5 * float(theirs.abs().max())


def test_a_model_without_pt2e_layers_is_refused_with_the_reason():
    exported = torch.export.export(nn.Linear(4, 2).eval(), (torch.rand(3, 4),)).module()
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.raises(ValueError, match=r"holds no PT2E-quantized Linear or Conv layer"):
            offload_pt2e(exported, device)
        with pytest.raises(TypeError, match=r"model must be a torch.fx.GraphModule"):
            offload_pt2e(nn.Linear(4, 2), device)


def _output_scale(model: torch.fx.GraphModule) -> float:
    """The scale of the model's last dequantize (its output's quantization step)."""
    dequantize = [n for n in model.graph.nodes if "dequantize_per_tensor" in str(n.target)]
    return float(dequantize[-1].args[1])


def test_a_transformer_encoder_layer_runs_its_linear_layers_on_the_accelerator():
    """torch.fx cannot trace nn.TransformerEncoderLayer; torch.export can, and PT2E quantizes
    its four Linear layers (the attention's in/out projections and the feed-forward pair)."""
    torch.manual_seed(2)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(4))
    prepared = prepare_pt2e(torch.export.export(layer.eval(), (x,)).module(), quantizer("xnnpack"))
    prepared(x)
    model = convert_pt2e(prepared)
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.warns(OffloadWarning, match=r"scaled_dot_product_attention"):
            offloaded = offload(model, device)
        with torch.no_grad():
            ours, theirs = offloaded(x), model(x)
        summary, report = offloaded.summary(), offloaded.report()
    assert [(row.m, row.n, row.k) for row in report] == [
        (15, 48, 16),  # q, k, v projections
        (15, 16, 16),  # attention output projection
        (15, 32, 16),  # feed-forward
        (15, 16, 32),
    ]
    # attention scores and their weighted sum stay on the CPU: 3 x 2 heads x 5 x 5 x (8 + 8)
    assert summary.cpu_macs_by_operation == {
        "aten._scaled_dot_product_flash_attention_for_cpu": 3 * 2 * 5 * 5 * 16
    }
    assert float((ours - theirs).abs().max()) <= 0.05 * float(theirs.abs().max())
