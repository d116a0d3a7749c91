"""Seeded training of the reference models on the digits, with the trained weights cached on disk.

Every reference model has a `ModelSpec` in `SPECS`: its class and constructor arguments, the
image size it reads and its training hyper-parameters. `load` returns a trained model: from the
cache when an earlier run trained it, else it trains it (seconds on a 2-core CPU) and stores it.

Training is deterministic: the initial weights come from ``torch.manual_seed(spec.seed)`` (inside
``torch.random.fork_rng``, so the caller's global generator is left alone) and the mini-batch
order from a ``torch.Generator`` seeded alike; Adam on ``CrossEntropyLoss`` of the logits, with
a cosine-annealed learning rate. Two
trainings in the same environment (torch version, thread count) give identical weights.

Cache: ``sim.toolchain.cache_dir() / "models" / f"{name}-{key}.pt"`` (``$TESSERA_CACHE`` moves
it). ``key`` is a `sim.toolchain.content_hash` of the spec (class, arguments, hyper-parameters,
seeds, data split), the torch version, `CACHE_FORMAT` and the source files of the model, of this
module and of `models.digits`: changing any of them trains afresh under a new name. A file that
cannot be read back (truncated, not a checkpoint, another key, weights that do not fit) is
retrained with a `ModelCacheWarning`, never trusted; files are written to a temporary name and
renamed, so a crash mid-write leaves no half file under the final name.

Example::

    model, data, info = models.load("mlp")
    info.float_accuracy, info.from_cache     # e.g. 0.955, True on the second call
    qmodel = host.quantize(model, data.calibration_x)
    models.accuracy(qmodel, data.test_x, data.test_y)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from models.cnn import CNN
from models.digits import Digits, digits
from models.mlp import MLP
from models.mobilenet import MobileNet
from models.transformer import DigitTransformer
from sim.toolchain import cache_dir, content_hash

__all__ = [
    "CACHE_FORMAT",
    "SPECS",
    "ModelCacheWarning",
    "ModelSpec",
    "TrainInfo",
    "TrainedModel",
    "accuracy",
    "build",
    "cache_path",
    "load",
    "train",
]

#: Version of the checkpoint layout; part of every cache key.
CACHE_FORMAT = 1


class ModelCacheWarning(UserWarning):
    """A cached checkpoint could not be used and the model is being trained again."""


@dataclass(frozen=True)
class ModelSpec:
    """What a reference model is and how it is trained.

    Attributes
    ----------
    name:
        Key in `SPECS` and prefix of the cache file.
    factory:
        The model class (or any callable returning an ``nn.Module``).
    kwargs:
        Arguments of ``factory``.
    image_size:
        Side of the digits images the model reads (8 as shipped, 28 upscaled).
    epochs, batch_size, lr, weight_decay:
        Adam on ``CrossEntropyLoss``, ``epochs`` passes over the training split in mini-batches
        of ``batch_size``, the learning rate annealed from ``lr`` to 0 on a cosine.
    seed:
        Seed of the initial weights and of the mini-batch order.
    threads:
        torch's intra-op threads while training (None: whatever torch has); restored after.
        One thread also gives the same weights on machines with different core counts.
    """

    name: str
    factory: Callable[..., nn.Module]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    image_size: int = 8
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"name must be letters, digits, '_', '.' or '-', not {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"factory must be callable, not {self.factory!r}")
        for name in ("image_size", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ValueError(f"threads must be None or a positive integer, not {self.threads!r}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(
                f"lr must be > 0 and weight_decay >= 0, not {self.lr!r} and {self.weight_decay!r}"
            )

    def data(self) -> Digits:
        """The digits split this model trains and is tested on."""
        return digits(self.image_size)

    def cache_key(self) -> str:
        """Hash of everything that determines the trained weights (see the module docstring)."""
        sources = [
            Path(inspect.getfile(self.factory)).read_bytes(),
            Path(__file__).read_bytes(),
            Path(inspect.getfile(digits)).read_bytes(),
        ]
        described = {
            "format": CACHE_FORMAT,
            "factory": f"{self.factory.__module__}.{self.factory.__qualname__}",
            "kwargs": dict(self.kwargs),
            "spec": {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("factory", "kwargs")
            },
            "torch": str(torch.__version__),
        }
        return content_hash(described, sources)


#: The reference models by name.
SPECS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", MLP, {}, image_size=28, epochs=20, batch_size=64, lr=3e-3),
    "cnn": ModelSpec("cnn", CNN, {}, image_size=8, epochs=20, batch_size=64, lr=1e-2),
    "transformer": ModelSpec(
        "transformer", DigitTransformer, {}, image_size=8, epochs=20, batch_size=32, lr=3e-3
    ),
    # One thread: on the shared 2-core machine its many small depthwise convolutions trained in
    # 5 s on one thread and in 50-90 s on two (docs/models.md).
    "mobilenet": ModelSpec(
        "mobilenet", MobileNet, {}, image_size=8, epochs=40, batch_size=32, lr=5e-3, threads=1
    ),
}


@dataclass(frozen=True)
class TrainInfo:
    """How a trained model came about.

    Attributes
    ----------
    name, key:
        The spec's name and cache key.
    path:
        The checkpoint file.
    from_cache:
        True when the weights were read from ``path``, False when they were trained just now.
    train_seconds:
        Wall time of the training run that produced the weights (when it happened).
    float_accuracy:
        Accuracy of the float model on the test split, measured after training.
    parameters:
        Number of trainable parameters.
    """

    name: str
    key: str
    path: Path
    from_cache: bool
    train_seconds: float
    float_accuracy: float
    parameters: int


class TrainedModel(NamedTuple):
    """`load`'s result: ``model, data, info = models.load(name)``."""

    model: nn.Module
    data: Digits
    info: TrainInfo


def build(spec: ModelSpec | str) -> nn.Module:
    """A freshly initialized model of `spec` (by name or spec), seeded with ``spec.seed``."""
    spec = _spec(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return spec.factory(**spec.kwargs)


def train(model: nn.Module, data: Digits, spec: ModelSpec | str) -> nn.Module:
    """Train `model` in place on ``data``'s training split with `spec`'s hyper-parameters (on
    ``spec.threads`` threads when set).

    Returns the model, in eval mode. Deterministic for a given initial state and environment.
    """
    spec = _spec(spec)
    shuffle = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    samples = data.train_x.shape[0]
    steps = spec.epochs * math.ceil(samples / spec.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    model.train()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        torch.set_num_threads(spec.threads or threads)
        try:
            for _ in range(spec.epochs):
                order = torch.randperm(samples, generator=shuffle)
                for start in range(0, samples, spec.batch_size):
                    batch = order[start : start + spec.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(data.train_x[batch]), data.train_y[batch])
                    loss.backward()
                    optimizer.step()
                    schedule.step()
        finally:
            torch.set_num_threads(threads)
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Share of the samples ``x`` whose largest logit is the label ``y`` (float or quantized model).

    The model runs in eval mode under ``torch.no_grad``; its train/eval mode is restored after.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"x and y must hold the same, non-zero number of samples, not {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                logits = model(x[start : start + batch_size])
                correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / x.shape[0]


def cache_path(spec: ModelSpec | str) -> Path:
    """The checkpoint file of `spec` (it may not exist yet)."""
    spec = _spec(spec)
    return cache_dir() / "models" / f"{spec.name}-{spec.cache_key()}.pt"


def load(name: ModelSpec | str, *, retrain: bool = False) -> TrainedModel:
    """The trained float model of `name`, with its data split and a `TrainInfo`.

    Parameters
    ----------
    name:
        A key of `SPECS` (``"mlp"``, ``"cnn"``, ``"transformer"``, ``"mobilenet"``) or a
        `ModelSpec`.
    retrain:
        Train even when a checkpoint exists, and overwrite it.

    Returns
    -------
    TrainedModel
        ``(model, data, info)``; the model is in eval mode.

    Raises
    ------
    ValueError
        `name` is not a known model.
    """
    spec = _spec(name)
    data = spec.data()
    path = cache_path(spec)
    key = spec.cache_key()
    if not retrain and path.exists():
        model = build(spec)
        stored = _read_checkpoint(path, key, model)
        if stored is not None:
            return TrainedModel(
                model.eval(),
                data,
                TrainInfo(
                    name=spec.name,
                    key=key,
                    path=path,
                    from_cache=True,
                    train_seconds=float(stored["train_seconds"]),
                    float_accuracy=float(stored["float_accuracy"]),
                    parameters=_parameters(model),
                ),
            )
    model = build(spec)
    started = time.perf_counter()
    train(model, data, spec)
    seconds = time.perf_counter() - started
    info = TrainInfo(
        name=spec.name,
        key=key,
        path=path,
        from_cache=False,
        train_seconds=seconds,
        float_accuracy=accuracy(model, data.test_x, data.test_y),
        parameters=_parameters(model),
    )
    _write_checkpoint(path, key, model, info)
    return TrainedModel(model, data, info)


def _spec(spec: ModelSpec | str) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if spec not in SPECS:
        raise ValueError(f"model must be one of {', '.join(map(repr, SPECS))}, not {spec!r}")
    return SPECS[spec]


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _read_checkpoint(path: Path, key: str, model: nn.Module) -> dict[str, Any] | None:
    """Load `path` into `model`; on any failure warn and return None (the caller retrains)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(stored, dict) or stored.get("key") != key:
            raise ValueError(f"not a checkpoint of key {key}")
        model.load_state_dict(stored["state_dict"], strict=True)
        for entry in ("train_seconds", "float_accuracy"):
            if not math.isfinite(float(stored[entry])):
                raise ValueError(f"{entry} is not a finite number")
    except Exception as error:  # any unreadable or mismatched file is retrained, never trusted
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(
            f"cached model {path} is unusable ({type(error).__name__}: {reason}); training again",
            ModelCacheWarning,
            stacklevel=3,
        )
        return None
    return stored


def _write_checkpoint(path: Path, key: str, model: nn.Module, info: TrainInfo) -> None:
    """Write the checkpoint under a temporary name and rename it into place (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "key": key,
        "state_dict": model.state_dict(),
        "train_seconds": info.train_seconds,
        "float_accuracy": info.float_accuracy,
        "torch": str(torch.__version__),
        "python": sys.version.split()[0],
    }
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
