"""Pruned reference models end to end: accuracy, cycles and the speed-up of the sparse engine.

For the digits MLP and CNN (`models`), pruned to 50 / 75 / 90 % zeros (unstructured, gradual
with fine-tuning, `sim.pruned_run`) and 2:4, quantized (qnnpack) and run over the whole digits
test split on the default accelerator (`sim.model_run.run_model`, 16 x 16, sparse engine of 256
MACs): each layer on the engine with fewer predicted cycles, then all layers dense. Printed per
case and backend (golden: the analytical model's cycles; verilator: the RTL's): float accuracy
before and after pruning, int8 accuracy, the outputs equal to torch's pruned int8 model (all of
them, or the bench fails), the engines the layers ran on, the cycles with the engines chosen and
all dense, and the speed-up.

Run: ``python bench/pruned_models.py [--backends golden,verilator] [--models mlp,cnn]``
(several minutes: each case fine-tunes its model, and the verilator runs simulate the RTL).
"""

import argparse

from rich.console import Console
from rich.table import Table

from hdl.config import AccelConfig
from sim.model_run import run_model

CASES = ((0.5, "unstructured"), (0.75, "unstructured"), (0.9, "unstructured"), (0.5, "2:4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="golden,verilator", help="comma-separated")
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated")
    args = parser.parse_args()
    config = AccelConfig()
    table = Table(title="pruned digits models on the 16x16 accelerator, whole test split")
    columns = (
        "model",
        "pruning",
        "backend",
        "float before / after",
        "int8",
        "equal to torch",
        "engines",
        "cycles",
        "all dense",
        "speed-up",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "engines") else "right")
    failures = []
    for workload in args.models.split(","):
        for sparsity, pattern in CASES:
            for backend in args.backends.split(","):
                report = run_model(
                    workload,
                    backend,
                    config,
                    batch=1 << 30,
                    baselines=False,
                    sparsity=sparsity,
                    pattern=pattern,
                )
                pruning = report["pruning"]
                name = f"{pattern} {100 * sparsity:g} %"
                if report["mismatches"] or pruning["dense_mismatches"]:
                    failures.append(f"{workload} {name} {backend}")
                engines = ", ".join(
                    f"{layer['name'].removeprefix('module.')}: {'+'.join(layer['engines'])}"
                    for layer in report["layers"]
                )
                table.add_row(
                    workload,
                    name,
                    backend,
                    f"{100 * pruning['unpruned_float_accuracy']:.2f} / "
                    f"{100 * pruning['float_accuracy']:.2f} %",
                    f"{100 * report['int8_accuracy']:.2f} %",
                    f"{report['exact_outputs']:,} / {report['outputs']:,}",
                    engines,
                    f"{report['cycles']:,}",
                    f"{pruning['dense_cycles']:,}",
                    f"{pruning['speedup']:.2f}x",
                )
    Console(width=200).print(table)
    if failures:
        raise SystemExit(f"outputs differ from torch's pruned int8 model: {', '.join(failures)}")


if __name__ == "__main__":
    main()
