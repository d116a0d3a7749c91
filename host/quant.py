"""Quantize torch models with PyTorch's own eager flow and extract integer layer parameters.

`quantize` runs torch.ao's eager post-training flow (fuse Linear/Conv2d + ReLU, observe, calibrate,
convert) and then pre-rounds every bias to a value torch and an integer pipeline see alike
(DESIGN.md §3): bq = rne(b / (sx*sw)), written back as fp32(bq * fp32(sx*sw)). It returns a standard
torch.ao quantized model, so the oracle stays torch itself.

`layer_params` runs a quantized model once with hooks to learn each layer's input scale and zero
point (torch keeps them on the tensors, not the modules) and returns each supported layer's
`sim.golden.layers.QuantLayer`, whose golden forward equals the torch layer bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
from torch import nn

from sim.golden.conv_transpose import TransposeGeometry, flipped_weight
from sim.golden.layers import ConvGeometry, QuantLayer
from sim.golden.requant import RequantParams, float_multiplier
from sim.golden.zeropoint import dequantize_bias, fold_bias, quantize_bias, zero_point_to_int8

#: Engines whose arithmetic the golden model reproduces (onednn rounds differently, DESIGN.md §3).
ENGINES = ("qnnpack", "x86")

#: Quantized torch modules `layer_params` understands (the fused ReLU variants are subclasses).
SUPPORTED_MODULES = (nnq.Linear, nnq.Conv1d, nnq.Conv2d, nnq.ConvTranspose2d)


@dataclass(frozen=True)
class InputQParams:
    """Scale and quint8 zero point of the tensor that enters one quantized module."""

    scale: float
    zero_point: int


def quantize(
    model: nn.Module,
    calibration_inputs: torch.Tensor | Iterable[torch.Tensor],
    engine: str = "qnnpack",
) -> nn.Module:
    """Post-training static quantization of a float model through torch.ao's eager flow.

    Parameters
    ----------
    model:
        A float ``nn.Module``; it is copied, never modified. Consecutive ``Linear``/``Conv1d``/
        ``Conv2d`` + ``ReLU`` children of ``nn.Sequential`` containers are fused. Without a
        ``QuantStub`` the model is wrapped in ``torch.ao.quantization.QuantWrapper`` (float in,
        float out).
    calibration_inputs:
        One float tensor batch, or an iterable of them, run through the observers.
    engine:
        ``"qnnpack"`` or ``"x86"``; also made the global ``torch.backends.quantized.engine``,
        which the returned model needs to run. For x86, activations use 7 bits
        ([0, 127], torch's ``reduce_range``), which keeps fbgemm's int16 pair sums from saturating.
        On a CPU with AVX512-VNNI, torch runs the x86 engine's convolutions on oneDNN, which
        rounds exact .5 ties after adding the zero point: the model can then differ from the
        accelerator by one step on such ties (docs/numeric-spec.md).

    Returns
    -------
    The converted torch.ao quantized model, in eval mode, with pre-rounded biases.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, not {engine!r}")
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"this torch build has no {engine!r} quantized engine")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model)!r}")
    batches = _calibration_batches(calibration_inputs)
    torch.backends.quantized.engine = engine

    float_model = copy.deepcopy(model).eval()
    with _eager_flow_deprecation_silenced():
        _fuse_sequential_relus(float_model)
    has_stub = any(isinstance(m, tq.QuantStub) for m in float_model.modules())
    prepared_input = float_model if has_stub else tq.QuantWrapper(float_model)
    activation = tq.HistogramObserver.with_args(
        dtype=torch.quint8, quant_min=0, quant_max=127 if engine == "x86" else 255
    )
    prepared_input.qconfig = tq.QConfig(activation, tq.default_per_channel_weight_observer)
    for module in prepared_input.modules():
        if isinstance(module, nn.ConvTranspose2d):  # torch.ao has no per-channel for these
            module.qconfig = tq.QConfig(activation, tq.default_weight_observer)
    with _eager_flow_deprecation_silenced():
        prepared = tq.prepare(prepared_input)
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
        quantized = tq.convert(prepared).eval()

    input_qparams = capture_input_qparams(quantized, batches[0])
    for name, module in quantized.named_modules():
        if name in input_qparams:
            _round_bias(module, input_qparams[name])
    return quantized


def capture_input_qparams(
    qmodel: nn.Module, example_input: torch.Tensor
) -> dict[str, InputQParams]:
    """Run `qmodel` once and record the input qparams of every supported quantized module.

    Raises
    ------
    ValueError
        The model holds no supported quantized layer, or a layer's input is not quint8.
    """
    found: dict[str, InputQParams] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, inputs: tuple) -> None:
            tensor = inputs[0]
            if not tensor.is_quantized or tensor.dtype != torch.quint8:
                raise ValueError(f"layer {name!r} received {tensor.dtype}, expected torch.quint8")
            found[name] = InputQParams(float(tensor.q_scale()), int(tensor.q_zero_point()))

        return hook

    handles = [
        module.register_forward_pre_hook(recorder(name))
        for name, module in qmodel.named_modules()
        if isinstance(module, SUPPORTED_MODULES)
    ]
    if not handles:
        raise ValueError(
            "the model holds no quantized Linear or Conv2d layer; quantize it first "
            "(host.quantize or torch.ao.quantization.convert)"
        )
    try:
        with torch.no_grad():
            qmodel(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return found


def layer_params(qmodel: nn.Module, example_input: torch.Tensor) -> dict[str, QuantLayer]:
    """Integer parameters of every quantized Linear/Conv2d of `qmodel`, keyed by module name."""
    input_qparams = capture_input_qparams(qmodel, example_input)
    modules = dict(qmodel.named_modules())
    return {name: extract_layer(modules[name], qp) for name, qp in input_qparams.items()}


def extract_layer(module: nn.Module, input_qparams: InputQParams) -> QuantLayer:
    """`QuantLayer` of one torch.ao quantized Linear, LinearReLU, Conv1d, ConvReLU1d, Conv2d or
    ConvReLU2d (any groups; a Conv1d as a Conv2d of kernel (1, K) on inputs of height 1).

    Raises
    ------
    TypeError
        The module is not one of those.
    ValueError
        Weights are not symmetric int8 per output channel (or per tensor), or a conv uses a
        padding mode other than zeros or a string padding.
    """
    if not isinstance(module, SUPPORTED_MODULES):
        raise TypeError(
            "expected a quantized Linear, Conv1d, Conv2d or ConvTranspose2d module, not "
            f"{type(module).__name__}"
        )
    weight_int8, weight_scales = _weight_int8_and_scales(module)
    geometry = None
    if isinstance(module, nnq.ConvTranspose2d):
        transposed = transpose_geometry(module)
        weight_int8 = flipped_weight(weight_int8, transposed.groups)
        geometry = transposed.conv_geometry
    elif isinstance(module, nnq.Conv1d | nnq.Conv2d):
        geometry = _conv_geometry(module)
        weight_int8 = weight_int8.reshape(weight_int8.shape[0], -1)
    bias = module.bias()
    return integer_layer(
        weight_int8,
        weight_scales,
        None if bias is None else bias.detach().numpy(),
        in_qparams=(input_qparams.scale, zero_point_to_int8(input_qparams.zero_point)),
        out_qparams=(float(module.scale), zero_point_to_int8(int(module.zero_point))),
        relu=isinstance(module, nniq.LinearReLU | nniq.ConvReLU1d | nniq.ConvReLU2d),
        conv=geometry,
    )


def integer_layer(
    weight_int8: np.ndarray,
    weight_scales: np.ndarray,
    bias: np.ndarray | None,
    *,
    in_qparams: tuple[float, int],
    out_qparams: tuple[float, int],
    relu: bool,
    conv: ConvGeometry | None = None,
    engine: str | None = None,
) -> QuantLayer:
    """The `QuantLayer` of symmetric int8 weights [N, K] with float32 scales [N], a float32
    bias [N] (or None) and the input's and output's (scale, int8-domain zero point): the bias
    quantized as torch's int8 kernels do and the input zero point folded into it, the float32
    requantization multiplier as `engine` forms it (DESIGN.md §3; default: the engine torch
    runs quantized modules with now, ``torch.backends.quantized.engine``, "qnnpack" or any
    other, which is fbgemm's arithmetic)."""
    if engine is None:
        engine = torch.backends.quantized.engine
    form = "qnnpack" if engine == "qnnpack" else "x86"
    in_scale, in_zero_point = in_qparams
    out_scale, out_zero_point = out_qparams
    n = weight_int8.shape[0]
    bias_q = (
        np.zeros(n, np.int64)
        if bias is None
        else quantize_bias(np.asarray(bias, np.float32), in_scale, weight_scales)
    )
    return QuantLayer(
        weight=np.ascontiguousarray(weight_int8),
        bias32=fold_bias(bias_q, weight_int8, in_zero_point),
        requant=RequantParams(
            float_multiplier(in_scale, weight_scales, out_scale, form), out_zero_point, relu=relu
        ),
        in_zero_point=in_zero_point,
        in_scale=in_scale,
        out_scale=out_scale,
        weight_scales=weight_scales,
        conv=conv,
    )


def _weight_int8_and_scales(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The module's int8 weight as torch stores it and a float32 scale per output channel
    (a ConvTranspose2d stores [C_in, C_out / g, ...] and takes per-tensor weights only)."""
    weight = module.weight()
    transposed = isinstance(module, nnq.ConvTranspose2d)
    per_channel = weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    if transposed and per_channel:
        raise ValueError("a ConvTranspose2d's weights must be quantized per tensor")
    n = int(module.out_channels) if transposed else weight.shape[0]
    scales, zero_points = weight_scales_and_zero_points(weight, n)
    if np.any(zero_points != 0):
        raise ValueError(
            f"weights must be symmetric (zero point 0), not zero points {sorted(set(zero_points))}"
        )
    return weight.int_repr().numpy().astype(np.int8), scales.astype(np.float32)


def weight_scales_and_zero_points(weight: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The float32 scale and int64 zero point of each of the `n` output channels of a qint8
    `weight`, quantized per tensor or per channel along axis 0 (another axis or dtype is a
    `ValueError`)."""
    if weight.dtype != torch.qint8:
        raise ValueError(f"weights must be torch.qint8, not {weight.dtype}")
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        if weight.q_per_channel_axis() != 0:
            raise ValueError(
                f"per-channel weights must be quantized along axis 0, not "
                f"{weight.q_per_channel_axis()}"
            )
        scales = weight.q_per_channel_scales().numpy()
        zero_points = weight.q_per_channel_zero_points().numpy()
    else:
        scales = np.full(n, weight.q_scale())
        zero_points = np.full(n, weight.q_zero_point())
    return scales.astype(np.float32), zero_points.astype(np.int64)


def transpose_geometry(module: nnq.ConvTranspose2d) -> TransposeGeometry:
    """The stepping of a quantized ConvTranspose2d (`sim.golden.conv_transpose`).

    Raises
    ------
    ValueError
        A padding mode other than zeros, or a padding the lowering does not take (more than
        dilation * (kernel - 1)).
    """
    if module.padding_mode != "zeros":
        raise ValueError(f"only padding_mode='zeros' is supported, not {module.padding_mode!r}")
    return TransposeGeometry(
        in_channels=int(module.in_channels),
        kernel=tuple(int(v) for v in module.kernel_size),
        stride=tuple(int(v) for v in module.stride),
        padding=tuple(int(v) for v in module.padding),
        output_padding=tuple(int(v) for v in module.output_padding),
        dilation=tuple(int(v) for v in module.dilation),
        groups=int(module.groups),
    )


def _conv_geometry(module: nnq.Conv1d | nnq.Conv2d) -> ConvGeometry:
    if module.padding_mode != "zeros":
        raise ValueError(f"only padding_mode='zeros' is supported, not {module.padding_mode!r}")
    if isinstance(module.padding, str):
        raise ValueError(f"padding must be explicit integers, not {module.padding!r}")

    return ConvGeometry.of(
        module.in_channels,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        module.groups,
    )


def _round_bias(module: nn.Module, input_qparams: InputQParams) -> None:
    """Replace the module's float bias by fp32(bq * fp32(sx*sw)) (DESIGN.md §3)."""
    bias = module.bias()
    if bias is None:
        return
    _, weight_scales = _weight_int8_and_scales(module)
    bias_q = quantize_bias(bias.detach().numpy(), input_qparams.scale, weight_scales)
    rounded = dequantize_bias(bias_q, input_qparams.scale, weight_scales)
    module.set_weight_bias(module.weight(), torch.from_numpy(rounded))


def _fuse_sequential_relus(model: nn.Module) -> None:
    """Fuse Linear/Conv1d/Conv2d followed by ReLU inside every nn.Sequential, in place."""
    for container in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(container._modules)
        pairs = [
            [first, second]
            for first, second in itertools.pairwise(names)
            if isinstance(container._modules[first], nn.Linear | nn.Conv1d | nn.Conv2d)
            and type(container._modules[second]) is nn.ReLU
        ]
        if pairs:
            tq.fuse_modules(container, pairs, inplace=True)


@contextlib.contextmanager
def _eager_flow_deprecation_silenced() -> Iterator[None]:
    """Silence torch 2.13's notice that torch.ao's eager flow moves to torchao.

    That flow and its int8 kernels are the oracle of the numeric spec (DESIGN.md §3), so we use it
    deliberately; every other warning still surfaces.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning
        )
        yield


def _calibration_batches(
    calibration_inputs: torch.Tensor | Iterable[torch.Tensor],
) -> list[torch.Tensor]:
    batches = (
        [calibration_inputs]
        if isinstance(calibration_inputs, torch.Tensor)
        else list(calibration_inputs)
    )
    if not batches:
        raise ValueError("calibration_inputs is empty: give at least one batch")
    for i, batch in enumerate(batches):
        if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
            raise TypeError(
                f"calibration batch {i} must be a float torch.Tensor, not "
                f"{getattr(batch, 'dtype', type(batch))}"
            )
    return batches
