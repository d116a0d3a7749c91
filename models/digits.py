"""scikit-learn's bundled digits as a seeded, stratified train/test split of torch tensors.

The data set ships inside scikit-learn (1797 grey-scale 8x8 images of the digits 0-9, pixel values
0..16), so nothing is downloaded at run time. `digits` scales the pixels to [0, 1], splits the
images per class with a seeded generator (the same split on every machine and every scikit-learn
version: it does not use scikit-learn's splitter), optionally upscales them to 28x28 (bilinear,
for the 784-input MLP), and sets aside a small stratified calibration subset of the training
split for post-training quantization.

Example::

    data = digits(image_size=28)
    data.train_x.shape      # torch.Size([1438, 1, 28, 28]), float32 in [0, 1]
    data.test_y[:5]         # int64 class labels
    host.quantize(model, data.calibration_x)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

__all__ = ["CLASSES", "NATIVE_SIZE", "Digits", "digits"]

#: Number of classes (the digits 0-9).
CLASSES = 10

#: Side of the images as they ship (8x8 pixels).
NATIVE_SIZE = 8

#: Largest pixel value of the raw data set (pixels are counts 0..16 of a 4x4 block).
_RAW_MAX = 16.0


@dataclass(frozen=True, eq=False)
class Digits:
    """One split of the digits data set, as float32 images [N, 1, S, S] and int64 labels [N].

    Attributes
    ----------
    train_x, train_y:
        The training split.
    test_x, test_y:
        The test split (about 20 % of every class).
    calibration_x, calibration_y:
        A stratified subset of the training split, for calibrating quantization observers.
    image_size:
        S, the side of every image (8 as shipped, or the size it was upscaled to).
    train_index, test_index, calibration_index:
        Positions of the images in ``sklearn.datasets.load_digits()`` (for traceability).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    calibration_x: torch.Tensor
    calibration_y: torch.Tensor
    image_size: int
    train_index: np.ndarray
    test_index: np.ndarray
    calibration_index: np.ndarray


def digits(
    image_size: int = NATIVE_SIZE,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    calibration_per_class: int = 20,
) -> Digits:
    """Load the digits, scaled to [0, 1], split per class with a seeded generator.

    Parameters
    ----------
    image_size:
        Side of the returned images: 8 leaves them as shipped; a larger value upscales them with
        bilinear interpolation (``align_corners=False``), e.g. 28 for a 784-input MLP.
    seed:
        Seed of the split; the same seed gives the same split everywhere.
    test_fraction:
        Share of every class that goes to the test split, rounded per class (0.2: 359 test and
        1438 training images).
    calibration_per_class:
        Training images of every class in the calibration subset (20: 200 images).

    Returns
    -------
    Digits
        Fresh tensors (the caller may modify them).

    Raises
    ------
    ValueError
        An argument is out of range.
    """
    if not isinstance(image_size, int) or image_size < NATIVE_SIZE:
        raise ValueError(f"image_size must be an integer >= {NATIVE_SIZE}, not {image_size!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction!r}")
    if not isinstance(calibration_per_class, int) or calibration_per_class < 1:
        raise ValueError(
            f"calibration_per_class must be a positive integer, not {calibration_per_class!r}"
        )
    images, labels = _raw_digits()
    rng = np.random.default_rng(seed)
    train_parts, test_parts, calibration_parts = [], [], []
    for label in range(CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(test_fraction * len(members))
        train_members = members[n_test:]
        if calibration_per_class > len(train_members):
            raise ValueError(
                f"calibration_per_class must be at most {len(train_members)} (the training "
                f"images of class {label}), not {calibration_per_class}"
            )
        test_parts.append(members[:n_test])
        train_parts.append(train_members)
        calibration_parts.append(train_members[:calibration_per_class])
    # Interleave the classes in a seeded order, so every prefix of a split is roughly balanced.
    train_index = rng.permutation(np.concatenate(train_parts))
    test_index = np.sort(np.concatenate(test_parts))
    calibration_index = rng.permutation(np.concatenate(calibration_parts))

    pixels = torch.from_numpy(images.astype(np.float32)).div_(_RAW_MAX).unsqueeze(1)
    if image_size != NATIVE_SIZE:
        pixels = functional.interpolate(
            pixels, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    targets = torch.from_numpy(labels.copy())

    def pick(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.from_numpy(index)
        return pixels[positions].contiguous(), targets[positions].contiguous()

    train_x, train_y = pick(train_index)
    test_x, test_y = pick(test_index)
    calibration_x, calibration_y = pick(calibration_index)
    return Digits(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        calibration_x=calibration_x,
        calibration_y=calibration_y,
        image_size=image_size,
        train_index=train_index,
        test_index=test_index,
        calibration_index=calibration_index,
    )


@functools.cache
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The images [1797, 8, 8] (float64, 0..16) and labels [1797] as scikit-learn ships them."""
    from sklearn.datasets import load_digits  # imported late: it takes a second or two

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels
