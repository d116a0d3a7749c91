"""Dynamic-quantized Linear layers: the numerics (`sim.golden.dynamic_quant`) against torch's own
kernels, the kernel probe (`host.dynamic`), and `host.offload` of ``quantize_dynamic`` models on
golden and verilator, bit for bit."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic as nni
from accel_checks import native_config
from torch import nn
from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

import host
from hdl.config import AccelConfig
from host.device import Device
from host.dynamic import DynamicLinear, forward_rows, host_product, quantized_engine
from host.layer_runner import OffloadWarning
from sim.golden.dynamic_quant import (
    KERNELS,
    fused_multiply_add_f32,
    quantize_input,
    raw_accumulators,
)

#: qnnpack warns (in C++, through torch's warning handler) that it ignores reduce_range.
pytestmark = pytest.mark.filterwarnings("ignore:Currently, qnnpack incorrectly ignores")

#: The engine each kernel's weights are packed under.
PACKING_ENGINE = {"fbgemm": "x86", "qnnpack": "qnnpack"}


@pytest.fixture(autouse=True)
def x86_engine():
    """Each test starts on the x86 engine, whatever an earlier test left (host.quantize sets
    the engine its model needs and keeps it)."""
    with quantized_engine("x86"):
        yield


def quantize_dynamic(model: nn.Module, per_channel: bool = False) -> nn.Module:
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = {nn.Linear: qconfig, nni.LinearReLU: qconfig}
        return torch.ao.quantization.quantize_dynamic(model, spec)


def random_case(rng: np.random.Generator, trial: int, kernel: str):
    """A random dynamic Linear (packed under the current engine) and an input batch: sizes from
    1, biases or none, per-tensor or per-channel weights, inputs of any scale and offset, some
    all >= 0."""
    k, n, m = (int(rng.integers(1, top)) for top in (160, 40, 9))
    torch.manual_seed(trial)
    module = quantize_dynamic(nn.Sequential(nn.Linear(k, n, bias=trial % 3 > 0)), trial % 2)
    x = torch.randn(m, k) * float(rng.choice([0.01, 1.0, 100.0])) + float(rng.choice([0, 3, -3]))
    return module[0], torch.relu(x) if trial % 5 == 0 else x


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_numerics_equal_torch_kernels_bit_for_bit(kernel):
    """100 random layers per kernel: our numerics give torch's float32 outputs exactly, the other
    kernel's rounding does not (so the comparison can fail)."""
    rng = np.random.default_rng(7)
    other = next(name for name in KERNELS if name != kernel)
    other_differs = 0
    for trial in range(100):
        with quantized_engine(PACKING_ENGINE[kernel]):  # a module runs under its packing engine
            module, x = random_case(rng, trial, kernel)
            layer = DynamicLinear.of(module)
            expected = module(x).detach().numpy()
        assert layer.kernel == kernel
        got = forward_rows(layer, kernel, x, host_product)
        assert np.array_equal(got, expected), f"trial {trial}: {np.abs(got - expected).max()}"
        other_differs += not np.array_equal(forward_rows(layer, other, x, host_product), expected)
    assert other_differs >= 20


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_code_past_the_reduced_range_is_kept(kernel):
    """A batch spanning [-40, 40] has zero point 64 (63.5 rounded) and its maximum lands on
    127.5: fbgemm keeps code 128 (it clamps to uint8, not to the reduced range)."""
    torch.manual_seed(1)
    x = torch.randn(24, 7) * 2
    x[0, :3] = torch.tensor([40.0, -40.0, 0.0])
    with quantized_engine(PACKING_ENGINE[kernel]):
        module = quantize_dynamic(nn.Sequential(nn.Linear(7, 20)))[0]
        expected = module(x).detach().numpy()
        layer = DynamicLinear.of(module)
    assert np.array_equal(forward_rows(layer, kernel, x, host_product), expected)


def test_the_numerics_do_not_depend_on_the_current_engine():
    """torch's qparams ignore reduce_range under the qnnpack engine; ours must not follow it:
    an fbgemm layer computed while qnnpack is current still equals torch's x86 run."""
    rng = np.random.default_rng(5)
    module, x = random_case(rng, 1, "fbgemm")
    expected = module(x).detach().numpy()
    layer = DynamicLinear.of(module)
    with quantized_engine("qnnpack"):
        assert np.array_equal(forward_rows(layer, "fbgemm", x, host_product), expected)


def test_fused_multiply_add_rounds_once():
    """Cases where float64 arithmetic then float32 rounding (double rounding) is wrong: the
    exact sum lies just past a float32 midpoint. Checked against exact rational arithmetic."""
    rng = np.random.default_rng(3)
    c = rng.uniform(1, 2, 400).astype(np.float32) * rng.choice([-1, 1], 400).astype(np.float32)
    exponent = np.floor(np.log2(np.spacing(np.abs(c)).astype(np.float64)))
    sign = rng.choice([-1.0, 1.0], 400)
    a = (1 + sign * 2.0**-15).astype(np.float32)
    b = (rng.choice([-1.0, 1.0], 400) * 2.0 ** (exponent - 1) * (1 - sign * 2.0**-15)).astype(
        np.float32
    )
    got = fused_multiply_add_f32(a, b, c)
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    exact = [
        nearest_float32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
        for x, y, z in zip(a, b, c, strict=True)
    ]
    assert np.array_equal(got, np.array(exact, np.float32))
    assert np.sum(naive != got) > 100  # the naive form is wrong on these


def nearest_float32(value: Fraction) -> np.float32:
    """`value` rounded to float32, nearest, ties to even."""
    guess = np.float32(float(value))
    around = [
        np.nextafter(guess, np.float32(-np.inf)),
        guess,
        np.nextafter(guess, np.float32(np.inf)),
    ]
    return min(around, key=lambda f: (abs(Fraction(float(f)) - value), int(f.view(np.uint32)) & 1))


def test_raw_accumulators_fold_the_zero_points():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (6, 33)).astype(np.int16)
    codes[0] = 0
    codes[1] = 255
    weight = rng.integers(-128, 128, (5, 33)).astype(np.int8)
    weight[0] = -128
    wz = rng.integers(-5, 6, 5)
    product = (codes.astype(np.int64) - 128) @ weight.astype(np.int64).T
    expected = (codes.astype(np.int64) - 77) @ (weight.astype(np.int64) - wz[:, None]).T
    got = raw_accumulators(product.astype(np.int32), codes, 77, weight, wz)
    assert got.dtype == np.int32 and np.array_equal(got, expected)


def test_quantize_input_rejects_nan():
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize_input(np.array([[1.0, np.nan]], np.float32), 0.1, 3)


class DynamicMLP(nn.Module):
    """An MLP for dynamic quantization: Linear -> ReLU -> Linear -> ReLU -> Linear."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10)
        )

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize(
    ("backend", "kernel"), [("golden", "fbgemm"), ("golden", "qnnpack"), ("verilator", "fbgemm")]
)
def test_offloaded_dynamic_mlp_equals_torch(backend, kernel):
    torch.manual_seed(0)
    with quantized_engine(PACKING_ENGINE[kernel]):
        qmodel = quantize_dynamic(DynamicMLP().eval(), per_channel=backend == "golden")
        x = torch.randn(8, 64) * 2
        x[0, :4] = torch.tensor([0.0, -1e-3, 50.0, -50.0])  # range ends, an outlier pair
        config = native_config() if backend == "verilator" else AccelConfig(4, 4)
        with Device(backend, config) as device:
            with pytest.warns(OffloadWarning, match=r"body\.1 \(ReLU\), body\.3 \(ReLU\)"):
                offloaded = host.offload(qmodel, device)
            got = offloaded(x)
            summary = offloaded.summary()
        assert torch.equal(got, qmodel(x))
    assert summary.accelerator_macs == 8 * (64 * 40 + 40 * 24 + 24 * 10)
    assert summary.cpu_macs == 0
    assert [r.kind for r in offloaded.report()] == ["dynamic linear"] * 3
    assert summary.bytes_from_device == 4 * 8 * (40 + 24 + 10)  # int32 accumulators


def test_dynamic_linear_relu_and_a_batch_of_sequences():
    """A fused LinearReLU (torch's dynamic LinearReLU) on a [batch, sequence, features] input:
    the quantization range covers the whole tensor, as torch's does."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 5)).eval()
    fused = torch.ao.quantization.fuse_modules(model, [["0", "1"]])
    qmodel = quantize_dynamic(fused)
    x = torch.randn(3, 7, 12)
    with Device("golden", AccelConfig(4, 4)) as device:
        got = host.offload(qmodel, device)(x)
    assert got.shape == (3, 7, 5) and torch.equal(got, qmodel(x))


def test_bad_inputs_name_the_layer():
    qmodel = quantize_dynamic(nn.Sequential(nn.Linear(6, 3)))
    with Device("golden", AccelConfig(4, 4)) as device:
        offloaded = host.offload(qmodel, device)
        with pytest.raises(ValueError, match=r"0: a dynamic-quantized Linear takes a float32"):
            offloaded(torch.randn(2, 6, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"0: the input has shape \[2, 5\].*6 features"):
            offloaded(torch.randn(2, 5))
        with pytest.raises(ValueError, match="NaN or infinity"):
            offloaded(torch.full((2, 6), float("inf")))


def test_a_kernel_not_modeled_is_named_not_run():
    """onednn's dynamic Linear is not modeled: the probe finds no match and offload says so."""
    with quantized_engine("onednn"):
        qmodel = quantize_dynamic(nn.Sequential(nn.Linear(6, 3)))
        assert DynamicLinear.of(qmodel[0]).kernel is None
        with (
            Device("golden", AccelConfig(4, 4)) as device,
            pytest.raises(ValueError, match=r"dynamic-quantized layers \(0\).*'onednn'"),
        ):
            host.offload(qmodel, device)


def test_float16_dynamic_linear_stays_on_the_cpu():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        half = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(nn.Linear(6, 3)), {nn.Linear}, dtype=torch.float16
        )
    model = nn.Sequential(quantize_dynamic(nn.Sequential(nn.Linear(4, 6))), half)
    x = torch.randn(2, 4)
    with Device("golden", AccelConfig(4, 4)) as device:
        with pytest.warns(OffloadWarning, match=r"1\.0 \(Linear\)"):
            offloaded = host.offload(model, device)
        assert torch.equal(offloaded(x), model(x))
        assert offloaded.summary().cpu_macs == 2 * 6 * 3
