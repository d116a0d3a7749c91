"""host.offload: torch.ao quantized models with their layers on the accelerator, bit-exact."""

import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
from accel_checks import native_config
from torch import nn

from hdl.config import AccelConfig
from host.device import Device
from host.engine_choice import padded_columns
from host.offload import OffloadWarning, offload
from host.quant import quantize


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))


def cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 10),
    )


class AttentionLike(nn.Module):
    """Quantized Linear layers between stubs, float softmax and residual add between them."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.quant_in, self.dequant_q = tq.QuantStub(), tq.DeQuantStub()
        self.query = nn.Linear(8, 8)
        self.quant_mid, self.dequant_out = tq.QuantStub(), tq.DeQuantStub()
        self.out = nn.Linear(8, 8)

    def forward(self, x):
        x = x.flatten(1).reshape(-1, 8)
        q = self.dequant_q(self.query(self.quant_in(x)))
        mixed = torch.softmax(q, dim=-1) + x
        return self.dequant_out(self.out(self.quant_mid(mixed)))


def digits_like(seed: int, batch: int) -> torch.Tensor:
    return torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def quantized(model: nn.Module, engine: str = "qnnpack") -> nn.Module:
    return quantize(model, digits_like(0, 64), engine=engine)


def assert_exact(offloaded, qmodel, seeds=(1, 2, 3), batch=17):
    for seed in seeds:
        x = digits_like(seed, batch) * 1.2 - 0.1  # some inputs outside the calibrated range
        assert torch.equal(offloaded(x), qmodel(x))


@pytest.mark.parametrize("backend", ["golden", "verilator"])
@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_offloaded_models_equal_torch_bit_for_bit(make, backend):
    qmodel = quantized(make())
    with Device(backend, native_config()) as device:
        offloaded = offload(qmodel, device)
        assert_exact(offloaded, qmodel)
        report = offloaded.report()
    layers = [m for m in qmodel.modules() if isinstance(m, nnq.Linear | nnq.Conv2d)]
    assert len(report) == len(layers)
    for entry in report:
        assert entry.cycles > 0 and 0 < entry.utilization <= 1
        # int8 out of the dense array's requantizer; int32 accumulators out of the sparse engine,
        # whose X^T columns (M) are padded to whole bus words
        written = entry.m * entry.n
        if entry.engine == "sparse":
            written = 4 * padded_columns(entry.m, device.config) * entry.n
        assert entry.bytes_read > 0 and entry.bytes_written == written
        assert entry.modeled_us == entry.cycles / device.config.clock_mhz
        assert entry.cycle_model == ("rtl" if backend == "verilator" else "perf")


def test_output_stationary_and_x86_models_are_exact_too():
    qmodel = quantized(mlp(), engine="x86")
    with Device("golden", AccelConfig(rows=8, cols=8, dataflow="os")) as device:
        assert_exact(offload(qmodel, device), qmodel)


def test_torch_own_flow_is_exact():
    """A model quantized by torch.ao's prepare/convert (qnnpack), not host.quantize."""
    torch.backends.quantized.engine = "qnnpack"
    model = tq.QuantWrapper(mlp()).eval()
    model.qconfig = tq.get_default_qconfig("qnnpack")
    prepared = tq.prepare(model)
    prepared(digits_like(0, 64))
    qmodel = tq.convert(prepared)
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        # Not fused, the ReLU is a quantized torch op of its own: the CPU runs it, named.
        with pytest.warns(
            OffloadWarning, match=r"CPU, not on the accelerator: module\.2 \(ReLU\)$"
        ):
            offloaded = offload(qmodel, device)
        assert_exact(offloaded, qmodel)


def test_float_operations_run_on_the_cpu_with_a_warning_naming_them():
    qmodel = quantized(AttentionLike())
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.warns(OffloadWarning) as caught:
            offloaded = offload(qmodel, device)
        message = str(caught[0].message)
        for name in ("softmax (call_function)", "add (call_function)", "flatten (call_method)"):
            assert name in message
        assert "quant_in" not in message  # the float boundary is the host's job, no warning
        assert_exact(offloaded, qmodel)
        assert [entry.name for entry in offloaded.report()] == ["query", "out"]


def test_device_memory_is_freed_after_each_forward():
    qmodel = quantized(cnn())
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        offloaded = offload(qmodel, device)
        offloaded(digits_like(1, 5))
        free = list(device._pool._free)
        offloaded(digits_like(2, 5))
        assert device._pool._free == free  # only the resident weights stay allocated


def test_bad_models_and_inputs_are_refused_with_clear_errors():
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with pytest.raises(ValueError, match=r"holds no quantized Linear or Conv2d layer"):
            offload(mlp(), device)
        with pytest.raises(TypeError, match=r"^qmodel must be a torch.nn.Module"):
            offload("model", device)
        with pytest.raises(TypeError, match=r"^device must be a host.device.Device"):
            offload(quantized(mlp()), "golden")

        class Branchy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nnq.Linear(4, 4)

            def forward(self, x):
                return self.fc(x) if x.sum() > 0 else x

        with pytest.raises(ValueError, match=r"^torch.fx cannot trace Branchy"):
            offload(Branchy(), device)
        offloaded = offload(quantized(mlp()), device)
        with pytest.raises(ValueError, match=r"^module.1: the input has 63 features"):
            offloaded(torch.rand(2, 63))


def test_a_float_input_to_a_quantized_layer_is_named():
    qmodel = quantized(mlp())
    bare = qmodel.module  # without the QuantWrapper's Quantize stub
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffloadWarning)
            offloaded = offload(bare, device)
        with pytest.raises(ValueError, match=r"^1: the quantized layer received a float tensor"):
            offloaded(torch.rand(2, 64))
    assert np.all(np.isfinite(qmodel(torch.rand(2, 64)).numpy()))


@pytest.mark.parametrize("backend", ["golden", "verilator"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_reference_models_are_exact_on_the_16x16_accelerator(name, backend):
    """Issue 6's acceptance: the three reference models, bit-exact on both backends (the whole
    test split runs in tests/test_run.py; here 48 images)."""
    import models

    model, data, _ = models.load(name)
    qmodel = quantize(model, data.calibration_x)
    images = data.test_x[:48]
    with Device(backend, AccelConfig()) as device:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffloadWarning)  # the transformer's float ops
            offloaded = offload(qmodel, device)
        assert torch.equal(offloaded(images), qmodel(images))
        model_kind = "rtl" if backend == "verilator" else "perf"
        assert all(entry.cycle_model == model_kind for entry in offloaded.report())
