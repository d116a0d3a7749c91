"""Golden quantized Linear / Conv2d equal torch.ao's int8 kernels bit for bit.

torch is the oracle: layers are built directly with chosen integer parameters (random shapes with
K up to 2048, per-channel weights over all of int8, with and without bias and ReLU, odd zero
points, power-of-two scales that force exact ties) and run under the qnnpack and x86 engines.
"""

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from torch_oracle import (
    exact_bias,
    make_conv,
    make_linear,
    per_channel_weight,
    quantized_input,
    random_scale,
)

from host.quant import InputQParams, extract_layer
from sim.golden.conv import col2im_output
from sim.golden.grouped_conv import group_chunks, groups_per_chunk
from sim.golden.layers import conv2d_forward, conv_patches, linear_forward
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


@pytest.mark.parametrize("seed", range(8))
def test_grouped_and_depthwise_conv2d_match_torch_and_every_chunking(engine, seed):
    """groups in {2, 3, 4, C} (depthwise); every chunking of the groups into block-diagonal
    ungrouped convs gives torch's output too."""
    rng = np.random.default_rng(200 + seed)
    groups = int(rng.choice([2, 3, 4, 6]))
    in_channels = groups * int(rng.integers(1, 4))
    out_channels = groups * (1 if seed % 2 else int(rng.integers(1, 4)))  # odd: depthwise-like
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride, padding = (int(rng.integers(1, 3)),) * 2, (int(rng.integers(0, 2)),) * 2
    dilation = (1, int(rng.integers(1, 3)))
    in_scale = random_scale(rng, seed % 2 == 0, 2**-8, 2**-2)
    in_zero_point = int(rng.integers(0, 128 if engine == "x86" else 256)) | 1
    weight = per_channel_weight(rng, (out_channels, in_channels // groups, *kernel), False)
    bias = exact_bias(rng, in_scale, weight) if seed % 3 else None
    module = make_conv(
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
        dilation,
        weight,
        bias,
        random_scale(rng, False, 2**-4, 2**2),
        int(rng.integers(0, 256)) | 1,
        seed % 4 < 2,
        groups=groups,
    )
    high = 127 if engine == "x86" else 255
    qx = quantized_input(rng, (2, in_channels, 7, 9), in_scale, in_zero_point, high)
    got, expected = golden_vs_torch(module, qx, conv2d_forward)
    np.testing.assert_array_equal(got, expected)
    layer = extract_layer(module, InputQParams(qx.q_scale(), qx.q_zero_point()))
    x = quint8_to_int8(qx.int_repr().numpy())
    for per_chunk in range(1, groups + 1):
        rows = []
        for chunk in group_chunks(layer, per_chunk):
            part = x[:, chunk.in_channels.start : chunk.in_channels.stop]
            patches, out_hw = conv_patches(np.ascontiguousarray(part), chunk.layer)
            rows.append(linear_forward(patches, chunk.layer))
        chunked = col2im_output(np.concatenate(rows, axis=1), x.shape[0], out_hw)
        np.testing.assert_array_equal(chunked, expected, err_msg=f"{per_chunk} groups per chunk")


@pytest.mark.parametrize("seed", range(4))
def test_conv1d_is_a_conv2d_of_height_one(engine, seed):
    rng = np.random.default_rng(300 + seed)
    groups = int(rng.choice([1, 2]))
    in_channels, out_channels = 2 * groups, 3 * groups
    kernel, stride, padding, dilation = (int(v) for v in rng.integers(1, 4, 4))
    weight = per_channel_weight(rng, (out_channels, in_channels // groups, kernel), False)
    in_scale = random_scale(rng, False, 2**-8, 2**-2)
    module = (nniq.ConvReLU1d if seed % 2 else nnq.Conv1d)(
        in_channels, out_channels, kernel, stride, padding - 1, dilation, groups=groups
    )
    module.set_weight_bias(weight, exact_bias(rng, in_scale, weight))
    module.scale, module.zero_point = 0.07, 5
    high = 127 if engine == "x86" else 255
    qx = quantized_input(rng, (3, in_channels, 17), in_scale, 41, high)
    layer = extract_layer(module, InputQParams(qx.q_scale(), qx.q_zero_point()))
    assert layer.conv.kernel == (1, kernel) and layer.conv.padding == (0, padding - 1)
    got = conv2d_forward(quint8_to_int8(qx.int_repr().numpy())[:, :, None, :], layer)[:, :, 0]
    np.testing.assert_array_equal(got, quint8_to_int8(module(qx).int_repr().numpy()))


def test_group_chunks_fill_the_array_columns_and_refuse_bad_input():
    rng = np.random.default_rng(7)
    weight = per_channel_weight(rng, (32, 1, 3, 3), False)
    module = make_conv(32, 32, (3, 3), (1, 1), (1, 1), (1, 1), weight, None, 0.1, 3, False, 32)
    layer = extract_layer(module, InputQParams(0.05, 9))
    assert groups_per_chunk(layer, 16) == 16 and groups_per_chunk(layer, 64) == 32
    chunks = group_chunks(layer, 12)
    assert [len(c.out_channels) for c in chunks] == [12, 12, 8]
    assert chunks[1].in_channels == range(12, 24) and chunks[1].layer.weight.shape == (12, 108)
    # block-diagonal: chunk row j holds its group's 9 weights in columns 9j..9j+8, zeros elsewhere
    block = chunks[1].layer.weight.reshape(12, 12, 9)
    assert np.count_nonzero(block[~np.eye(12, dtype=bool)]) == 0
    np.testing.assert_array_equal(block[np.eye(12, dtype=bool)], layer.weight[12:24])
    with pytest.raises(ValueError, match=r"^per_chunk must be in \[1, groups = 32\], not 33$"):
        group_chunks(layer, 33)
    with pytest.raises(TypeError, match=r"^per_chunk must be an int"):
        group_chunks(layer, 2.0)
    with pytest.raises(ValueError, match=r"^cols must be an int >= 1, not 0$"):
        groups_per_chunk(layer, 0)
    with pytest.raises(ValueError, match=r"one patch matrix per group; split it"):
        conv_patches(np.zeros((1, 32, 4, 4), np.int8), layer)


def test_golden_detects_a_wrong_zero_point(engine):
    """The comparison can fail: a layer extracted with a shifted input zero point disagrees."""
    rng = np.random.default_rng(7)
    weight = per_channel_weight(rng, (16, 64), False)
    module = make_linear(64, 16, weight, None, 0.05, 128, False)
    qx = quantized_input(rng, (8, 64), 0.02, 60, 127)
    layer = extract_layer(module, InputQParams(qx.q_scale(), 61))
    got = linear_forward(quint8_to_int8(qx.int_repr().numpy()), layer)
    assert not np.array_equal(got, quint8_to_int8(module(qx).int_repr().numpy()))
