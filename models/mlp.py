"""The reference MLP: 784-128-10, returning logits.

``MLP`` is an ``nn.Sequential`` of named children ``flatten``, ``fc1``, ``relu``, ``fc2``, so it
takes images [B, 1, 28, 28] or flat rows [B, 784], and `host.quantize` fuses ``fc1`` + ``relu``
into one ``LinearReLU`` (it fuses Linear + ReLU pairs of ``nn.Sequential`` containers). The model
returns logits: train it with ``CrossEntropyLoss``, which applies log-softmax itself (a softmax
layer in front of that loss squashes the gradients and slows training down). 101,770 parameters.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Flatten, Linear(in, hidden), ReLU, Linear(hidden, classes): logits [B, classes].

    Parameters
    ----------
    in_features:
        Inputs per sample after flattening (784 = 28 x 28).
    hidden:
        Width of the hidden layer.
    classes:
        Number of logits.
    """

    def __init__(self, in_features: int = 784, hidden: int = 128, classes: int = 10) -> None:
        for name, value in (("in_features", in_features), ("hidden", hidden), ("classes", classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        super().__init__(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(in_features, hidden),
                relu=nn.ReLU(),
                fc2=nn.Linear(hidden, classes),
            )
        )
