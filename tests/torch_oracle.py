"""Helpers that build torch.ao quantized layers with chosen integer parameters (the oracle)."""

from __future__ import annotations

import numpy as np
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq

from sim.golden.zeropoint import dequantize_bias


def random_scale(rng: np.random.Generator, power_of_two: bool, low: float, high: float) -> float:
    """A float32-representable scale; powers of two force exact .5 ties in requantization."""
    if power_of_two:
        return float(2.0 ** rng.integers(int(np.log2(low)), int(np.log2(high)) + 1))
    return float(np.float32(rng.uniform(low, high)))


def per_channel_weight(rng, shape, power_of_two: bool) -> torch.Tensor:
    """Symmetric per-output-channel qint8 weight with values over all of int8 (-128 included)."""
    values = rng.integers(-128, 128, shape, dtype=np.int8)
    scales = np.array(
        [random_scale(rng, power_of_two, 2**-10, 2**-4) for _ in range(shape[0])], np.float64
    )
    return torch._make_per_channel_quantized_tensor(
        torch.from_numpy(values),
        torch.from_numpy(scales),
        torch.zeros(shape[0], dtype=torch.long),
        0,
    )


def exact_bias(rng, in_scale: float, weight: torch.Tensor) -> torch.Tensor:
    """A float bias torch and the integer pipeline see alike (DESIGN.md §3)."""
    n = weight.shape[0]
    bias_q = rng.integers(-(2**20), 2**20, n)
    scales = weight.q_per_channel_scales().numpy()
    return torch.from_numpy(dequantize_bias(bias_q, in_scale, scales))


def quantized_input(rng, shape, scale: float, zero_point: int, high: int) -> torch.Tensor:
    """quint8 tensor with values in [0, high] (127 for the x86 engine's 7-bit activations)."""
    values = rng.integers(0, high + 1, shape).astype(np.uint8)
    values.flat[0] = 0
    values.flat[-1] = high
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(values), scale, zero_point)


def make_linear(in_features, out_features, weight, bias, out_scale, out_zero_point, relu):
    module = (nniq.LinearReLU if relu else nnq.Linear)(in_features, out_features)
    module.set_weight_bias(weight, bias)
    module.scale, module.zero_point = out_scale, out_zero_point
    return module


def make_conv(
    in_channels,
    out_channels,
    kernel,
    stride,
    padding,
    dilation,
    weight,
    bias,
    out_scale,
    out_zero_point,
    relu,
    groups=1,
):
    module = (nniq.ConvReLU2d if relu else nnq.Conv2d)(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    module.set_weight_bias(weight, bias)
    module.scale, module.zero_point = out_scale, out_zero_point
    return module
