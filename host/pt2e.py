"""Offload models quantized by PT2E: ``torch.export`` + torchao's ``prepare_pt2e``/``convert_pt2e``.

A converted PT2E model is an ``fx.GraphModule`` of aten operations between
``quantized_decomposed`` quantize/dequantize nodes (torch's "Q/DQ" representation), executed by
torch in float. `offload_pt2e` finds each quantized layer in it:

    dequantize_per_tensor(x_q) ─┐
    dequantize_per_channel(w_q) ┼─ aten.linear / aten.conv2d / aten.conv1d ─ [aten.relu] ─
    bias (float32) ─────────────┘                                   quantize_per_tensor → y_q

and replaces the pattern by one call of an `AcceleratorLayer` on ``x_q``: the integer layer
(`host.quant.integer_layer`: symmetric int8 weights, the bias quantized to int32 with the input
zero point folded in, torch's float32 requantization multiplier) run on the device, returning
``y_q``. A layer whose output torch keeps in float (X86InductorQuantizer does so when no
quantized operation consumes it) runs too: the int32 accumulators come back from the device and
the host applies ``(acc - z * sum(w)) * fp32(sx * sw) + bias`` (and a ReLU) in float32, which
agrees with torch's float conv to float32 rounding. Everything else stays in the graph and runs
in torch on the CPU; `offload_pt2e` warns once, naming each such operation (and each conv/linear
left there, with the reason).

Quantized tensors are plain int8 (XNNPACKQuantizer) or uint8 (X86InductorQuantizer) tensors
with their scale and zero point on the Q/DQ nodes; uint8 q maps to the accelerator's int8 as
q - 128 (DESIGN.md §3). Activations go to the device and back once per layer.

Numerics: torch runs the converted model in float32 (dequantize, float conv/linear with a
float bias, quantize with round-half-even), the accelerator in integers (exact int32 sums, the
bias rounded to int32, torch's integer requantization). The two agree except where float32
rounding or the bias's rounding moves a value across a rounding boundary: such outputs differ by
one step, and later layers carry the difference on. docs/offload.md gives the measured
agreement.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from host.device import Device
from host.layer_runner import LayerReport, LayerRunner, OffloadSummary, OffloadWarning
from host.macs import cpu_flop_counter
from host.quant import integer_layer
from sim.golden.layers import ConvGeometry, QuantLayer

__all__ = ["AcceleratorLayer", "OffloadedPT2E", "is_pt2e", "offload_pt2e"]

# Operations by name (str of the OpOverload): the quantized_decomposed library exists only once
# torchao (or torch's PT2E code) has registered it, which a model from convert_pt2e implies.
_QUANTIZE = "quantized_decomposed.quantize_per_tensor.default"
_DEQUANTIZE = "quantized_decomposed.dequantize_per_tensor.default"
_DEQUANTIZE_CHANNEL = "quantized_decomposed.dequantize_per_channel.default"
_BOUNDARY = {
    _QUANTIZE,
    _DEQUANTIZE,
    _DEQUANTIZE_CHANNEL,
    "quantized_decomposed.quantize_per_tensor.tensor",
    "quantized_decomposed.dequantize_per_tensor.tensor",
}
_LINEAR = "aten.linear.default"
_CONVS = {"aten.conv2d.default": 2, "aten.conv1d.default": 1}
_RELUS = {"aten.relu.default", "aten.relu_.default"}
#: (qmin, qmax, offset to the accelerator's int8, numpy dtype) of each activation dtype.
_ACTIVATIONS = {torch.int8: (-128, 127, 0, np.int8), torch.uint8: (0, 255, -128, np.uint8)}


def is_pt2e(model: object) -> bool:
    """Whether `model` is a GraphModule holding PT2E quantize/dequantize nodes."""
    return isinstance(model, fx.GraphModule) and any(
        node.op == "call_function" and str(node.target) in _BOUNDARY for node in model.graph.nodes
    )


class AcceleratorLayer(nn.Module):
    """One quantized Linear/Conv1d/Conv2d of a PT2E graph, on the device.

    ``forward(x_q)``: the layer's int8 (or uint8) input tensor -> its quantized output, of the
    same dtype; Linear takes [..., K] (leading dimensions are GEMM rows), a conv NCHW (NCL).
    """

    def __init__(
        self,
        name: str,
        kind: str,
        layer: QuantLayer,
        dtype,
        runner: LayerRunner,
        float_bias: np.ndarray | None = None,
        float_output: bool = False,
    ):
        super().__init__()
        self.layer_name, self.kind, self.layer, self.runner = name, kind, layer, runner
        self.dtype = dtype
        self.float_bias, self.float_output = float_bias, float_output
        _, _, self.offset, self.numpy_dtype = _ACTIVATIONS[dtype]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype != self.dtype:
            raise ValueError(
                f"{self.layer_name}: expected a {self.dtype} tensor, not "
                f"{getattr(x, 'dtype', type(x))}"
            )
        data = (x.numpy().astype(np.int16) + self.offset).astype(np.int8)
        if self.float_output:
            return self._float_forward(data)
        if self.kind == "linear":
            rows = self.runner.host_gemm(
                self.layer_name, "linear", data.reshape(-1, data.shape[-1]), self.layer
            )
            out = rows.reshape(*data.shape[:-1], self.layer.out_features)
        elif self.kind == "conv1d":
            out = self.runner.conv1d(self.layer_name, data, self.layer)
        else:
            out = self.runner.conv(self.layer_name, data, self.layer, "conv2d")
        return torch.from_numpy((out.astype(np.int16) - self.offset).astype(self.numpy_dtype))

    def _float_forward(self, data: np.ndarray) -> torch.Tensor:
        """A layer whose output torch keeps in float: the int32 accumulators from the device,
        then ``(acc - z * sum(w)) * fp32(sx * sw) + bias`` (and the ReLU) in float32 here."""
        layer = self.layer
        if self.kind == "linear":
            rows = data.reshape(-1, data.shape[-1])
            acc = self.runner.matmul_int32(self.layer_name, rows, layer.weight, "linear, float out")
            acc = acc.reshape(*data.shape[:-1], layer.out_features)
            channel_axis = -1
        else:
            if self.kind == "conv1d":
                acc = self.runner.conv1d(self.layer_name, data, layer, int32=True)
            else:
                acc = self.runner.conv(self.layer_name, data, layer, "conv2d", int32=True)
            channel_axis = 1
        shape = [1] * acc.ndim
        shape[channel_axis] = layer.out_features
        # the layer was made without a bias, so bias32 is the zero-point fold -z * sum(w)
        raw = (acc.astype(np.int64) + layer.bias32.reshape(shape)).astype(np.float32)
        multiplier = (np.float32(layer.in_scale) * layer.weight_scales).reshape(shape)
        out = raw * multiplier
        if self.float_bias is not None:
            out = out + self.float_bias.reshape(shape)
        if layer.requant.relu:
            out = np.maximum(out, np.float32(0))
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


@dataclass(frozen=True)
class _Pattern:
    """A matched quantized layer: the nodes it replaces and the integer layer."""

    name: str
    kind: str
    layer: QuantLayer
    input_node: fx.Node  # the int8/uint8 tensor entering the layer
    output_node: fx.Node  # the quantize_per_tensor node giving its result (float: the layer's)
    dtype: torch.dtype
    float_bias: np.ndarray | None = None  # a float-output layer's bias
    float_output: bool = False


class OffloadedPT2E(nn.Module):
    """`offload_pt2e`'s result: the PT2E graph with its quantized layers on the device.

    Attributes
    ----------
    graph_module : fx.GraphModule, the rewritten graph (torch runs it).
    device : host.device.Device
    on_cpu : list of str, the operations left on the CPU (besides quantize/dequantize).
    """

    def __init__(self, graph: fx.GraphModule, runner: LayerRunner, on_cpu: list[str]):
        super().__init__()
        self.graph_module = graph
        self.runner = runner
        self.device = runner.device
        self.on_cpu = on_cpu

    def forward(self, *args):
        self.runner.start()
        with cpu_flop_counter() as counter:
            result = self.graph_module(*args)
        for operation, flops in counter.get_flop_counts().get("Global", {}).items():
            self.runner.count_cpu(str(operation), int(flops) // 2)
        return result

    def report(self) -> list[LayerReport]:
        """The offloaded layers of the last forward, in order."""
        return self.runner.report()

    def summary(self) -> OffloadSummary:
        """MACs on the accelerator and the CPU, cycles and host<->device bytes of the last
        forward (the CPU's from torch's FLOP counter)."""
        return self.runner.summary()


def offload_pt2e(
    model: fx.GraphModule, device: Device, engine: str | Mapping[str, str] = "auto"
) -> OffloadedPT2E:
    """`model` (converted by ``convert_pt2e``) with its quantized layers on `device` (module
    doc); `model` itself is not modified. `engine` as for `host.offload.offload`.

    Raises
    ------
    TypeError
        `model` is not a GraphModule or `device` not a `host.device.Device`.
    ValueError
        `model` holds no PT2E-quantized Linear or Conv layer.
    """
    if not isinstance(model, fx.GraphModule):
        raise TypeError(f"model must be a torch.fx.GraphModule, not {type(model)!r}")
    runner = LayerRunner(device, engine)
    with warnings.catch_warnings():
        # torch 2.13's own pytree code warns about its LeafSpec while copying an exported model
        warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
        graph = copy.deepcopy(model)
    patterns, refused = [], {}
    for node in graph.graph.nodes:
        if node.op == "call_function" and (
            str(node.target) == _LINEAR or str(node.target) in _CONVS
        ):
            pattern = _match(graph, node, len(patterns))
            if isinstance(pattern, str):
                refused[node.name] = pattern
            else:
                patterns.append(pattern)
    if not patterns:
        reasons = "; ".join(f"{name}: {why}" for name, why in refused.items())
        raise ValueError(
            f"{type(model).__name__} holds no PT2E-quantized Linear or Conv layer"
            + (f" ({reasons})" if reasons else "")
        )
    replaced: dict[fx.Node, fx.Node] = {}  # a layer's quantize node -> the call giving it now
    for index, pattern in enumerate(patterns):
        _replace(graph, pattern, runner, index, replaced)
    graph.graph.lint()
    graph.recompile()
    on_cpu = _cpu_operations(graph, refused)
    if on_cpu:
        warnings.warn(
            f"these operations of the PT2E model run on the CPU, not on the accelerator: "
            f"{', '.join(on_cpu)}",
            OffloadWarning,
            stacklevel=2,
        )
    return OffloadedPT2E(graph, runner, on_cpu)


def _match(graph: fx.GraphModule, node: fx.Node, index: int) -> _Pattern | str:
    """The quantized layer around the linear/conv `node`, or why it is not one."""
    x_dq, w_dq = node.args[0], node.args[1]
    bias_node = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    if not _is(x_dq, _DEQUANTIZE):
        return "its input is not dequantized from int8"
    if not (_is(w_dq, _DEQUANTIZE_CHANNEL) or _is(w_dq, _DEQUANTIZE)):
        return "its weight is not dequantized from int8"
    last, relu = node, False
    if len(node.users) == 1 and _is(next(iter(node.users)), *_RELUS):
        last, relu = next(iter(node.users)), True
    float_output = len(last.users) != 1 or not _is(next(iter(last.users)), _QUANTIZE)
    y_q = last if float_output else next(iter(last.users))
    x_scale, x_zero, x_min, x_max, x_dtype = x_dq.args[1:6]
    if float_output:  # torch keeps the output float: our float epilogue, no requantization
        y_scale, y_zero, y_min, y_max, y_dtype = None, 0, x_min, x_max, x_dtype
    else:
        y_scale, y_zero, y_min, y_max, y_dtype = y_q.args[1:6]
    if x_dtype not in _ACTIVATIONS or y_dtype != x_dtype:
        return f"activations of {x_dtype} / {y_dtype} (int8 or uint8 are lowered)"
    qmin, qmax, offset, _ = _ACTIVATIONS[x_dtype]
    if (x_min, x_max) != (qmin, qmax) or (y_min, y_max) != (qmin, qmax):
        return f"activation range [{x_min}, {x_max}] is not the full {x_dtype} range"
    weights = _weights(graph, w_dq)
    if isinstance(weights, str):
        return weights
    weight_int8, scales = weights
    bias = None if bias_node is None else _constant(graph, bias_node)
    if bias_node is not None and bias is None:
        return "its bias is not a constant"
    kind, geometry = "linear", None
    if str(node.target) in _CONVS:
        dims = _CONVS[str(node.target)]
        geometry = _conv_geometry(node, weight_int8.shape, dims)
        if isinstance(geometry, str):
            return geometry
        kind = "conv1d" if dims == 1 else "conv2d"
    float_bias = None if bias is None else bias.detach().float().numpy()
    if float_output:  # an output scale the unused requantizer accepts (multipliers <= 0.5)
        y_scale = 2 * float(x_scale) * float(scales.max(initial=np.float32(1e-30)))
    layer = integer_layer(
        weight_int8.reshape(weight_int8.shape[0], -1),
        scales,
        None if float_output else float_bias,
        in_qparams=(float(x_scale), int(x_zero) + offset),
        out_qparams=(float(y_scale), int(y_zero) + offset),
        relu=relu,
        conv=geometry,
        engine="qnnpack",  # its reciprocal form is the quantize node's x * (1.0 / scale)
    )
    name = f"{kind}{index}:{node.name}"
    if float_output:
        return _Pattern(name, kind, layer, x_dq.args[0], y_q, x_dtype, float_bias, True)
    return _Pattern(name, kind, layer, x_dq.args[0], y_q, x_dtype)


def _weights(graph: fx.GraphModule, w_dq: fx.Node):
    """(int8 weight [N, ...], float32 scales [N]) of a weight's dequantize node, or why not."""
    weight = _constant(graph, w_dq.args[0])
    if weight is None or weight.dtype != torch.int8:
        return "its weight is not a constant int8 tensor"
    n = weight.shape[0]
    if str(w_dq.target) == _DEQUANTIZE_CHANNEL:
        scales, zeros = _constant(graph, w_dq.args[1]), _constant(graph, w_dq.args[2])
        axis = w_dq.args[3]
        if scales is None or axis != 0:
            return "its weight is not quantized per output channel (axis 0)"
        if zeros is not None and bool(torch.any(zeros != 0)):
            return "its weight is not symmetric (zero points differ from 0)"
        scales = scales.double().numpy().astype(np.float32)
    else:
        if int(w_dq.args[2]) != 0:
            return "its weight is not symmetric (zero point differs from 0)"
        scales = np.full(n, float(w_dq.args[1]), np.float32)
    return weight.numpy().astype(np.int8), scales


def _conv_geometry(node: fx.Node, weight_shape, dims: int) -> ConvGeometry | str:
    defaults = [None, None, None, [1] * dims, [0] * dims, [1] * dims, 1]
    args = list(node.args) + defaults[len(node.args) :]
    stride, padding, dilation, groups = args[3:7]
    if isinstance(padding, str):
        return f"padding={padding!r} (explicit integers are lowered)"

    in_channels = int(weight_shape[1]) * int(groups)
    return ConvGeometry.of(in_channels, weight_shape[2:], stride, padding, dilation, groups)


def _replace(
    graph: fx.GraphModule,
    pattern: _Pattern,
    runner: LayerRunner,
    index: int,
    replaced: dict[fx.Node, fx.Node],
) -> None:
    """Put an `AcceleratorLayer` call in place of `pattern`'s quantize node and erase the
    nodes only the pattern used; `replaced` maps earlier layers' quantize nodes to their calls
    (a layer's input may be the previous layer's output)."""
    target = f"_accelerator_{index}"
    accelerator = AcceleratorLayer(
        pattern.name,
        pattern.kind,
        pattern.layer,
        pattern.dtype,
        runner,
        pattern.float_bias,
        pattern.float_output,
    )
    graph.add_submodule(target, accelerator)
    source = replaced.get(pattern.input_node, pattern.input_node)
    with graph.graph.inserting_before(pattern.output_node):
        call = graph.graph.call_module(target, (source,))
    pattern.output_node.replace_all_uses_with(call)
    replaced[pattern.output_node] = call
    _erase_unused(graph.graph, pattern.output_node)


def _erase_unused(graph: fx.Graph, node: fx.Node) -> None:
    """Erase `node` and, recursively, the inputs only it used (not placeholders)."""
    if node.users or node.op in ("placeholder", "output"):
        return
    inputs = list(node.all_input_nodes)
    graph.erase_node(node)
    for used in inputs:
        if used.op in ("call_function", "get_attr"):
            _erase_unused(graph, used)


def _constant(graph: fx.GraphModule, node) -> torch.Tensor | None:
    if isinstance(node, fx.Node) and node.op == "get_attr":
        value = graph
        for part in node.target.split("."):
            value = getattr(value, part)
        return value.detach() if isinstance(value, torch.Tensor) else None
    return None


def _is(node, *targets) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and str(node.target) in targets


def _cpu_operations(graph: fx.GraphModule, refused: dict[str, str]) -> list[str]:
    names = set()
    for node in graph.graph.nodes:
        if node.op == "call_function" and str(node.target) not in _BOUNDARY:
            name = str(node.target).removeprefix("aten.")
            names.add(f"{name} ({refused[node.name]})" if node.name in refused else name)
    return sorted(names)
