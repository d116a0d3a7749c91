"""host.offload of grouped, depthwise and 1-D convolutions: bit-exact with torch on the device."""

import pytest
import torch
from accel_checks import native_config
from torch import nn

from hdl.config import AccelConfig
from host.device import Device
from host.offload import offload
from host.quant import quantize


def separable_cnn() -> nn.Module:
    """A MobileNet-style stack: full conv, depthwise, pointwise, grouped (3 groups), Linear."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ReLU(),
        nn.Conv2d(8, 12, 1),
        nn.ReLU(),
        nn.Conv2d(12, 6, 3, stride=2, groups=3),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 5),
    )


def conv1d_net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv1d(2, 6, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(6, 6, 3, stride=2, dilation=2, groups=3),
        nn.Flatten(),
        nn.Linear(6 * 6, 4),
    )


def transposed_net() -> nn.Module:
    """An encoder-decoder: strided conv down, transposed convs (grouped, output padding) up
    (torch.ao fuses no ReLU into a ConvTranspose2d, so none follows one here)."""
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.ConvTranspose2d(4, 2, 2, stride=1, dilation=2),
        nn.Flatten(),
        nn.Linear(2 * 10 * 10, 3),
    )


def images(seed: int, batch: int) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def signals(seed: int, batch: int) -> torch.Tensor:
    return torch.randn(batch, 2, 16, generator=torch.Generator().manual_seed(seed))


CASES = {
    "separable": (separable_cnn, images),
    "conv1d": (conv1d_net, signals),
    "transposed": (transposed_net, images),
}


@pytest.mark.parametrize("backend", ["golden", "verilator"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_grouped_depthwise_and_1d_convs_equal_torch_bit_for_bit(case, backend):
    make, inputs = CASES[case]
    qmodel = quantize(make(), inputs(0, 32))
    with Device(backend, native_config()) as device:
        offloaded = offload(qmodel, device)
        for seed in (1, 2):
            x = inputs(seed, 5) * 1.3
            assert torch.equal(offloaded(x), qmodel(x))
        report = offloaded.report()
    kinds = [entry.kind for entry in report]
    if case == "separable":
        # 4 columns: the depthwise conv's 8 groups in 2 chunks of 4, the grouped conv's 3
        # groups of 2 output channels in chunks of 2 and 1.
        assert kinds == [
            "conv2d",
            "conv2d chunk 1/2 of 8 groups",
            "conv2d chunk 2/2 of 8 groups",
            "conv2d",
            "conv2d chunk 1/2 of 3 groups",
            "conv2d chunk 2/2 of 3 groups",
            "linear",
        ]
        assert [(e.n, e.k) for e in report[1:3]] == [(4, 36), (4, 36)]
    elif case == "transposed":
        assert kinds == [
            "conv2d",
            "conv_transpose2d",  # 2 groups of 2 output channels fill the 4 columns at once
            "conv_transpose2d",
            "linear",
        ]
        # the layer's own MACs (input positions x C_in x kernel x C_out), not the zeros'
        assert report[2].macs == (5 * 8 * 8) * 4 * 4 * 2 < report[2].m * report[2].n * report[2].k
    else:
        assert kinds == [
            "conv1d",
            "conv1d chunk 1/2 of 3 groups",
            "conv1d chunk 2/2 of 3 groups",
            "linear",
        ]
    assert all(entry.cycles > 0 for entry in report)


def test_a_depthwise_conv_on_a_16x16_array_takes_16_groups_per_gemm():
    qmodel = quantize(separable_cnn(), images(0, 16))
    with Device("golden", AccelConfig(rows=16, cols=16)) as device:
        offloaded = offload(qmodel, device)
        x = images(5, 3)
        assert torch.equal(offloaded(x), qmodel(x))
        report = offloaded.report()
    assert [e.kind for e in report][1:3] == ["conv2d", "conv2d"]  # 8 groups: one chunk each
    assert (report[1].n, report[1].k) == (8, 72)


def test_a_conv1d_input_of_the_wrong_rank_is_named():
    qmodel = quantize(conv1d_net(), signals(0, 8))
    with Device("golden", AccelConfig(rows=4, cols=4)) as device:
        offloaded = offload(qmodel, device)
        with pytest.raises(
            ValueError,
            match=r"^module\.0: a Conv1d takes \[batch, channels, length\], not \[2, 2, 4, 16\]$",
        ):
            offloaded(torch.rand(2, 2, 4, 16))
