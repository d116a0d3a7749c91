"""Golden im2col: the lowered GEMM equals torch's own convolution on integer data."""

import numpy as np
import pytest
import torch

from sim.golden.conv import col2im_output, conv_output_size, im2col
from sim.golden.gemm import gemm


@pytest.mark.parametrize("seed", range(10))
def test_im2col_gemm_equals_torch_conv(seed):
    rng = np.random.default_rng(seed)
    batch, channels, out_channels = int(rng.integers(1, 3)), int(rng.integers(1, 5)), 3
    height, width = int(rng.integers(5, 12)), int(rng.integers(5, 12))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad_value = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, (batch, channels, height, width), dtype=np.int8)
    w = rng.integers(-128, 128, (out_channels, channels, *kernel), dtype=np.int8)

    patches = im2col(x, kernel, stride, padding, dilation, pad_value)
    out_hw = conv_output_size((height, width), kernel, stride, padding, dilation)
    got = col2im_output(
        gemm(patches, np.ascontiguousarray(w.reshape(out_channels, -1).T)), batch, out_hw
    )

    padded = np.pad(
        x.astype(np.float64),
        ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
        constant_values=pad_value,
    )
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(padded),
        torch.from_numpy(w.astype(np.float64)),
        stride=stride,
        dilation=dilation,
    ).numpy()
    np.testing.assert_array_equal(got, expected.astype(np.int64))


def test_patch_layout_is_c_kh_kw():
    x = np.arange(2 * 3 * 3, dtype=np.int8).reshape(1, 2, 3, 3)
    patches = im2col(x, (2, 2))
    assert patches.shape == (4, 8)
    np.testing.assert_array_equal(patches[0], [0, 1, 3, 4, 9, 10, 12, 13])


def test_padding_uses_pad_value():
    x = np.zeros((1, 1, 1, 1), np.int8)
    patches = im2col(x, (3, 3), padding=1, pad_value=-7)
    np.testing.assert_array_equal(patches[0], [-7, -7, -7, -7, 0, -7, -7, -7, -7])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"kernel": (5, 1)},
            ValueError,
            r"^kernel \(5, 1\) with dilation \(1, 1\) does not fit input \(4, 4\) "
            r"padded by \(0, 0\)$",
        ),
        ({"kernel": (1, 1), "stride": 0}, ValueError, r"^stride must be >= 1, not 0$"),
        ({"kernel": (1, 1), "padding": -1}, ValueError, r"^padding must be >= 0, not -1$"),
        (
            {"kernel": (1, 1), "dilation": 1.5},
            TypeError,
            r"^dilation must be an int or a pair of ints, not 1\.5$",
        ),
        (
            {"kernel": (1, 1), "pad_value": 200},
            ValueError,
            r"^pad_value must be an int8 value, not 200$",
        ),
    ],
)
def test_bad_geometry_is_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        im2col(np.zeros((1, 1, 4, 4), np.int8), **kwargs)


def test_input_must_be_int8_nchw():
    with pytest.raises(ValueError, match=r"^x must have 4 dimensions, not shape \(4, 4\)$"):
        im2col(np.zeros((4, 4), np.int8), (1, 1))
    with pytest.raises(TypeError, match=r"^x must have dtype int8, not uint8$"):
        im2col(np.zeros((1, 1, 4, 4), np.uint8), (1, 1))
