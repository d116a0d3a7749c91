"""A small transformer encoder block on the digits, whose Linear layers are quantized and offloaded.

The 8x8 image is read as a sequence of 8 tokens (its rows) of 8 pixels. ``DigitTransformer``
embeds each token (Linear 8 -> 32) and adds a learned position embedding, runs one pre-norm
encoder block (LayerNorm, 2-head self-attention, residual add; LayerNorm, FFN 32 -> 64 -> 32 with
ReLU, residual add), averages the tokens, normalizes them and classifies them (Linear 32 -> 10
logits). 9,482 parameters.

Only the Linear layers are meant for the int8 accelerator; everything between them (softmax,
LayerNorm, residual adds, reshapes, the mean) stays float32 on the host. In torch.ao's eager
flow that split is written into the model: every Linear sits in an `OffloadedLinear`, a
``QuantStub`` -> ``nn.Sequential(Linear[, ReLU])`` -> ``DeQuantStub`` island, and the LayerNorms
carry ``qconfig = None`` (eager quantization would otherwise swap them for quantized LayerNorms,
which reject float inputs). Because the model has its own stubs, `host.quantize` does not wrap it
in a ``QuantWrapper``: it fuses the FFN's Linear + ReLU, calibrates one activation scale per
island and converts every Linear to ``torch.ao.nn.quantized.Linear`` (``LinearReLU`` for the FFN's
first layer), while the float ops keep running on float tensors.

The attention is written out with four ``nn.Linear`` projections (q, k, v, out), not
``nn.MultiheadAttention``, whose quantized form is a different module.
"""

from __future__ import annotations

import math

import torch
import torch.ao.quantization as tq
from torch import nn

__all__ = ["DigitTransformer", "EncoderBlock", "OffloadedLinear", "SelfAttention"]


class OffloadedLinear(nn.Module):
    """A Linear (optionally followed by ReLU) between a QuantStub and a DeQuantStub.

    Float in, float out, any leading dimensions: the input is flattened to rows [M, in_features]
    before the ``QuantStub`` (so the quantized layer sees a plain matrix, as the accelerator
    does) and reshaped back after the ``DeQuantStub``. Before quantization it computes exactly
    ``relu(linear(x))`` or ``linear(x)``.

    Attributes
    ----------
    quant, dequant:
        The stubs; `host.quantize` turns them into ``Quantize`` / ``DeQuantize``.
    layers:
        ``nn.Sequential(Linear)`` or ``nn.Sequential(Linear, ReLU)``, fused and converted to
        ``torch.ao.nn.quantized.Linear`` or ``torch.ao.nn.intrinsic.quantized.LinearReLU``.
    """

    def __init__(self, in_features: int, out_features: int, *, relu: bool = False) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        linear = nn.Linear(in_features, out_features)
        self.layers = nn.Sequential(linear, nn.ReLU()) if relu else nn.Sequential(linear)
        self.dequant = tq.DeQuantStub()
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.dequant(self.layers(self.quant(x.reshape(-1, self.in_features))))
        # Concatenated, not unpacked: torch.fx (host.offload) cannot iterate a traced shape.
        return rows.reshape(x.shape[:-1] + (self.out_features,))  # noqa: RUF005


def _float_layer_norm(width: int) -> nn.LayerNorm:
    """A LayerNorm that eager quantization leaves in float (``qconfig = None``)."""
    norm = nn.LayerNorm(width)
    norm.qconfig = None
    return norm


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with quantized q/k/v/out projections.

    Input and output [B, T, d_model], float. The score matrix, softmax and the weighted sum of
    values stay float (they multiply two activations, which the weight-stationary int8 layers
    here do not cover).
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model must be a multiple of heads ({heads}), not {d_model}")
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = OffloadedLinear(d_model, d_model)
        self.k = OffloadedLinear(d_model, d_model)
        self.v = OffloadedLinear(d_model, d_model)
        self.out = OffloadedLinear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, d_model = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, heads, T, head_dim]
            return t.reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        mixed = torch.softmax(scores, dim=-1) @ v
        return self.out(mixed.transpose(1, 2).reshape(batch, tokens, d_model))


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: x + attn(ln1(x)), then x + ffn(ln2(x))."""

    def __init__(self, d_model: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.norm1 = _float_layer_norm(d_model)
        self.attention = SelfAttention(d_model, heads)
        self.norm2 = _float_layer_norm(d_model)
        self.ffn1 = OffloadedLinear(d_model, ffn, relu=True)
        self.ffn2 = OffloadedLinear(ffn, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn2(self.ffn1(self.norm2(x)))


class DigitTransformer(nn.Module):
    """Token embedding, one `EncoderBlock`, mean over tokens, LayerNorm, Linear: logits.

    Parameters
    ----------
    tokens, token_features:
        The input image [B, 1, H, W] is read as ``tokens`` tokens of ``token_features`` values
        (row-major); ``tokens * token_features`` must equal H * W. 8 x 8 reads the rows of an
        8x8 digit.
    d_model, heads, ffn:
        Width of the block, attention heads, hidden width of the feed-forward network.
    classes:
        Number of logits.
    """

    def __init__(
        self,
        tokens: int = 8,
        token_features: int = 8,
        d_model: int = 32,
        heads: int = 2,
        ffn: int = 64,
        classes: int = 10,
    ) -> None:
        super().__init__()
        sizes = {
            "tokens": tokens,
            "token_features": token_features,
            "d_model": d_model,
            "heads": heads,
            "ffn": ffn,
            "classes": classes,
        }
        for name, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.tokens = tokens
        self.token_features = token_features
        self.embed = OffloadedLinear(token_features, d_model)
        self.position = nn.Parameter(torch.zeros(tokens, d_model))
        self.block = EncoderBlock(d_model, heads, ffn)
        self.norm = _float_layer_norm(d_model)
        self.head = OffloadedLinear(d_model, classes)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No Python-level shape check: the forward must stay traceable by torch.fx (host.offload).
        # A wrong size fails in reshape, whose message names both shapes.
        sequence = x.reshape(x.shape[0], self.tokens, self.token_features)
        hidden = self.block(self.embed(sequence) + self.position)
        return self.head(self.norm(hidden.mean(dim=1)))
