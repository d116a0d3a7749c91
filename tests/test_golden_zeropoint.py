"""quint8 <-> int8 mapping, bias quantization and zero-point folding."""

import numpy as np
import pytest

from sim.golden.gemm import gemm
from sim.golden.zeropoint import (
    dequantize_bias,
    fold_bias,
    int8_to_quint8,
    quantize_bias,
    quint8_to_int8,
    zero_point_to_int8,
)


def test_mapping_flips_the_top_bit_and_round_trips():
    q = np.arange(256, dtype=np.uint8)
    mapped = quint8_to_int8(q)
    np.testing.assert_array_equal(mapped.astype(np.int64), np.arange(256) - 128)
    np.testing.assert_array_equal(int8_to_quint8(mapped), q)
    assert zero_point_to_int8(0) == -128 and zero_point_to_int8(255) == 127


def test_folded_bias_makes_plain_int8_macs_equal_zero_point_arithmetic():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (5, 33)).astype(np.uint8)
    w = rng.integers(-128, 128, (7, 33), dtype=np.int8)
    bias_q = rng.integers(-(2**20), 2**20, 7)
    zero_point = 77
    reference = (q.astype(np.int64) - zero_point) @ w.astype(np.int64).T + bias_q
    bias32 = fold_bias(bias_q, w, zero_point_to_int8(zero_point))
    np.testing.assert_array_equal(gemm(quint8_to_int8(q), w.T.copy(), bias32), reference)


def test_bias_quantization_round_trips_prerounded_bias():
    rng = np.random.default_rng(4)
    scales = rng.uniform(1e-4, 1e-2, 20)
    bias_q = rng.integers(-(2**23), 2**23, 20)
    bias = dequantize_bias(bias_q, 0.031, scales)
    assert bias.dtype == np.float32
    np.testing.assert_array_equal(quantize_bias(bias, 0.031, scales), bias_q)


def test_errors_name_the_bad_value():
    with pytest.raises(TypeError, match=r"^q must be a numpy uint8 array, not int8$"):
        quint8_to_int8(np.zeros(2, np.int8))
    with pytest.raises(TypeError, match=r"^q must be a numpy int8 array, not uint8$"):
        int8_to_quint8(np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"^quint8 zero point must be in \[0, 255\], not 256$"):
        zero_point_to_int8(256)
    w = np.full((2, 4), -128, np.int8)
    with pytest.raises(
        ValueError, match=r"^folded bias of channel 1 = 2147483648 does not fit int32$"
    ):
        fold_bias(np.array([0, 2**31 - 512]), w, 1)
    with pytest.raises(TypeError, match=r"^bias must be a float32 vector, not float64 of shape"):
        quantize_bias(np.zeros(2), 0.1, np.ones(2))
