"""A small CNN for the digits: two 3x3 convolutions and a linear classifier, returning logits.

``CNN`` is an ``nn.Sequential`` of named children: ``conv1`` (Conv2d 1->8, 3x3, padding 1) +
``relu1``, ``conv2`` (Conv2d 8->16, 3x3, stride 2, padding 1) + ``relu2``, ``flatten`` and ``fc``
(Linear -> 10 logits). It uses only what torch.ao's eager quantization converts and the host
lowers (Conv2d with groups=1 and zero padding, ReLU, Flatten, Linear; no pooling: the stride-2
convolution downsamples), and `host.quantize` fuses each convolution with its ReLU. On the 8x8
digits it has 3,818 parameters; it takes any square size (``image_size``), e.g. 28 for the
upscaled images.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["CNN"]


class CNN(nn.Sequential):
    """Conv3x3 + ReLU, strided Conv3x3 + ReLU, Flatten, Linear: logits [B, classes].

    Parameters
    ----------
    image_size:
        Side S of the square input images [B, 1, S, S].
    channels:
        Output channels of the two convolutions.
    classes:
        Number of logits.
    """

    def __init__(
        self, image_size: int = 8, channels: tuple[int, int] = (8, 16), classes: int = 10
    ) -> None:
        if not isinstance(image_size, int) or image_size < 2:
            raise ValueError(f"image_size must be an integer >= 2, not {image_size!r}")
        if len(channels) != 2 or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ValueError(f"channels must be two positive integers, not {channels!r}")
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive integer, not {classes!r}")
        first, second = channels
        reduced = (image_size - 1) // 2 + 1  # the stride-2 convolution, padding 1, kernel 3
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(1, first, 3, padding=1),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(first, second, 3, stride=2, padding=1),
                relu2=nn.ReLU(),
                flatten=nn.Flatten(),
                fc=nn.Linear(second * reduced * reduced, classes),
            )
        )
