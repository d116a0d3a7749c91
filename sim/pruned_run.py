"""Pruning a reference model for ``python -m sim.run --workload mlp --sparsity 0.9``.

`pruned_model(name, model, data, sparsity, pattern)` prunes a trained reference model of
`models` with `host.prune`: unstructured pruning rises to the target in `STEPS` steps (the cubic
schedule) and 2:4 in one, each step followed by `EPOCHS` epochs of fine-tuning on the digits
training split with the model's own training recipe (`models.training.SPECS`), so the int8
accuracy the run reports is that of a model pruned as a user would prune it, not of a one-shot
cut. Deterministic: the same seeds as the model's training.

Why these numbers, measured on the digits MLP (float accuracy 95.54 % before pruning, test
split): pruned to 90 % in one step without fine-tuning it keeps 25.9 %; 3 steps x 2 epochs at a
third of its learning rate 79.9 %; 5 steps x 3 epochs at its learning rate, the recipe here,
93.6 % (docs/offload.md has the table of every case).
"""

from __future__ import annotations

import dataclasses
import time

from torch import nn

from host.prune import prune, weight_sparsity

__all__ = ["EPOCHS", "STEPS", "pruned_model"]

#: Steps of gradual unstructured pruning.
STEPS = 5
#: Fine-tuning epochs after each step.
EPOCHS = 3


def pruned_model(
    name: str, model: nn.Module, data, sparsity: float, pattern: str
) -> tuple[nn.Module, dict]:
    """`model` (the trained reference model `name`) pruned to `sparsity` with `pattern` and
    fine-tuned, and a dict describing it: the pattern, sparsity, steps, epochs, the zeros of
    each layer's float weight, the pruned float accuracy and the seconds it took.

    Raises
    ------
    ValueError
        As `host.prune.prune` (a sparsity outside [0, 1), an unknown pattern, a 2:4 sparsity
        other than 0.5, a layer whose K is not a multiple of 4 under 2:4).
    """
    import models
    from models.training import SPECS

    started = time.perf_counter()
    spec = dataclasses.replace(SPECS[name], epochs=EPOCHS)
    steps = 1 if pattern == "2:4" else STEPS
    pruned = prune(
        model, sparsity, pattern, fine_tune=lambda m: models.train(m, data, spec), steps=steps
    )
    info = {
        "sparsity": sparsity,
        "pattern": pattern,
        "steps": steps,
        "epochs_per_step": EPOCHS,
        "layer_zeros": weight_sparsity(pruned),
        "float_accuracy": models.accuracy(pruned, data.test_x, data.test_y),
        "seconds": time.perf_counter() - started,
    }
    return pruned, info
