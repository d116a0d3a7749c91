"""Run a torch.ao quantized model's layers on the accelerator: `offload(qmodel, device)`.

`offload` captures the model's graph with torch.fx and returns an `OffloadedModel`, an
``nn.Module`` whose ``forward(x)`` runs the graph node by node:

- quantized ``Linear`` / ``LinearReLU`` (`torch.ao.nn.quantized`, `.intrinsic.quantized`): on the
  device (`host.device.Device.linear`): int8 activations in device memory, the layer's weights
  and requantization parameters resident there, the result requantized by the accelerator and
  left in device memory for the next layer;
- quantized ``Conv2d`` / ``ConvReLU2d`` and ``Conv1d`` / ``ConvReLU1d`` (zero padding, any
  groups): lowered by im2col on the host (patches padded with the input zero point), the GEMM
  and requantization on the device, the result brought back to NCHW (NCL). A Conv1d runs as a
  Conv2d of height 1. A grouped conv (depthwise included) runs as one GEMM per chunk of groups
  whose output channels fill the array's columns, with a block-diagonal weight
  (`sim.golden.grouped_conv`); each chunk is one report row;
- quantized ``ConvTranspose2d``: as a convolution over its zero-inserted input
  (`sim.golden.conv_transpose`), then as a Conv2d;
- dynamic-quantized ``Linear`` / ``LinearReLU`` (``quantize_dynamic``, int8 weights): the
  batch quantized on the host, the int8 GEMM on the device, the float epilogue on the host as
  torch's engine rounds it (`host.dynamic`), float out, equal to torch's bit for bit; a
  dynamic ``LSTM`` likewise, its input and hidden projections on the device, the gates'
  element-wise arithmetic in torch (`host.dynamic_lstm`);
- a PT2E model (``torch.export`` + torchao's ``convert_pt2e``): `host.pt2e.offload_pt2e`;
- ``Flatten``, ``Identity``, ``Dropout``: bookkeeping on the host, no data moved when the tensor
  already has the shape;
- ``Quantize`` / ``DeQuantize`` (the model's float boundary) and every other operation: on the
  CPU with torch, their inputs brought back from the device. `offload` warns once, naming each
  such operation that is not a float boundary (``OffloadWarning``).

Activations follow DESIGN.md §3: torch's quint8 q becomes the accelerator's int8 q - 128 and back;
`host.quant.extract_layer` turns each module and its input's scale and zero point into the
integer layer (zero point folded into the bias), so the output equals ``qmodel(x)`` bit for bit
(qnnpack models, and x86 models from `host.quantize`, whose biases are pre-rounded).

After a forward, `OffloadedModel.report()` lists each offloaded layer: GEMM shape, useful MACs,
cycles, utilization, bytes moved and modeled time at ``config.clock_mhz``;
`OffloadedModel.summary()` totals the model: MACs on the accelerator and on the CPU (per CPU
operation, `host.macs`), accelerator cycles, and the bytes that crossed between host and device.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
from torch import fx, nn

from host.device import Device, DeviceBuffer
from host.dynamic import DynamicLinear, is_integer_dynamic_linear, run_dynamic_linear
from host.dynamic_lstm import DynamicLSTM, is_integer_dynamic_lstm, run_dynamic_lstm
from host.layer_runner import LayerReport, LayerRunner, OffloadSummary, OffloadWarning
from host.macs import operation_macs
from host.pt2e import OffloadedPT2E, is_pt2e, offload_pt2e
from host.quant import InputQParams, extract_layer, transpose_geometry
from sim.golden.conv_transpose import zero_insert
from sim.golden.layers import QuantLayer

__all__ = ["LayerReport", "OffloadSummary", "OffloadWarning", "OffloadedModel", "offload"]

_LINEAR = (nnq.Linear,)  # nniq.LinearReLU is a subclass
_CONV = (nnq.Conv1d, nnq.Conv2d, nnq.ConvTranspose2d)  # the fused ReLU ones are subclasses
_SHAPE_ONLY = (nn.Flatten, nn.Identity, nn.Dropout)
_BOUNDARY = (nnq.Quantize, nnq.DeQuantize)
_BOUNDARY_CALLS = {("call_function", torch.quantize_per_tensor), ("call_method", "dequantize")}


@dataclass
class _QValue:
    """A quantized activation in the int8 domain: on the device (2-D) or on the host."""

    scale: float
    zero_point: int  # quint8, as torch keeps it
    shape: tuple[int, ...]
    host: np.ndarray | None = None
    buffer: DeviceBuffer | None = None


def offload(
    qmodel: nn.Module, device: Device, *, engine: str | Mapping[str, str] = "auto"
) -> OffloadedModel | OffloadedPT2E:
    """An ``nn.Module`` running `qmodel` with its quantized layers on `device` (module doc).

    `engine` picks the engine of each int8-output GEMM (`host.engine_choice`): ``"auto"`` (the
    fewer predicted cycles), ``"dense"`` or ``"sparse"`` for every layer, or a mapping from
    layer names (as the report names them) to those, ``"*"`` for the rest (default auto).

    Raises
    ------
    TypeError
        `qmodel` is not an ``nn.Module`` or `device` not a `host.device.Device`.
    ValueError
        `qmodel` holds no quantized Linear or Conv2d (quantize it first: `host.quantize` or
        torch.ao's convert), or torch.fx cannot trace it (the message says why); an `engine`
        that is not one of ``"auto"``, ``"dense"``, ``"sparse"``.
    """
    if not isinstance(qmodel, nn.Module):
        raise TypeError(f"qmodel must be a torch.nn.Module, not {type(qmodel)!r}")
    if not isinstance(device, Device):
        raise TypeError(f"device must be a host.device.Device, not {type(device)!r}")
    if is_pt2e(qmodel):
        return offload_pt2e(qmodel, device, engine)
    try:
        graph = fx.symbolic_trace(qmodel)
    except Exception as error:  # torch.fx raises many kinds; say which model and why
        raise ValueError(
            f"torch.fx cannot trace {type(qmodel).__name__}: {error}; offload needs a model "
            "whose forward has no data-dependent control flow"
        ) from error
    modules = dict(graph.named_modules())
    on_device, dynamic = _layers_on_device(modules)
    offloaded = [
        node.target
        for node in graph.graph.nodes
        if node.op == "call_module" and node.target in on_device
    ]
    unmodeled = sorted(name for name, layer in dynamic.items() if layer.kernel is None)
    if not offloaded and unmodeled:
        raise ValueError(
            f"{type(qmodel).__name__}'s dynamic-quantized layers ({', '.join(unmodeled)}) "
            f"run a kernel whose numerics are not modeled (under torch's quantized engine "
            f"{torch.backends.quantized.engine!r}); quantize and run the model under the engine "
            "'x86', 'fbgemm' or 'qnnpack' (host.dynamic)"
        )
    if not offloaded:
        raise ValueError(
            f"{type(qmodel).__name__} holds no quantized Linear or Conv2d layer; quantize it "
            "first (host.quantize, torch.ao.quantization.convert, or quantize_dynamic)"
        )
    on_cpu = sorted(
        {
            _describe(node, modules)
            for node in graph.graph.nodes
            if node.op in ("call_module", "call_function", "call_method")
            and (node.op, node.target) not in _BOUNDARY_CALLS
            and not (
                node.op == "call_module"
                and (
                    node.target in on_device
                    or isinstance(modules[node.target], _SHAPE_ONLY + _BOUNDARY)
                )
            )
        }
    )
    if on_cpu:
        warnings.warn(
            f"these operations of {type(qmodel).__name__} run on the CPU, not on the "
            f"accelerator: {', '.join(on_cpu)}",
            OffloadWarning,
            stacklevel=2,
        )
    return OffloadedModel(graph, device, on_cpu, dynamic, engine)


def _layers_on_device(
    modules: dict[str, nn.Module],
) -> tuple[set[str], dict[str, DynamicLinear | DynamicLSTM]]:
    """The modules `offload` runs on the accelerator, and the dynamic Linears' and LSTMs'
    parameters (those whose kernel is not modeled stay on the CPU, `host.dynamic`)."""
    dynamic: dict[str, DynamicLinear | DynamicLSTM] = {}
    for name, module in modules.items():
        if is_integer_dynamic_linear(module):
            dynamic[name] = DynamicLinear.of(module)
        elif is_integer_dynamic_lstm(module):
            dynamic[name] = DynamicLSTM.of(module)
    static = {
        name
        for name, module in modules.items()
        if isinstance(module, _LINEAR + _CONV) and not isinstance(module, nnqd.Linear)
    }
    return static | {name for name, layer in dynamic.items() if layer.kernel}, dynamic


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module" and is_integer_dynamic_linear(modules[node.target]):
        return f"{node.target} (dynamic Linear, kernel not modeled)"
    if node.op == "call_module" and is_integer_dynamic_lstm(modules[node.target]):
        return f"{node.target} (dynamic LSTM, kernel not modeled)"
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    target = node.target if isinstance(node.target, str) else node.target.__name__
    return f"{target} ({node.op})"


class OffloadedModel(nn.Module):
    """`offload`'s result: the traced graph, run with its layers on the device.

    Attributes
    ----------
    device : host.device.Device
    on_cpu : list of str
        The operations that run on the CPU (besides the float boundary).
    """

    def __init__(
        self,
        graph: fx.GraphModule,
        device: Device,
        on_cpu: list[str],
        dynamic: dict[str, DynamicLinear | DynamicLSTM] | None = None,
        engine: str | Mapping[str, str] = "auto",
    ):
        super().__init__()
        self.graph_module = graph
        self.device = device
        self.on_cpu = on_cpu
        self._modules_by_name = dict(graph.named_modules())
        self._layers: dict[tuple[str, float, int], QuantLayer] = {}
        self._dynamic = {name: layer for name, layer in (dynamic or {}).items() if layer.kernel}
        self.layers = LayerRunner(device, engine)
        self._holders: dict[DeviceBuffer, int] = {}  # values sharing a buffer, when above 1

    def forward(self, *inputs: torch.Tensor):
        """``qmodel(*inputs)``, with the quantized layers run on the device."""
        placeholders = [n for n in self.graph_module.graph.nodes if n.op == "placeholder"]
        if len(inputs) != len(placeholders):
            names = ", ".join(n.name for n in placeholders)
            raise TypeError(
                f"the model takes {len(placeholders)} inputs ({names}), not {len(inputs)}"
            )
        given = dict(zip((n.name for n in placeholders), inputs, strict=True))
        self.layers.start()
        values: dict[str, object] = {}
        users = _last_uses(self.graph_module.graph)
        result = None
        try:
            for node in self.graph_module.graph.nodes:
                if node.op == "placeholder":
                    values[node.name] = given[node.name]
                elif node.op == "output":
                    result = fx.node.map_arg(node.args[0], lambda n: self._torch(values[n.name]))
                else:
                    values[node.name] = self._node(node, values)
                for done in users.get(node.name, ()):
                    self._drop(values.pop(done, None))
        finally:
            for value in values.values():
                self._drop(value)
        return result

    def report(self) -> list[LayerReport]:
        """The offloaded layers of the last forward, in order."""
        return self.layers.report()

    def summary(self) -> OffloadSummary:
        """MACs on the accelerator and the CPU, cycles and host<->device bytes of the last
        forward."""
        return self.layers.summary()

    # ---------------------------------------------------------------------------------------
    def _node(self, node: fx.Node, values: dict[str, object]):
        if node.op == "get_attr":
            return getattr(self.graph_module, node.target)
        if node.op == "call_module":
            module = self._modules_by_name[node.target]
            if node.target in self._dynamic:
                return self._run_dynamic(node, values)
            if isinstance(module, _LINEAR) and not isinstance(module, nnqd.Linear):
                return self._linear(node.target, module, values[node.args[0].name])
            if isinstance(module, _CONV):
                return self._conv(node.target, module, values[node.args[0].name])
            if isinstance(module, _SHAPE_ONLY) and isinstance(values[node.args[0].name], _QValue):
                return self._reshape(module, values[node.args[0].name])
        args = fx.node.map_arg(node.args, lambda n: self._torch(values[n.name]))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self._torch(values[n.name]))
        if node.op == "call_module":
            operation = self._modules_by_name[node.target]
            result = operation(*args, **kwargs)
        elif node.op == "call_function":
            operation = node.target
            result = operation(*args, **kwargs)
        else:
            operation = node.target
            result = getattr(args[0], node.target)(*args[1:], **kwargs)
        macs = operation_macs(operation, tuple(args), result)
        if macs:
            self.layers.count_cpu(_describe(node, self._modules_by_name), macs)
        return result

    def _layer(self, name: str, module: nn.Module, value: _QValue) -> QuantLayer:
        key = (name, value.scale, value.zero_point)
        if key not in self._layers:
            self._layers[key] = extract_layer(module, InputQParams(value.scale, value.zero_point))
        return self._layers[key]

    def _linear(self, name: str, module: nn.Module, value) -> _QValue:
        value = self._quantized(value, name)
        layer = self._layer(name, module, value)
        if len(value.shape) != 2:
            raise ValueError(
                f"{name}: a quantized Linear on the accelerator takes [batch, features], not "
                f"{list(value.shape)}"
            )
        buffer = self._on_device(value)
        out = self.layers.linear(name, buffer, layer)
        return _QValue(float(module.scale), int(module.zero_point), out.shape, buffer=out)

    def _run_dynamic(self, node: fx.Node, values: dict[str, object]):
        """A dynamic Linear or LSTM (`host.dynamic`, `host.dynamic_lstm`): float in and out."""
        args = fx.node.map_arg(node.args, lambda n: self._torch(values[n.name]))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self._torch(values[n.name]))
        layer = self._dynamic[node.target]
        if isinstance(layer, DynamicLSTM):
            return run_dynamic_lstm(self.layers, node.target, layer, *args, **kwargs)
        return run_dynamic_linear(self.layers, node.target, args[0], layer)

    def _conv(self, name: str, module: nn.Module, value) -> _QValue:
        value = self._quantized(value, name)
        layer = self._layer(name, module, value)
        x = self._host(value)
        if isinstance(module, nnq.ConvTranspose2d):
            out = self._conv_transpose(name, module, layer, x)
        elif isinstance(module, nnq.Conv1d):
            out = self.layers.conv1d(name, x, layer)
        else:
            out = self.layers.conv(name, x, layer, "conv2d")
        return _QValue(float(module.scale), int(module.zero_point), out.shape, host=out)

    def _conv_transpose(self, name, module, layer: QuantLayer, x: np.ndarray) -> np.ndarray:
        """A ConvTranspose2d as a conv over its zero-inserted input (`sim.golden.conv_transpose`);
        the report counts the layer's own MACs (input positions x K), not the inserted zeros'."""
        try:
            padded = zero_insert(x, transpose_geometry(module), layer.in_zero_point)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        own = x.shape[0] * x.shape[2] * x.shape[3] * layer.in_features
        return self.layers.conv(name, padded, layer, "conv_transpose2d", own)

    def _reshape(self, module: nn.Module, value: _QValue) -> _QValue:
        if isinstance(module, nn.Flatten):
            shape = _flattened(value.shape, module.start_dim, module.end_dim)
        else:
            shape = value.shape  # Identity; Dropout is the identity in eval
        if value.buffer is not None and len(shape) == 2 and shape == value.buffer.shape:
            return self._share(value, shape)
        data = self._host(value).reshape(shape)
        return _QValue(value.scale, value.zero_point, shape, host=data)

    # Conversions ---------------------------------------------------------------------------
    def _quantized(self, value, name: str) -> _QValue:
        if isinstance(value, _QValue):
            return value
        if not isinstance(value, torch.Tensor) or not value.is_quantized:
            raise ValueError(
                f"{name}: the quantized layer received a float tensor; the model must quantize "
                "its input first (a QuantStub, as host.quantize adds)"
            )
        if value.dtype != torch.quint8 or value.qscheme() != torch.per_tensor_affine:
            raise ValueError(f"{name}: expected a per-tensor quint8 input, not {value.dtype}")
        data = (value.int_repr().numpy().astype(np.int16) - 128).astype(np.int8)
        return _QValue(float(value.q_scale()), int(value.q_zero_point()), data.shape, host=data)

    def _on_device(self, value: _QValue) -> DeviceBuffer:
        if value.buffer is None:
            value.buffer = self.device.upload(np.ascontiguousarray(value.host))
        return value.buffer

    def _host(self, value: _QValue) -> np.ndarray:
        if value.host is None:
            value.host = self.device.download(value.buffer).reshape(value.shape)
        return value.host

    def _torch(self, value):
        if not isinstance(value, _QValue):
            return value
        quint8 = (self._host(value).astype(np.int16) + 128).astype(np.uint8)
        return torch._make_per_tensor_quantized_tensor(
            torch.from_numpy(quint8), value.scale, value.zero_point
        )

    def _share(self, value: _QValue, shape: tuple[int, ...]) -> _QValue:
        """A view of `value`'s device buffer with another shape (counted, `_drop`)."""
        self._holders[value.buffer] = self._holders.get(value.buffer, 1) + 1
        return _QValue(value.scale, value.zero_point, shape, buffer=value.buffer)

    def _drop(self, value) -> None:
        """Free the device memory of a value nothing needs any more (once no view holds it)."""
        if isinstance(value, _QValue) and value.buffer is not None:
            buffer, value.buffer = value.buffer, None
            holders = self._holders.pop(buffer, 1) - 1
            if holders:
                self._holders[buffer] = holders
            else:
                self.device.release(buffer)


def _flattened(shape: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    rank = len(shape)
    start, end = start % rank, end % rank
    middle = int(np.prod(shape[start : end + 1]))
    return (*shape[:start], middle, *shape[end + 1 :])


def _last_uses(graph: fx.Graph) -> dict[str, list[str]]:
    """For each node, the values whose last user it is (they can be freed after it)."""
    last: dict[str, str] = {}
    for node in graph.nodes:
        for used in node.all_input_nodes:
            last[used.name] = node.name
    freed: dict[str, list[str]] = {}
    for value, user in last.items():
        freed.setdefault(user, []).append(value)
    return freed
