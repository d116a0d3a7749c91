"""torchvision's quantizable classifiers, quantized by torch's own eager or FX flow.

Models nobody on the project wrote, for the offload tests and ``bench/offload_zoo.py``:
ResNet-18, MobileNetV2 and ShuffleNetV2 x0.5 (``torchvision.models.quantization``), random
init (seeded), calibrated on seeded random images, quantized for qnnpack:

- ``"eager"``: ``fuse_model()``, ``torch.ao.quantization.prepare`` / ``convert``, as torchvision's
  own quantized weights were made;
- ``"fx"``: ``torch.ao.quantization.quantize_fx.prepare_fx`` / ``convert_fx`` of the same float
  model with the default qnnpack ``QConfigMapping``;
- ``"pt2e-xnnpack"``, ``"pt2e-x86"``: ``torch.export`` (batch dimension dynamic), torchao's
  ``prepare_pt2e`` / ``convert_pt2e`` with its XNNPACKQuantizer (symmetric, per channel) or
  X86InductorQuantizer (default config): the flow torch recommends now that torch.ao's eager
  and FX flows are deprecated.

torchvision on the CPU build of torch 2.13: PyPI's torchvision 0.28.0 (the release made for
torch 2.13) is built against the CUDA build, so its C++ operator library (``_C.so``) cannot load
here. torchvision tolerates that (its detection ops raise "Couldn't load custom C++ ops" when
called) except for two ``register_fake`` calls on ``torchvision::nms`` and ``torchvision::qnms``
at import. `import_torchvision` declares those two schemas, with no kernels, when the library is
absent, so the pure-Python model definitions import. The classifiers use no torchvision op.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable
from types import ModuleType

import torch
from torch import nn

#: Model names and the ``torchvision.models.quantization`` builders they stand for.
ZOO = ("resnet18", "mobilenet_v2", "shufflenet_v2_x0_5")

#: Quantization flows `quantized_model` knows.
FLOWS = ("eager", "fx", "pt2e-xnnpack", "pt2e-x86")

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared: list[torch.library.Library] = []  # kept alive: a Library's definitions die with it


def import_torchvision() -> ModuleType:
    """``torchvision``, imported on the CPU build of torch (module doc).

    Raises
    ------
    ImportError
        torchvision is not installed (``pip install -e ".[models]"``).
    """
    if importlib.util.find_spec("torchvision") is None:
        raise ImportError(
            'torchvision is not installed; install the "models" extra: pip install -e ".[models]"'
        )
    if not _declared and not _operator_library_loads():
        library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            library.define(schema)
        _declared.append(library)
    return importlib.import_module("torchvision")


def _operator_library_loads() -> bool:
    """Whether torchvision's ``_C`` library loads beside this torch (then it declares its ops)."""
    location = importlib.util.find_spec("torchvision").submodule_search_locations[0]
    library = next(
        (name for name in os.listdir(location) if name.startswith("_C.") and name != "_C.pyi"),
        None,
    )
    if library is None:
        return False
    try:
        torch.ops.load_library(os.path.join(location, library))
    except (OSError, RuntimeError):
        return False
    return True


def float_model(name: str, seed: int = 0) -> nn.Module:
    """The float, quantizable torchvision model `name` (one of `ZOO`), seeded random init, eval."""
    builder = _builder(name)
    torch.manual_seed(seed)
    return builder(weights=None, quantize=False).eval()


def random_images(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """`count` seeded random float images [count, 3, size, size], standard normal."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, not {count!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32 (the models downsample by 32), not {size!r}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, size, size, generator=generator)


def quantized_model(name: str, flow: str, calibration: torch.Tensor, seed: int = 0) -> nn.Module:
    """torchvision model `name` quantized by `flow` (one of `FLOWS`: for qnnpack, or by a PT2E
    quantizer), calibrated on the float images `calibration` [B, 3, H, W].

    Raises
    ------
    ValueError
        `name` not in `ZOO`, `flow` not in `FLOWS`, or `calibration` not a float [B, 3, H, W].
    """
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {FLOWS}, not {flow!r}")
    if (
        not isinstance(calibration, torch.Tensor)
        or not calibration.is_floating_point()
        or calibration.ndim != 4
        or calibration.shape[1] != 3
    ):
        raise ValueError("calibration must be a float tensor [batch, 3, height, width]")
    model = float_model(name, seed)
    torch.backends.quantized.engine = "qnnpack"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
        warnings.filterwarnings("ignore", message=".*must run observer before calling")
        warnings.filterwarnings("ignore", message="XNNPACKQuantizer is deprecated")
        if flow.startswith("pt2e"):
            return _pt2e(model, calibration, flow.removeprefix("pt2e-"))
        return _eager(model, calibration) if flow == "eager" else _fx(model, calibration)


def _eager(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    from torch.ao import quantization as tq

    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("qnnpack")
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        model(calibration)
    return tq.convert(model, inplace=True).eval()


def _fx(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    prepared = prepare_fx(model, get_default_qconfig_mapping("qnnpack"), (calibration[:1],))
    with torch.no_grad():
        prepared(calibration)
    return convert_fx(prepared).eval()


def _pt2e(model: nn.Module, calibration: torch.Tensor, quantizer_name: str) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if quantizer_name == "xnnpack":
        from torchao.testing.pt2e._xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        quantizer = XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True)
        )
    else:
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        quantizer = X86InductorQuantizer().set_global(
            get_default_x86_inductor_quantization_config()
        )
    batch = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(model, (calibration,), dynamic_shapes=({0: batch},))
    prepared = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        prepared(calibration)
    return convert_pt2e(prepared)


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in ZOO:
        raise ValueError(f"name must be one of {ZOO}, not {name!r}")
    return getattr(importlib.import_module("torchvision.models.quantization"), name)
