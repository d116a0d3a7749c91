"""Golden quantized Linear / Conv2d equal torch.ao's int8 kernels bit for bit.

torch is the oracle: layers are built directly with chosen integer parameters (random shapes with
K up to 2048, per-channel weights over all of int8, with and without bias and ReLU, odd zero
points, power-of-two scales that force exact ties) and run under the qnnpack and x86 engines.
"""

import numpy as np
import pytest
import torch
from torch_oracle import (
    exact_bias,
    make_conv,
    make_linear,
    per_channel_weight,
    quantized_input,
    random_scale,
)

from host.quant import InputQParams, extract_layer
from sim.golden.layers import conv2d_forward, linear_forward
from sim.golden.zeropoint import quint8_to_int8

ENGINES = ["qnnpack", "x86"]
#: The torch engine each case runs. "x86" is fbgemm's arithmetic (7-bit activations), run on
#: torch's "fbgemm" engine: torch's "x86" engine sends a convolution to oneDNN on CPUs with
#: AVX512-VNNI, which adds the output zero point before rounding and so differs on exact .5
#: ties (docs/numeric-spec.md).
TORCH_ENGINE = {"qnnpack": "qnnpack", "x86": "fbgemm"}


@pytest.fixture(params=ENGINES)
def engine(request):
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = TORCH_ENGINE[request.param]
    yield request.param
    torch.backends.quantized.engine = previous


def golden_vs_torch(module, qx, forward):
    layer = extract_layer(module, InputQParams(qx.q_scale(), qx.q_zero_point()))
    expected = quint8_to_int8(module(qx).int_repr().numpy())
    got = forward(quint8_to_int8(qx.int_repr().numpy()), layer)
    return got, expected


@pytest.mark.parametrize("seed", range(12))
def test_linear_matches_torch(engine, seed):
    rng = np.random.default_rng(seed)
    k = (
        int(rng.choice([1, 2, 3, 7, 64, 255, 1000, 2048]))
        if seed < 8
        else int(rng.integers(1, 2049))
    )
    n, m = int(rng.integers(1, 48)), int(rng.integers(1, 24))
    power_of_two = seed % 2 == 0
    in_scale = random_scale(rng, power_of_two, 2**-8, 2**-2)
    in_zero_point = int(rng.integers(0, 128 if engine == "x86" else 256)) | 1
    weight = per_channel_weight(rng, (n, k), power_of_two)
    bias = exact_bias(rng, in_scale, weight) if seed % 3 else None
    out_scale = random_scale(rng, power_of_two, 2**-4, 2**2)
    module = make_linear(k, n, weight, bias, out_scale, int(rng.integers(0, 256)) | 1, seed % 4 < 2)
    high = 127 if engine == "x86" else 255
    qx = quantized_input(rng, (m, k), in_scale, in_zero_point, high)
    got, expected = golden_vs_torch(module, qx, linear_forward)
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected)) > 1 or expected.size == 1


@pytest.mark.parametrize("seed", range(8))
def test_conv2d_matches_torch(engine, seed):
    rng = np.random.default_rng(100 + seed)
    in_channels, out_channels = int(rng.integers(1, 9)), int(rng.integers(1, 17))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    power_of_two = seed % 2 == 0
    in_scale = random_scale(rng, power_of_two, 2**-8, 2**-2)
    in_zero_point = int(rng.integers(0, 128 if engine == "x86" else 256)) | 1
    weight = per_channel_weight(rng, (out_channels, in_channels, *kernel), power_of_two)
    bias = exact_bias(rng, in_scale, weight) if seed % 3 else None
    out_scale = random_scale(rng, power_of_two, 2**-4, 2**2)
    module = make_conv(
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
        dilation,
        weight,
        bias,
        out_scale,
        int(rng.integers(0, 256)) | 1,
        seed % 4 < 2,
    )
    high = 127 if engine == "x86" else 255
    qx = quantized_input(rng, (2, in_channels, 9, 11), in_scale, in_zero_point, high)
    got, expected = golden_vs_torch(module, qx, conv2d_forward)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_golden_detects_a_wrong_zero_point(engine):
    """The comparison can fail: a layer extracted with a shifted input zero point disagrees."""
    rng = np.random.default_rng(7)
    weight = per_channel_weight(rng, (16, 64), False)
    module = make_linear(64, 16, weight, None, 0.05, 128, False)
    qx = quantized_input(rng, (8, 64), 0.02, 60, 127)
    layer = extract_layer(module, InputQParams(qx.q_scale(), 61))
    got = linear_forward(quint8_to_int8(qx.int_repr().numpy()), layer)
    assert not np.array_equal(got, quint8_to_int8(module(qx).int_repr().numpy()))
