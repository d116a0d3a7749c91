"""The model workloads of ``python -m sim.run``: a reference model end to end on the accelerator.

`run_model` loads (or trains, the first time) one of the reference models of `models` on
scikit-learn's digits, quantizes it with `host.quantize` (qnnpack), offloads it to a
`host.device.Device` (`host.offload`) and runs the digits test split through it batch by batch,
with a progress bar. It reports:

- accuracy of the float model, of torch's int8 model and of the offloaded model;
- how many of the offloaded model's outputs equal torch's int8 outputs exactly (all of them, or
  the run fails);
- per offloaded layer: GEMM shape (a grouped conv: one GEMM per chunk of groups), cycles summed
  over the batches, the array's utilization and the useful one (the layer's own MACs, without a
  chunk's block-diagonal zeros), bytes moved;
- modeled latency at ``config.clock_mhz``, per batch and per image;
- measured torch baselines (`host.baseline`): CPU fp32 and int8, CUDA fp32 and fp16 when a GPU is
  present.

With a ``sparsity``, the trained model is first pruned and fine-tuned (`sim.pruned_run`), and
each layer runs on the engine ``engine`` asks for (default: the one with fewer predicted cycles,
`host.engine_choice`; the layer table names it); the same pruned int8 model then runs again with
every layer on the dense array, for the speed-up.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch
from rich.progress import Progress

from hdl.config import AccelConfig
from host.device import BACKENDS as DEVICE_BACKENDS
from host.device import Device
from host.engine_choice import require_engine
from host.layer_runner import LayerReport
from host.offload import OffloadWarning, offload
from host.quant import quantize
from sim.pruned_run import pruned_model

#: Workloads that run a reference model.
MODELS = ("mlp", "cnn", "transformer", "mobilenet")


def run_model(
    workload: str,
    backend: str,
    config: AccelConfig,
    *,
    batch: int,
    baselines: bool,
    images: int | None = None,
    sparsity: float | None = None,
    pattern: str = "unstructured",
    engine: str = "auto",
) -> dict:
    """Run `workload` (one of `MODELS`) on `backend` and return the report's figures.

    `images` limits the run (and the accuracies) to the first that many test images (default:
    the whole split), to keep a run on a small array short. `sparsity` and `pattern` prune the
    model first, `engine` picks the engines (module docstring).

    Raises
    ------
    ValueError
        An unknown workload, a backend that cannot run models (``pysim``: far too slow for a
        whole test split), a batch size or image count below 1, a sparsity or pattern that
        `host.prune.prune` refuses, an engine other than auto, dense or sparse.
    """
    import models

    if workload not in MODELS:
        raise ValueError(
            f"workload must be one of {', '.join(map(repr, MODELS))}, not {workload!r}"
        )
    if backend not in DEVICE_BACKENDS:
        choices = ", ".join(repr(name) for name in DEVICE_BACKENDS)
        raise ValueError(
            f"the {workload} workload runs on {choices}, not {backend!r} (Amaranth's simulator "
            "would take hours for the test split)"
        )
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch!r}")
    if images is not None and images < 1:
        raise ValueError(f"images must be at least 1, not {images!r}")
    started = time.perf_counter()
    require_engine("every layer", engine)
    model, data, info = models.load(workload)
    test_x, test_y = data.test_x[:images], data.test_y[:images]
    pruning = None
    if sparsity is not None:
        unpruned_accuracy = models.accuracy(model, test_x, test_y)
        model, pruning = pruned_model(workload, model, data, sparsity, pattern)
        pruning["unpruned_float_accuracy"] = unpruned_accuracy
    qmodel = quantize(model, data.calibration_x, engine="qnnpack")
    float_accuracy = models.accuracy(model, test_x, test_y)
    int8_accuracy = models.accuracy(qmodel, test_x, test_y)
    with Device(backend, config) as device:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OffloadWarning)
            offloaded = offload(qmodel, device, engine=engine)
        on_cpu = list(offloaded.on_cpu)
        layers, totals, correct, exact, outputs, batches = _run_batches(
            offloaded, qmodel, test_x, test_y, batch
        )
    del caught
    cycles = sum(layer["cycles"] for layer in layers)
    if pruning is not None:
        pruning.update(_dense_run(qmodel, backend, config, test_x, test_y, batch, cycles))
    report = {
        "workload": workload,
        "backend": backend,
        "config": config.to_dict(),
        "model": {
            "parameters": info.parameters,
            "from_cache": info.from_cache,
            "train_seconds": info.train_seconds,
        },
        "test_images": int(test_x.shape[0]),
        "batch": min(batch, int(test_x.shape[0])),
        "batches": batches,
        "float_accuracy": float_accuracy,
        "int8_accuracy": int8_accuracy,
        "device_accuracy": correct / test_x.shape[0],
        "exact_outputs": exact,
        "outputs": outputs,
        "mismatches": outputs - exact,
        "layers": layers,
        "pruning": pruning,
        "on_cpu": on_cpu,
        **totals,
        "cycles": cycles,
        "modeled_us_per_image": cycles / config.clock_mhz / test_x.shape[0],
        "modeled_us_per_batch": cycles / config.clock_mhz / batches,
        "baselines": [],
        "wall_s": 0.0,
    }
    if baselines:
        report["baselines"] = _baselines(model, qmodel, test_x[:batch])
    report["wall_s"] = time.perf_counter() - started
    return report


def _dense_run(qmodel, backend: str, config: AccelConfig, test_x, test_y, batch, cycles) -> dict:
    """The pruned int8 model again with every layer on the dense array: its cycles, outputs
    equal to torch's, and the speed-up of the run that chose the engines (`cycles`)."""
    with Device(backend, config) as device, warnings.catch_warnings():
        warnings.simplefilter("ignore", OffloadWarning)
        offloaded = offload(qmodel, device, engine="dense")
        layers, _, _, exact, outputs, _ = _run_batches(offloaded, qmodel, test_x, test_y, batch)
    dense = sum(layer["cycles"] for layer in layers)
    return {
        "dense_cycles": dense,
        "dense_mismatches": outputs - exact,
        "speedup": dense / cycles,
    }


def _run_batches(offloaded, qmodel, test_x, test_y, batch: int):
    """The test split through the offloaded model: per-layer totals, model totals (MACs on the
    accelerator and the CPU, host<->device bytes), correct predictions, outputs equal to torch's
    int8 model, outputs, batches."""
    model_totals = dict.fromkeys(
        ("accelerator_macs", "cpu_macs", "bytes_to_device", "bytes_from_device"), 0
    )
    forwards = []
    correct = exact = outputs = 0
    images = test_x.shape[0]
    with Progress(transient=True) as progress:
        task = progress.add_task("test images through the accelerator", total=images)
        with torch.no_grad():
            for start in range(0, images, batch):
                x = test_x[start : start + batch]
                logits = offloaded(x)
                reference = qmodel(x)
                exact += int((logits == reference).sum())
                outputs += logits.numel()
                correct += int((logits.argmax(dim=1) == test_y[start : start + batch]).sum())
                summary = offloaded.summary()
                for key in model_totals:
                    model_totals[key] += getattr(summary, key)
                forwards.append(offloaded.report())
                progress.advance(task, x.shape[0])
    return layer_totals(forwards), model_totals, correct, exact, outputs, len(forwards)


def layer_totals(forwards: list[list[LayerReport]]) -> list[dict]:
    """Each offloaded layer's figures summed over `forwards` (each a forward's report): kind,
    cycles, its own MACs, the engine's MAC slots used (``array_macs``: M x N x K on the dense
    array, a chunk's block-diagonal zeros included; M x the nonzeros on the sparse engine), the
    useful ones (``useful_macs``: the layer's own, a pruned layer's nonzero ones), bytes read
    and written, the first forward's GEMM shape and
    how many GEMMs it took (a grouped conv: one per chunk of groups), the engines that ran it
    and the first one's reason."""
    totals: dict[str, dict] = {}
    for forward, rows in enumerate(forwards):
        for row in rows:
            entry = totals.setdefault(
                row.name,
                {
                    "name": row.name,
                    "kind": row.kind.split(" chunk ")[0],
                    "shape": {"m": row.m, "n": row.n, "k": row.k},
                    "gemms": 0,
                    "cycles": 0,
                    "macs": 0,
                    "array_macs": 0,
                    "useful_macs": 0,
                    "bytes_read": 0,
                    "bytes_written": 0,
                    "cycle_model": row.cycle_model,
                    "engines": [],
                },
            )
            if row.engine not in entry["engines"]:
                entry["engines"].append(row.engine)
                entry.setdefault("engine_reason", row.engine_reason)
            entry["gemms"] += forward == 0
            entry["cycles"] += row.cycles
            entry["macs"] += row.macs
            entry["array_macs"] += row.engine_macs
            entry["useful_macs"] += min(row.macs, row.engine_macs)
            entry["bytes_read"] += row.bytes_read
            entry["bytes_written"] += row.bytes_written
    return list(totals.values())


def _baselines(model, qmodel, inputs) -> list[dict]:
    from host.baseline import baselines

    return [
        {**dataclasses.asdict(timing), "per_sample_s": timing.per_sample_s}
        for timing in baselines(model, qmodel, inputs)
    ]


def render_model(report: dict, console) -> None:
    """Print a model run's report: summary, layers, baselines."""
    from rich.table import Table

    config = report["config"]
    summary = Table(title=f"Tessera: {report['workload']} on the accelerator", header_style="bold")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    images = report["test_images"]
    source = "cached" if report["model"]["from_cache"] else "trained now"
    rows = [
        ("model", f"{report['model']['parameters']:,} parameters ({source})"),
        ("array", f"{config['rows']} x {config['cols']} {config['dataflow'].upper()}"),
        ("main memory", f"{config['bus_bytes']} B/cycle, {config['mem_latency']}-cycle latency"),
        ("backend", report["backend"]),
        ("digits test images", f"{images} in batches of up to {report['batch']}"),
        ("accuracy: float / torch int8", _pair(report["float_accuracy"], report["int8_accuracy"])),
        ("accuracy on the accelerator", f"{100 * report['device_accuracy']:.2f} %"),
        ("outputs equal to torch int8", _agreement(report)),
        ("accelerator cycles (all layers)", f"{report['cycles']:,}"),
        (
            f"modeled latency at {config['clock_mhz']:g} MHz",
            f"{report['modeled_us_per_batch']:.1f} us per batch, "
            f"{report['modeled_us_per_image']:.2f} us per image",
        ),
        ("MACs on the accelerator / on the CPU", mac_shares(report)),
        *_pruning_rows(report),
        (
            "host -> device / device -> host",
            f"{report['bytes_to_device']:,} B / {report['bytes_from_device']:,} B",
        ),
        ("on the CPU", ", ".join(report["on_cpu"]) or "nothing but the float boundary"),
        ("wall time", f"{report['wall_s']:.1f} s"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    console.print(layer_table(report, "offloaded layers, totals over the test split"))
    if report["baselines"]:
        console.print(_baseline_table(report))


def layer_table(report: dict, title: str):
    """`report`'s ``layers`` (`layer_totals`) as a table titled `title`: per offloaded layer its
    GEMMs (a grouped conv: one per chunk of groups), cycles, the array's utilization (MAC slots
    used, a chunk's block-diagonal zeros included), the useful utilization (the layer's own
    MACs) and the bytes moved."""
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    table.caption = (
        "utilization: the engine's MAC slots busy (all), busy with the layer's own MACs (useful; "
        "a pruned layer's nonzero ones)"
    )
    columns = (
        "layer",
        "GEMM M x K x N",
        "engine",
        "cycles",
        "all",
        "useful",
        "read B",
        "written B",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=True)
    macs = report["config"]["rows"] * report["config"]["cols"]
    for layer in report["layers"]:
        shape = layer["shape"]
        gemm = f"{shape['m']} x {shape['k']} x {shape['n']}"
        slots = layer["cycles"] * macs
        table.add_row(
            f"{layer['name'].removeprefix('module.')} ({layer['kind']})",
            gemm if layer["gemms"] == 1 else f"{layer['gemms']} x ({gemm})",
            "+".join(layer["engines"]),
            f"{layer['cycles']:,}",
            f"{100 * layer['array_macs'] / slots:.1f} %",
            f"{100 * layer['useful_macs'] / slots:.1f} %",
            f"{layer['bytes_read']:,}",
            f"{layer['bytes_written']:,}",
        )
    return table


def _pruning_rows(report: dict) -> list[tuple[str, str]]:
    """Summary rows of a pruned run: the pruning, its accuracy cost, the dense run's cycles and
    the speed-up."""
    pruning = report.get("pruning")
    if not pruning:
        return []
    zeros = ", ".join(f"{100 * z:.1f}" for z in pruning["layer_zeros"].values())
    steps = pruning["steps"]
    how = f"{steps} step{'s' * (steps != 1)} x {pruning['epochs_per_step']} epochs of fine-tuning"
    dense = f"{pruning['dense_cycles']:,}"
    if pruning["dense_mismatches"]:
        dense += f" ({pruning['dense_mismatches']} MISMATCHES)"
    return [
        ("pruning", f"{pruning['pattern']} to {100 * pruning['sparsity']:g} % zeros, {how}"),
        ("zero weights per layer (float)", f"{zeros} %"),
        ("float accuracy before pruning", f"{100 * pruning['unpruned_float_accuracy']:.2f} %"),
        ("cycles with every layer dense", dense),
        ("speed-up over the dense array", f"{pruning['speedup']:.2f}x"),
    ]


def mac_shares(report: dict) -> str:
    """'A / C (S % on the accelerator)': the report's MACs on the accelerator and the CPU."""
    accelerator, cpu = report["accelerator_macs"], report["cpu_macs"]
    share = accelerator / (accelerator + cpu) if accelerator + cpu else 1.0
    return f"{accelerator:,} / {cpu:,} ({100 * share:.1f} % on the accelerator)"


def _baseline_table(report: dict):
    from rich.table import Table

    table = Table(title="torch baselines: median of repeated runs", header_style="bold")
    for column in ("run", "batch", "median", "per image", "modeled accelerator"):
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    modeled = report["modeled_us_per_image"] * 1e-6
    skipped = []
    for timing in report["baselines"]:
        if timing["skipped"] is not None:
            table.add_row(timing["label"], "", "skipped", "", "")
            skipped.append(f"{timing['label']}: {timing['skipped']}")
            continue
        per_image = timing["per_sample_s"]
        ratio = (
            f"{per_image / modeled:.2f}x faster"
            if per_image > modeled
            else f"{modeled / per_image:.2f}x slower"
        )
        table.add_row(
            timing["label"],
            str(timing["batch"]),
            f"{timing['median_s'] * 1e6:,.1f} us",
            f"{per_image * 1e6:.2f} us",
            ratio,
        )
    if skipped:
        table.caption = "; ".join(skipped)
    return table


def _pair(first: float, second: float) -> str:
    return f"{100 * first:.2f} % / {100 * second:.2f} %"


def _agreement(report: dict) -> str:
    verdict = "all" if report["mismatches"] == 0 else f"{report['mismatches']} MISMATCHES in"
    return f"{verdict} {report['outputs']:,} outputs"
