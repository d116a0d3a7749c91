"""Dynamic-quantized LSTMs (``quantize_dynamic`` of ``nn.LSTM``) with their gate GEMMs on the
device.

torch's ``quantized_lstm`` (aten/src/ATen/native/RNN.cpp, CPU) runs each layer and direction as:
the input projection of the whole sequence at once, ``x_proj = linear_ih(x)`` over [T * B, I]
(one dynamic quantization of all time steps), then per step
``gates = linear_hh(h).add_(x_proj[t])``, chunked in four: input, forget, cell and output gates
(sigmoid, sigmoid, tanh, sigmoid, in place), ``c = (f * c).add_(i * g)``, ``h = o * tanh(c)``;
a bidirectional layer runs the reverse direction over the reversed steps and concatenates the
two along the features; the next layer takes that sequence.

`run_dynamic_lstm` does the same: both projections are dynamic Linears (`host.dynamic`, bias
included, ``reduce_range`` as the module asks: version 2 and later), their GEMMs on the device,
and the element-wise gate arithmetic in torch with the same operations on tensors of the same
shapes, so the result equals torch's bit for bit (tests/test_dynamic_lstm.py). Which kernel
packed the weights is found as for a Linear: `DynamicLSTM.of` runs the module once on a short
probe sequence and keeps the kernel whose numerics reproduce it (None: the LSTM stays in
torch). Packed sequences, projections (``proj_size``) and training-mode dropout are not
lowered (the module stays in torch, named in the offload warning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn

from host.dynamic import DynamicLinear, forward_rows, host_product, matching_kernel
from host.layer_runner import LayerRunner

__all__ = ["DynamicLSTM", "is_integer_dynamic_lstm", "run_dynamic_lstm"]

#: (name of the layer and direction, dynamic Linear, float32 rows) -> float32 rows out.
Projection = Callable[[str, DynamicLinear, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DynamicLSTM:
    """The cells of a dynamic LSTM: for each layer, for each direction (forward, then reverse),
    its input and hidden projections; the module's shape options; the kernel (module doc)."""

    cells: tuple[tuple[tuple[DynamicLinear, DynamicLinear], ...], ...]
    hidden_size: int
    batch_first: bool
    kernel: str | None = None

    @classmethod
    def of(cls, module: nnqd.LSTM) -> DynamicLSTM:
        """The cells of `module` (`is_integer_dynamic_lstm`), with its kernel found by a probe."""
        if not is_integer_dynamic_lstm(module):
            raise ValueError(f"{type(module).__name__} is not a lowerable int8 dynamic LSTM")
        weights, biases = module.get_weight(), module.get_bias()
        reduce_range = (module.version or 0) >= 2
        layers = []
        for index in range(module.num_layers):
            suffixes = ("", "_reverse") if module.bidirectional else ("",)
            directions = []
            for suffix in suffixes:
                ih, hh = (
                    DynamicLinear.from_weight(
                        weights[f"weight_{kind}_l{index}{suffix}"],
                        biases[f"bias_{kind}_l{index}{suffix}"],
                        relu=False,
                        reduce_range=reduce_range,
                    )
                    for kind in ("ih", "hh")
                )
                directions.append((ih, hh))
            layers.append(tuple(directions))
        lstm = cls(tuple(layers), module.hidden_size, module.batch_first)
        probe = torch.from_numpy(
            np.random.default_rng(0).standard_normal((3, 2, module.input_size)).astype(np.float32)
        )
        if module.batch_first:
            probe = probe.transpose(0, 1).contiguous()
        with torch.no_grad():
            expected = module(probe)[0]
        kernel = matching_kernel(
            lambda name: lstm_forward(lstm, probe, None, _host_projection(name))[0], expected
        )
        return dataclasses.replace(lstm, kernel=kernel)


def is_integer_dynamic_lstm(module: nn.Module) -> bool:
    """Whether `module` is a dynamic LSTM that `run_dynamic_lstm` lowers: int8 weights with
    biases, no projection, no dropout in training."""
    return (
        isinstance(module, nnqd.LSTM)
        and module.dtype == torch.qint8
        and module.bias
        and not getattr(module, "proj_size", 0)
        and not (module.training and module.dropout)
    )


def run_dynamic_lstm(
    runner: LayerRunner,
    name: str,
    lstm: DynamicLSTM,
    x: torch.Tensor,
    hx: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``module(x, hx)`` for the dynamic LSTM `lstm` with its gate GEMMs on the device (module
    doc): float32 ``x`` [T, B, I] (or [B, T, I] with ``batch_first``; torch's dynamic LSTM
    takes no unbatched input either)."""
    if lstm.kernel is None:
        raise ValueError(f"{name}: its dynamic-quantized kernel is not modeled (host.dynamic)")
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.ndim != 3:
        what = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: a dynamic LSTM takes a float32 [T, B, I] tensor, not {what}")
    in_features = lstm.cells[0][0][0].in_features
    if x.shape[-1] != in_features:
        raise ValueError(f"{name}: the input has {x.shape[-1]} features, the LSTM {in_features}")

    def on_device(step: str, layer: DynamicLinear, rows: torch.Tensor) -> torch.Tensor:
        out = forward_rows(layer, lstm.kernel, rows, lambda c, w: runner.matmul_int32(step, c, w))
        return torch.from_numpy(out)

    return lstm_forward(lstm, x, hx, on_device, name)


def lstm_forward(
    lstm: DynamicLSTM,
    x: torch.Tensor,
    hx: tuple[torch.Tensor, torch.Tensor] | None,
    project: Projection,
    name: str = "lstm",
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The LSTM of torch's ``quantized_lstm`` (module doc), its projections by `project`."""
    x = x.detach()
    if lstm.batch_first:
        x = x.transpose(0, 1)
    steps, batch = x.shape[0], x.shape[1]
    directions = len(lstm.cells[0])
    if hx is None:
        zeros = torch.zeros(len(lstm.cells) * directions, batch, lstm.hidden_size)
        hx = (zeros, zeros)
    finals_h, finals_c = [], []
    sequence = x
    for index, layer in enumerate(lstm.cells):
        outputs = []
        for direction, (ih, hh) in enumerate(layer):
            cell = f"{name}.l{index}{'_reverse' if direction else ''}"
            slot = index * directions + direction
            flat = sequence.reshape(steps * batch, -1).contiguous()
            projected = project(f"{cell}.ih", ih, flat).reshape(steps, batch, -1)
            h, c = hx[0][slot], hx[1][slot]
            order = range(steps - 1, -1, -1) if direction else range(steps)
            hidden = [None] * steps
            for t in order:
                gates = project(f"{cell}.hh", hh, h.contiguous()).add_(projected[t])
                chunks = gates.unsafe_chunk(4, 1)
                ingate, forget = chunks[0].sigmoid_(), chunks[1].sigmoid_()
                cellgate, outgate = chunks[2].tanh_(), chunks[3].sigmoid_()
                c = (forget * c).add_(ingate * cellgate)
                h = outgate * c.tanh()
                hidden[t] = h
            outputs.append(torch.stack(hidden, 0))
            finals_h.append(h)
            finals_c.append(c)
        sequence = outputs[0] if directions == 1 else torch.cat(outputs, 2)
    h_n, c_n = torch.stack(finals_h, 0), torch.stack(finals_c, 0)
    if lstm.batch_first:
        sequence = sequence.transpose(0, 1)
    return sequence, (h_n, c_n)


def _host_projection(kernel: str) -> Projection:
    """A projection computed on the host with `kernel`'s numerics (the probe's)."""

    def project(_name: str, layer: DynamicLinear, rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(forward_rows(layer, kernel, rows, host_product))

    return project
