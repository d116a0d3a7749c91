"""Reference workloads: the MLP, two small CNNs and a transformer block, trained on the digits.

- `MLP` (``models.mlp``): 784-128-10 on the digits upscaled to 28x28, returning logits.
- `CNN` (``models.cnn``): two 3x3 convolutions and a linear classifier on the 8x8 digits.
- `MobileNet` (``models.mobilenet``): a 3x3 stem and three depthwise-separable blocks
  (depthwise 3x3 + pointwise 1x1), global average pool and a linear classifier on the 8x8 digits.
- `DigitTransformer` (``models.transformer``): one transformer encoder block on the 8 rows of an
  8x8 digit; its Linear layers are quantized (and offloaded), the rest stays float.
- `digits` (``models.digits``): scikit-learn's bundled digits as a seeded, stratified split.
- `load` (``models.training``): the trained model, trained on first use (seconds on a CPU) and
  cached on disk under ``sim.toolchain.cache_dir() / "models"``.

Example::

    import host, models

    model, data, info = models.load("mlp")            # float model, its data split, TrainInfo
    qmodel = host.quantize(model, data.calibration_x)
    models.accuracy(qmodel, data.test_x, data.test_y)  # int8 accuracy on the test split

See ``docs/models.md``.
"""

from models.cnn import CNN
from models.digits import Digits, digits
from models.mlp import MLP
from models.mobilenet import MobileNet
from models.training import (
    SPECS,
    ModelCacheWarning,
    ModelSpec,
    TrainedModel,
    TrainInfo,
    accuracy,
    build,
    cache_path,
    load,
    train,
)
from models.transformer import DigitTransformer

#: Names `load` accepts, in the order of the docs.
NAMES = tuple(SPECS)

__all__ = [
    "CNN",
    "MLP",
    "NAMES",
    "SPECS",
    "DigitTransformer",
    "Digits",
    "MobileNet",
    "ModelCacheWarning",
    "ModelSpec",
    "TrainInfo",
    "TrainedModel",
    "accuracy",
    "build",
    "cache_path",
    "digits",
    "load",
    "train",
]
