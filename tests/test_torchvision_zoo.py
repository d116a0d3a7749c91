"""torchvision's ResNet-18, MobileNetV2 and ShuffleNetV2 offloaded bit-exactly (small images).

Models nobody on the project wrote, random init, calibrated on random images, quantized by
torch's eager and FX flows (`models.torchvision_zoo`): the offloaded output equals torch's int8
model bit for bit, and >= 95 % of the MACs run on the accelerator. Each flow runs on each
model once, the mobile nets on both backends, ResNet-18 on golden (the default 16x16
configuration, 3x32x32 images); ``bench/offload_zoo.py`` runs every model and flow at the
acceptance size 3x64x64.
"""

import re

import pytest
import torch

from hdl.config import AccelConfig
from host.device import Device
from host.offload import OffloadWarning, offload
from models.torchvision_zoo import import_torchvision, quantized_model, random_images

import_torchvision()

#: What each model leaves on the CPU (no MACs: pooling, additions, channel shuffles).
CPU_OPERATIONS = {
    "resnet18": ("add_relu", "maxpool"),
    "mobilenet_v2": ("add",),  # "add.Tensor" in a PT2E graph
    "shufflenet_v2_x0_5": ("cat", "transpose"),
}


def offload_and_compare(name: str, flow: str, backend: str, config: AccelConfig):
    qmodel = quantized_model(name, flow, random_images(4, 32, seed=1))
    x = random_images(1, 32, seed=2)
    with Device(backend, config) as device:
        with pytest.warns(OffloadWarning) as caught:
            offloaded = offload(qmodel, device)
        with torch.no_grad():
            output, expected = offloaded(x), qmodel(x)
        summary = offloaded.summary()
    if flow.startswith("pt2e"):  # torch runs PT2E in float (host/pt2e.py): agreement, bounded
        assert int((output == expected).sum()) >= 0.95 * output.numel()
    else:
        assert torch.equal(output, expected)
    warning = str(caught[0].message)
    assert all(re.search(rf"\b{operation}\b", warning) for operation in CPU_OPERATIONS[name])
    assert summary.accelerator_share >= 0.95
    assert summary.accelerator_macs > 0
    return summary


#: Each flow on each model once, the mobile nets on both backends (ResNet-18 on the RTL takes
#: 40 s; bench/offload_zoo.py runs every model and flow on both).
RUNS = [
    ("resnet18", "eager", "golden"),
    ("resnet18", "fx", "golden"),
    ("mobilenet_v2", "fx", "golden"),
    ("mobilenet_v2", "eager", "verilator"),
    ("shufflenet_v2_x0_5", "eager", "golden"),
    ("shufflenet_v2_x0_5", "fx", "verilator"),
    ("mobilenet_v2", "pt2e-xnnpack", "golden"),
]


@pytest.mark.parametrize(("name", "flow", "backend"), RUNS)
def test_torchvision_models_offloaded_equal_torch_bit_for_bit(name, flow, backend):
    summary = offload_and_compare(name, flow, backend, AccelConfig())
    assert summary.bytes_to_device > summary.bytes_from_device > 0


def test_unknown_names_and_flows_are_refused():
    images = random_images(1, 32)
    with pytest.raises(ValueError, match=r"name must be one of .*, not 'vgg'"):
        quantized_model("vgg", "eager", images)
    with pytest.raises(ValueError, match=r"flow must be one of \('eager', .*\), not 'pt2'"):
        quantized_model("resnet18", "pt2", images)
    with pytest.raises(ValueError, match=r"size must be an int >= 32"):
        random_images(1, 16)
