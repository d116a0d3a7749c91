"""host.prune: unstructured and 2:4 pruning of float models, gradual with fine-tuning, and its
bad input refused with the value named."""

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
from torch import nn

from host.prune import PruneWarning, prune, weight_sparsity
from host.quant import quantize
from sim.golden.sparse import is_24_sparse


def two_of_four(weight: torch.Tensor) -> bool:
    """Whether every group of four along the GEMM rows of a float weight holds two nonzeros at
    most, as the golden 2:4 format checks it."""
    rows = weight.detach().reshape(weight.shape[0], -1)
    return is_24_sparse((rows != 0).to(torch.int8).numpy())


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.75, 0.9, 0.95])
def test_unstructured_pruning_zeroes_the_smallest_weights_of_each_layer(sparsity):
    original = model()
    before = {name: p.detach().clone() for name, p in original.named_parameters()}
    pruned = prune(original, sparsity)
    for name, zeros in weight_sparsity(pruned).items():
        weight = dict(pruned.named_modules())[name].weight.detach()
        kept = weight != 0
        assert zeros == 1 - int(kept.sum()) / weight.numel()
        assert int((~kept).sum()) == round(sparsity * weight.numel())
        source = before[f"{name}.weight"]
        if sparsity and kept.any():  # every pruned magnitude is at most every kept one
            assert source[~kept].abs().max() <= source[kept].abs().min()
        assert torch.equal(weight[kept], source[kept])
    # the original is untouched and the pruned copy is a plain module again (masks removed)
    for name, p in original.named_parameters():
        assert torch.equal(p, before[name])
    assert not any(name.endswith("_orig") for name, _ in pruned.named_parameters())
    assert not pruned.training


def test_two_of_four_keeps_the_two_largest_of_every_group():
    pruned = prune(model(), 0.5, "2:4", layers=["3", "5"])  # conv "0" has K = 9
    for module in (pruned[3], pruned[5]):
        assert two_of_four(module.weight)


def test_pruned_zeros_stay_zero_through_int8_quantization():
    pruned = prune(model(), 0.9)
    calibration = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    qmodel = quantize(pruned, calibration, engine="qnnpack")
    float_weights = [m.weight for m in pruned.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    quantized = (nnq.Linear, nnq.Conv2d)  # the fused ReLU ones are subclasses
    int_weights = [m.weight().int_repr() for m in qmodel.modules() if isinstance(m, quantized)]
    assert len(int_weights) == len(float_weights)
    for fw, iw in zip(float_weights, int_weights, strict=True):
        assert torch.all(iw[fw == 0] == 0)


def test_gradual_pruning_fine_tunes_after_every_step_with_the_masks_held():
    seen = []
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(3))

    def fine_tune(m: nn.Module) -> None:
        seen.append(weight_sparsity(m)["3"])  # the masked weight torch's hook computes
        optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
        m.train()
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            optimizer.step()

    pruned = prune(model(), 0.9, fine_tune=fine_tune, steps=3)
    schedule = [0.9 * (1 - (1 - t / 3) ** 3) for t in (1, 2, 3)]
    assert seen == pytest.approx(schedule, abs=1e-3)
    assert weight_sparsity(pruned)["3"] == pytest.approx(0.9, abs=1e-4)  # training kept zeros
    untrained = prune(model(), 0.9, steps=3)
    assert weight_sparsity(untrained)["3"] == pytest.approx(0.9, abs=1e-4)
    assert not torch.equal(pruned[3].weight, untrained[3].weight)  # the fine-tuning ran


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, r"sparsity must be in \[0, 1\), not 1.0"),
        ({"sparsity": -0.1}, r"sparsity must be in \[0, 1\), not -0.1"),
        ({"sparsity": float("nan")}, r"sparsity must be in \[0, 1\), not nan"),
        ({"sparsity": "0.5"}, r"sparsity must be a number in \[0, 1\), not '0.5'"),
        ({"sparsity": True}, r"not True"),
        ({"sparsity": 0.5, "pattern": "4:8"}, "pattern must be one of 'unstructured', '2:4'"),
        ({"sparsity": 0.75, "pattern": "2:4"}, "sparsity must be 0.5, not 0.75"),
        ({"sparsity": 0.5, "steps": 0}, "steps must be an int of at least 1, not 0"),
        ({"sparsity": 0.5, "layers": ["5", "nope"]}, r"layers \['nope'\] are not"),
        ({"sparsity": 0.5, "layers": []}, r"layers \[\] are not"),
    ],
)
def test_bad_input_is_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune(model(), **kwargs)


def test_other_refusals():
    with pytest.raises(ValueError, match=r"layer '0' has K = 9 .* not a multiple of 4"):
        prune(model(), 0.5, "2:4", layers=["0", "3"])  # the 1-channel 3x3 conv: K = 9
    with pytest.warns(PruneWarning, match="left dense, their K is not a multiple of 4 .*: 0$"):
        unnamed = prune(model(), 0.5, "2:4")
    assert weight_sparsity(unnamed)["0"] < 0.5 and two_of_four(unnamed[3].weight)
    assert two_of_four(prune(model(), 0.5, "2:4", layers=["3", "5"])[3].weight)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        prune(np.zeros(3), 0.5)
    with pytest.raises(TypeError, match="fine_tune must be callable"):
        prune(model(), 0.5, fine_tune=3)
    with pytest.raises(ValueError, match="has no Linear or Conv2d layer"):
        prune(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(TypeError, match="not the string"):
        prune(model(), 0.5, layers="3")
