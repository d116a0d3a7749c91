"""Dynamic-quantized Linear layers (``torch.ao.quantization.quantize_dynamic``) on the device.

A dynamic Linear keeps int8 weights and quantizes each input batch as it comes. Here the host
chooses the batch's scale and zero point with torch's own ``_choose_qparams_per_tensor`` (the
function its kernels call) and quantizes it (`sim.golden.dynamic_quant.quantize_input`); the
accelerator multiplies the int8 codes by the resident int8 weight (`Device.matmul_int32`, the
int32 accumulators come back); the host folds in the zero points and applies the float32
epilogue as the layer's kernel rounds it (`sim.golden.dynamic_quant.float_output`: fbgemm
fused multiply-add, qnnpack multiply then add). The output equals torch's bit for bit on both
(tests/test_dynamic_quant.py).

Which kernel a module runs is fixed when torch packs its weights (the quantized engine current
then: x86 and fbgemm pack for fbgemm), and the packed object does not say. `DynamicLinear.of`
finds out: it runs the module once on a two-row probe (one row that fbgemm's reduced input
range and qnnpack's full range quantize differently wherever the weight column is nonzero, one
seeded random row) and keeps the kernel whose numerics give torch's output exactly. A layer
that matches neither (another engine, onednn) has ``kernel = None`` and runs in torch on the
CPU, named in the offload warning.

Per-tensor and per-channel (axis 0) int8 weights, with any zero points; ``LinearReLU`` fused.
A float16 dynamic Linear is not integer and stays on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.ao.nn.intrinsic.quantized.dynamic as nniqd
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn

from host.layer_runner import LayerRunner
from host.quant import weight_scales_and_zero_points
from sim.golden.dynamic_quant import (
    KERNELS,
    float_output,
    input_range,
    quantize_input,
    raw_accumulators,
)

__all__ = [
    "DynamicLinear",
    "forward_rows",
    "host_product",
    "is_integer_dynamic_linear",
    "quantized_engine",
    "run_dynamic_linear",
]


@dataclass(frozen=True)
class DynamicLinear:
    """A dynamic Linear's int8 weight [N, K] with its zero points and float32 scales per output
    channel, its float32 bias (or None), fused ReLU, whether the module asks for the reduced
    input range [0, 127] (``reduce_range``: torch's modules since version 4), and the kernel
    that packed it (`sim.golden.dynamic_quant.KERNELS`; None: not modeled, module doc)."""

    weight: np.ndarray
    weight_zero_points: np.ndarray
    weight_scales: np.ndarray
    bias: np.ndarray | None
    relu: bool
    reduce_range: bool
    kernel: str | None = None

    @classmethod
    def of(cls, module: nnqd.Linear) -> DynamicLinear:
        """The parameters of `module` (an int8 dynamic Linear or LinearReLU), with its kernel
        found by the probe (module doc)."""
        if not is_integer_dynamic_linear(module):
            raise ValueError(f"{type(module).__name__} is not an int8 dynamic-quantized Linear")
        weight, bias = module._packed_params._weight_bias()
        relu = isinstance(module, nniqd.LinearReLU)
        reduce_range = relu or (getattr(module, "version", None) or 0) >= 4
        layer = cls.from_weight(weight, bias, relu=relu, reduce_range=reduce_range)
        probe = _probe_rows(layer)
        with torch.no_grad():
            expected = module(probe).numpy()
        kernel = matching_kernel(
            lambda name: forward_rows(layer, name, probe, host_product), expected
        )
        return dataclasses.replace(layer, kernel=kernel)

    @classmethod
    def from_weight(
        cls, weight: torch.Tensor, bias: torch.Tensor | None, *, relu: bool, reduce_range: bool
    ) -> DynamicLinear:
        """The layer of a qint8 `weight` [N, K] (per tensor, or per channel along axis 0) and a
        float `bias`, its kernel not yet known."""
        scales, zero_points = weight_scales_and_zero_points(weight, weight.shape[0])
        return cls(
            weight=weight.int_repr().numpy().astype(np.int8),
            weight_zero_points=zero_points,
            weight_scales=scales,
            bias=None if bias is None else bias.detach().numpy().astype(np.float32),
            relu=relu,
            reduce_range=reduce_range,
        )

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]


def matching_kernel(run: Callable[[str], object], expected: object) -> str | None:
    """The kernel of `sim.golden.dynamic_quant.KERNELS` whose numerics (`run(kernel)`, a
    probe's output) reproduce torch's `expected` output on that probe, or None. When both do
    (weights the probe cannot tell apart), the current engine's kernel."""
    matches = [kernel for kernel in KERNELS if _equal(run(kernel), expected)]
    if len(matches) > 1:
        return "qnnpack" if torch.backends.quantized.engine == "qnnpack" else "fbgemm"
    return matches[0] if matches else None


def _equal(ours: object, theirs: object) -> bool:
    if isinstance(ours, torch.Tensor):
        return torch.equal(ours, theirs)
    return np.array_equal(ours, theirs)


def is_integer_dynamic_linear(module: nn.Module) -> bool:
    """Whether `module` is a dynamic-quantized Linear with int8 weights (not float16)."""
    return isinstance(module, nnqd.Linear) and module._packed_params.dtype == torch.qint8


def run_dynamic_linear(
    runner: LayerRunner, name: str, x: torch.Tensor, layer: DynamicLinear
) -> torch.Tensor:
    """The dynamic Linear `layer` with its GEMM on the device (module doc): float32 `x`
    [..., K] -> float32 [..., N], bit for bit as torch's kernel computes it."""
    if layer.kernel is None:
        raise ValueError(f"{name}: its dynamic-quantized kernel is not modeled (module doc)")
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: a dynamic-quantized Linear takes a float32 tensor, not {what}")
    if x.ndim == 0 or x.shape[-1] != layer.in_features:
        raise ValueError(
            f"{name}: the input has shape {list(x.shape)}, the layer takes {layer.in_features} "
            "features in its last dimension"
        )
    rows = x.detach().reshape(-1, layer.in_features).contiguous()
    if rows.shape[0] == 0:
        raise ValueError(f"{name}: the input {list(x.shape)} holds no rows")

    def device_product(codes8: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return runner.matmul_int32(name, codes8, weight)

    out = forward_rows(layer, layer.kernel, rows, device_product)
    return torch.from_numpy(out).reshape(*x.shape[:-1], layer.out_features)


def forward_rows(
    layer: DynamicLinear,
    kernel: str,
    rows: torch.Tensor,
    product: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """float32 [M, N] of `layer` on float32 `rows` [M, K] as `kernel` computes it, the int8
    GEMM ``codes8 @ weight.T`` done by `product`."""
    scale, zero_point = batch_qparams(rows, input_range(kernel, layer.reduce_range) == 127)
    codes = quantize_input(rows.numpy(), scale, zero_point)
    accumulators = product((codes - 128).astype(np.int8), layer.weight)
    raw = raw_accumulators(accumulators, codes, zero_point, layer.weight, layer.weight_zero_points)
    return float_output(raw, scale, layer.weight_scales, layer.bias, kernel, layer.relu)


def batch_qparams(rows: torch.Tensor, reduce_range: bool) -> tuple[float, int]:
    """The batch's scale and zero point as the kernels choose them: torch's own
    ``_choose_qparams_per_tensor``. That function ignores `reduce_range` while the quantized
    engine is qnnpack, so a reduced range is chosen under the fbgemm engine, whatever engine
    is current (it only exists where fbgemm does)."""
    if not reduce_range:
        return torch._choose_qparams_per_tensor(rows, False)
    with quantized_engine("fbgemm"):
        return torch._choose_qparams_per_tensor(rows, True)


def host_product(codes8: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``codes8 @ weight.T`` in int32 on the host (the kernel probes' GEMM)."""
    return (codes8.astype(np.int64) @ weight.astype(np.int64).T).astype(np.int32)


def _probe_rows(layer: DynamicLinear) -> torch.Tensor:
    """Three rows that tell fbgemm from qnnpack (module doc): 1.0 and 0.5 at the column of the
    largest weight (the range is [0, 1]: code 64 of 127 against 128 of 255 for the 0.5, 0.504
    against 0.502 of the range), and seeded normal values scaled into that range."""
    k = layer.in_features
    largest = int(np.abs(layer.weight.astype(np.int64)).max(axis=0).argmax())
    crafted = torch.zeros(2, k)
    crafted[0, largest] = 1.0
    crafted[1, largest] = 0.5
    random = np.random.default_rng(0).uniform(0, 1, (1, k)).astype(np.float32)
    return torch.cat([crafted, torch.from_numpy(random)])


@contextlib.contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """torch's quantized engine set to `name` inside the block (``quantize_dynamic`` packs the
    weights for the engine current then), restored after."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before
