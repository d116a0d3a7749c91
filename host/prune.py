"""Pruning a float model for the sparse engine: `prune(model, sparsity, pattern)`.

`prune` returns a pruned copy of a float ``nn.Module`` (the original is left alone): in every
``nn.Linear`` and ``nn.Conv2d`` (or the layers named in ``layers``) the weight entries of
smallest magnitude are set to zero with torch's own pruning utilities
(``torch.nn.utils.prune``):

- ``"unstructured"``: ``l1_unstructured`` per layer, ``round(sparsity * entries)`` zeros in
  each weight;
- ``"2:4"``: in every group of four consecutive entries along a row of the GEMM weight (a
  Linear's input features; a conv's input channel x kernel window, as im2col orders them) the
  two of smallest magnitude are zeroed (``custom_from_mask``), the pattern of sparse tensor
  cores; ``sparsity`` must then be 0.5. A layer whose K is not a multiple of 4 (a first conv
  over one channel: K = 9) cannot be 2:4: named in ``layers`` it is a ValueError; otherwise it
  is left dense with a `PruneWarning` naming it.

With ``fine_tune`` (a callable that trains the model in place, e.g. a few epochs on the
digits) the pruned model is trained while torch's masks keep the pruned entries at zero. With
``steps`` > 1 unstructured pruning is gradual: the sparsity rises to its target on Zhu and
Gupta's cubic schedule (s_t = s (1 - (1 - t/steps)^3), "To prune, or not to prune", 2017), with
a fine-tuning after each step, which keeps far more accuracy at 90 % than one step. Then the
masks are made permanent (``prune.remove``), so the returned model's weights hold exact
zeros and ``host.quantize`` keeps them zero (symmetric int8 weights). `weight_sparsity` reports
the zeros per layer.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

__all__ = ["PATTERNS", "PruneWarning", "check_pruning", "prune", "weight_sparsity"]

#: The sparsity patterns `prune` makes.
PATTERNS = ("unstructured", "2:4")

_PRUNABLE = (nn.Linear, nn.Conv2d)


class PruneWarning(UserWarning):
    """A layer `prune` was not asked for by name is left unpruned (its shape breaks the pattern)."""


def prune(
    model: nn.Module,
    sparsity: float,
    pattern: str = "unstructured",
    *,
    fine_tune: Callable[[nn.Module], object] | None = None,
    steps: int = 1,
    layers: Iterable[str] | None = None,
) -> nn.Module:
    """A copy of `model` with the weights of its Linear/Conv2d layers pruned (module doc).

    Parameters
    ----------
    model : nn.Module
        A float model (not quantized yet).
    sparsity : float
        Share of each pruned weight's entries set to zero, in [0, 1) (0.5 for ``"2:4"``).
    pattern : str
        ``"unstructured"`` or ``"2:4"`` (`PATTERNS`).
    fine_tune : callable, optional
        Called with the pruned model (masks applied) to train it in place, after every
        pruning step; its result is ignored.
    steps : int
        Pruning steps of an unstructured pattern (the cubic schedule above), at least 1; a 2:4
        pattern is pruned in one.
    layers : iterable of str, optional
        Names (``model.named_modules()``) of the layers to prune; default every Linear and
        Conv2d.

    Raises
    ------
    TypeError
        `model` is not an ``nn.Module``, `fine_tune` not callable.
    ValueError
        A sparsity outside [0, 1) or not a number, an unknown pattern, a 2:4 sparsity other
        than 0.5, steps below 1, a 2:4 layer whose K is not a multiple of 4 (named), a name
        in `layers` that is not a Linear or Conv2d of the model, or a model without any such
        layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model)!r}")
    sparsity = check_pruning(sparsity, pattern)
    if fine_tune is not None and not callable(fine_tune):
        raise TypeError(f"fine_tune must be callable, not {fine_tune!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int of at least 1, not {steps!r}")
    pruned = copy.deepcopy(model)
    targets = _targets(pruned, layers)
    if pattern == "2:4" and layers is None:
        _skip_non_multiples_of_four(targets)
    schedule = [sparsity] if pattern == "2:4" else _cubic_schedule(sparsity, steps)
    for target in schedule:
        for name, module in targets.items():
            if pattern == "2:4":
                mask = _two_of_four_mask(name, module.weight)
                torch_prune.custom_from_mask(module, "weight", mask)
            else:
                masked = module.weight_mask if torch_prune.is_pruned(module) else None
                pruned_now = 0 if masked is None else int((masked == 0).sum())
                amount = round(target * module.weight.numel()) - pruned_now
                torch_prune.l1_unstructured(module, "weight", amount=max(0, amount))
        if fine_tune is not None:
            fine_tune(pruned)
    for module in targets.values():
        torch_prune.remove(module, "weight")
    return pruned.eval()


def weight_sparsity(model: nn.Module) -> dict[str, float]:
    """Share of zero entries in the weight of each Linear / Conv2d of `model`, by name."""
    return {
        name: float((module.weight == 0).sum()) / module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE)
    }


def _skip_non_multiples_of_four(targets: dict[str, nn.Module]) -> None:
    """Drop the layers whose K is not a multiple of 4 from `targets`, with one warning."""
    skipped = [name for name, m in targets.items() if (m.weight[0].numel()) % 4]
    for name in skipped:
        del targets[name]
    if skipped:
        warnings.warn(
            f"left dense, their K is not a multiple of 4 (2:4 needs one): {', '.join(skipped)}",
            PruneWarning,
            stacklevel=3,
        )


def _cubic_schedule(sparsity: float, steps: int) -> list[float]:
    """The sparsity after each of `steps` steps: s (1 - (1 - t / steps)^3), t = 1..steps."""
    return [sparsity * (1 - (1 - t / steps) ** 3) for t in range(1, steps + 1)]


def check_pruning(sparsity: object, pattern: object) -> float:
    """`sparsity` as a float if it and `pattern` are what `prune` takes, else the ValueError
    `prune` would raise (a sparsity outside [0, 1) or not a number, an unknown pattern, a 2:4
    sparsity other than 0.5)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float):
        raise ValueError(f"sparsity must be a number in [0, 1), not {sparsity!r}")
    if not math.isfinite(sparsity) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), not {sparsity!r}")
    if pattern not in PATTERNS:
        raise ValueError(
            f"pattern must be one of {', '.join(map(repr, PATTERNS))}, not {pattern!r}"
        )
    if pattern == "2:4" and sparsity != 0.5:
        raise ValueError(
            "the 2:4 pattern zeroes half of every weight, so sparsity must be 0.5, "
            f"not {sparsity!r}"
        )
    return float(sparsity)


def _targets(model: nn.Module, layers: Iterable[str] | None) -> dict[str, nn.Module]:
    """The modules to prune, by name."""
    prunable = {name: m for name, m in model.named_modules() if isinstance(m, _PRUNABLE)}
    if layers is None:
        if not prunable:
            raise ValueError(f"{type(model).__name__} has no Linear or Conv2d layer to prune")
        return prunable
    if isinstance(layers, str):
        raise TypeError(f"layers must be an iterable of layer names, not the string {layers!r}")
    names = list(layers)
    unknown = [name for name in names if name not in prunable]
    if unknown or not names:
        known = ", ".join(prunable) or "none"
        raise ValueError(
            f"layers {unknown or names} are not Linear/Conv2d layers of the model (it has: {known})"
        )
    return {name: prunable[name] for name in names}


def _two_of_four_mask(name: str, weight: torch.Tensor) -> torch.Tensor:
    """The 2:4 mask of `weight`: per group of four along each GEMM row, its two largest
    magnitudes kept (ties as torch.topk breaks them)."""
    rows = weight.detach().reshape(weight.shape[0], -1)
    k = rows.shape[1]
    if k % 4:
        raise ValueError(
            f"layer {name!r} has K = {k} weights per output, not a multiple of 4: it cannot be "
            "2:4 sparse (leave it out with layers=...)"
        )
    groups = rows.abs().reshape(rows.shape[0], k // 4, 4)
    keep = groups.topk(2, dim=2, sorted=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, keep, True)
    return mask.reshape(weight.shape)
