"""A quantized ConvTranspose2d as a convolution over its zero-inserted input equals torch's.

torch's own quantized ConvTranspose2d (qnnpack and fbgemm) is the oracle: seeded random
geometries (stride, padding up to dilation * (kernel - 1), output padding, dilation, groups),
per-tensor int8 weights over the whole range, with and without bias, odd zero points.
"""

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
from torch_oracle import quantized_input, random_scale

from host.quant import InputQParams, extract_layer, transpose_geometry
from sim.golden.conv_transpose import TransposeGeometry, flipped_weight, zero_insert
from sim.golden.layers import conv2d_forward
from sim.golden.zeropoint import dequantize_bias, quint8_to_int8


@pytest.fixture(params=["qnnpack", "fbgemm"])
def engine(request):
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = request.param
    yield request.param
    torch.backends.quantized.engine = previous


def random_transposed_conv(rng, engine):
    groups = int(rng.choice([1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    kernel = tuple(int(v) for v in rng.integers(1, 5, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    output_padding = tuple(
        int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
    )
    while True:  # padding and input size whose output has rows and columns (torch needs some)
        reach = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        padding = tuple(int(rng.integers(0, r + 1)) for r in reach)
        size = tuple(int(v) for v in rng.integers(1, 7, 2))
        out = [
            (n - 1) * s - 2 * p + r + o + 1
            for n, s, p, r, o in zip(size, stride, padding, reach, output_padding, strict=True)
        ]
        if min(out) >= 1:
            break
    module = nnq.ConvTranspose2d(
        c_in, c_out, kernel, stride, padding, output_padding, groups, True, dilation
    )
    values = rng.integers(-128, 128, (c_in, c_out // groups, *kernel))
    values.flat[0], values.flat[-1] = -128, 127
    weight_scale = random_scale(rng, False, 1e-3, 2e-2)
    weight = torch._make_per_tensor_quantized_tensor(
        torch.from_numpy(values.astype(np.int8)), weight_scale, 0
    )
    ties = bool(rng.random() < 0.3)  # power-of-two scales: exact .5 ties in requantization
    high = 127 if engine == "fbgemm" else 255
    x_scale, x_zero = random_scale(rng, ties, 1e-3, 5e-2), int(rng.integers(0, high + 1)) | 1
    # fbgemm adds a float bias after requantizing, so agreement needs the bias pre-rounded as
    # host.quantize does (DESIGN.md §3); qnnpack rounds any float bias as the golden does.
    bias = rng.normal(0, 0.5, c_out).astype(np.float32)
    if engine == "fbgemm":
        bias_q = np.rint(bias / np.float32(np.float32(x_scale) * np.float32(weight_scale)))
        bias = dequantize_bias(bias_q.astype(np.int64), x_scale, np.full(c_out, weight_scale))
    module.set_weight_bias(weight, torch.from_numpy(bias) if rng.random() < 0.7 else None)
    module.scale = random_scale(rng, ties, 1e-2, 1.0)
    module.zero_point = int(rng.integers(0, 256)) | 1
    shape = (int(rng.integers(1, 4)), c_in, *size)
    return module, quantized_input(rng, shape, x_scale, min(x_zero, high), high)


@pytest.mark.parametrize("seed", range(16))
def test_conv_transpose_by_zero_insertion_equals_torch(engine, seed):
    module, qx = random_transposed_conv(np.random.default_rng(seed), engine)
    expected = quint8_to_int8(module(qx).int_repr().numpy())
    layer = extract_layer(module, InputQParams(qx.q_scale(), qx.q_zero_point()))
    x = quint8_to_int8(qx.int_repr().numpy())
    padded = zero_insert(x, transpose_geometry(module), layer.in_zero_point)
    np.testing.assert_array_equal(conv2d_forward(padded, layer), expected)


def test_flipped_weight_swaps_channels_per_group_and_flips_the_kernel():
    weight = np.arange(2 * 3 * 2 * 2, dtype=np.int8).reshape(2, 3, 2, 2)  # C_in 2, C_out/g 3
    rows = flipped_weight(weight, groups=1)
    assert rows.shape == (3, 2 * 4)
    np.testing.assert_array_equal(rows[1, :4], weight[0, 1, ::-1, ::-1].ravel())
    np.testing.assert_array_equal(rows[1, 4:], weight[1, 1, ::-1, ::-1].ravel())
    grouped = flipped_weight(weight, groups=2)  # each input channel its own group
    np.testing.assert_array_equal(grouped[3], weight[1, 0, ::-1, ::-1].ravel())


def test_unsupported_geometries_are_named():
    with pytest.raises(ValueError, match=r"padding \(3, 0\) is more than dilation \* \(kernel"):
        TransposeGeometry(in_channels=1, kernel=(3, 3), padding=(3, 0))
    with pytest.raises(ValueError, match=r"output_padding \(2, 0\) must be below the stride"):
        TransposeGeometry(in_channels=1, kernel=(3, 3), stride=(2, 2), output_padding=(2, 0))
    geometry = TransposeGeometry(in_channels=2, kernel=(3, 3))
    with pytest.raises(ValueError, match=r"x has 3 channels, the layer expects 2"):
        zero_insert(np.zeros((1, 3, 4, 4), np.int8), geometry, 0)
