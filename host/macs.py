"""Multiply-accumulates of the operations an offloaded model leaves on the CPU.

`offload`'s report states each model's MACs on the accelerator and on the CPU. The accelerator's
are its GEMMs' useful M x N x K (`host.offload`); this module counts the CPU's from an
operation and the shapes of its inputs and output, after it ran:

- Linear (float, quantized, dynamic-quantized): output elements x in_features;
- ConvNd (float or quantized, any groups): output elements x in_channels/groups x kernel size;
- ConvTransposeNd: input elements x out_channels/groups x kernel size;
- ``torch.matmul`` / ``bmm`` / ``@`` and ``F.linear``: output elements x the shared dimension;
- RNN / LSTM / GRU: per layer and direction, time steps x batch x gates x hidden x
  (input + hidden) (the gates' two matmuls).

Element-wise operations, pooling, additions, concatenation and reshapes count 0 MACs (they are
named in the offload warning and their time is in the CPU's share of the wall time, not here).

`cpu_flop_counter()` is torch's ``FlopCounterMode`` (2 FLOPs per MAC), which counts the aten
operations of a PT2E graph, taught the one it misses on the CPU: scaled-dot-product attention
(``_scaled_dot_product_flash_attention_for_cpu``: L x S x (E + Ev) MACs per batch and head).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["cpu_flop_counter", "operation_macs"]

#: Gate count of a recurrent layer by its ``mode`` (torch's float and dynamic-quantized RNNs).
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def operation_macs(operation: object, args: tuple, output: object) -> int:
    """MACs of one operation (a module, a function or a method name) given its positional
    `args` and its `output`; 0 for an operation that multiplies no matrices."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    result = output[0] if isinstance(output, tuple) else output
    if not tensors or not isinstance(result, torch.Tensor):
        return 0
    if isinstance(operation, nn.Module):
        return _module_macs(operation, tensors[0], result)
    if operation in (torch.matmul, torch.bmm, operator.matmul, "matmul", "bmm", "__matmul__"):
        return result.numel() * tensors[0].shape[-1] if tensors[0].ndim else 0
    if operation is F.linear and len(tensors) >= 2:
        return result.numel() * tensors[1].shape[-1]
    return 0


def _module_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    mode = getattr(module, "mode", None)
    if isinstance(mode, str) and mode in _GATES and hasattr(module, "hidden_size"):
        return _recurrent_macs(module, x, _GATES[mode])
    if all(hasattr(module, a) for a in ("kernel_size", "groups", "in_channels", "out_channels")):
        kernel = math.prod(module.kernel_size)
        if getattr(module, "transposed", False):
            return x.numel() * module.out_channels // module.groups * kernel
        return y.numel() * module.in_channels // module.groups * kernel
    in_features = getattr(module, "in_features", None)
    if isinstance(in_features, int) and hasattr(module, "out_features"):
        return y.numel() * in_features
    return 0


def _recurrent_macs(module: nn.Module, x: torch.Tensor, gates: int) -> int:
    steps_batch = x.shape[0] * x.shape[1] if x.ndim == 3 else x.shape[0]  # unbatched: [L, H]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else hidden * directions
        total += directions * steps_batch * gates * hidden * (inputs + hidden)
    return total


def cpu_flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention (module doc)."""
    attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    return FlopCounterMode(display=False, custom_mapping={attention: _attention_flops})


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(q k^T) v from the shapes [..., L, E], [..., S, E], [..., S, Ev]."""
    batch = math.prod(query[:-2])
    return 2 * batch * query[-2] * key[-2] * (query[-1] + value[-1])
