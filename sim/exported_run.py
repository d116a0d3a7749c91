"""``python -m sim.run --model PATH.pt2``: a user's exported PT2E-quantized program on the device.

`run_exported` reads a program written by ``torch.export.save`` (an ``ExportedProgram`` of a
model quantized by torchao's ``prepare_pt2e`` / ``convert_pt2e`` and exported again), offloads
its quantized layers with `host.offload` (`host.pt2e`), feeds it seeded random inputs and runs
torch's own execution of the same program beside it. It reports:

- how many outputs equal torch's and the largest difference, in quantization steps of the output
  (the scale of the dequantize that produces it; absolute when the output is not dequantized):
  torch runs a PT2E program in float32, the accelerator in integers, so a few outputs may differ
  by a step (docs/offload.md, "PT2E models");
- MACs on the accelerator and on the CPU, cycles, host<->device bytes, what stays on the CPU;
- per offloaded layer: GEMMs, cycles, utilization, bytes (`sim.model_run.layer_table`).

The inputs have the shapes and dtypes of the example inputs ``torch.export`` recorded in the
program, else of its input placeholders when those are static; ``input_shape`` replaces them
for a program with one input. The inputs are standard normal from a ``torch.Generator`` seeded
with ``seed``, in each input's floating-point dtype (a program taking integer inputs is refused).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

from hdl.config import AccelConfig
from host.device import BACKENDS as DEVICE_BACKENDS
from host.device import Device
from host.offload import OffloadWarning, offload
from host.pt2e import is_pt2e
from sim.model_run import layer_table, layer_totals, mac_shares

_DEQUANTIZE = "quantized_decomposed.dequantize_per_tensor.default"


def run_exported(
    path: Path,
    backend: str,
    config: AccelConfig,
    *,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
) -> dict:
    """Run the program at `path` on `backend` and beside it in torch; the report's figures.

    Raises
    ------
    ValueError
        `path` is missing, not a ``.pt2`` file, not a program ``torch.export.save`` wrote, holds
        no quantized layer, or its inputs cannot be made (each message names the file and what
        it found); a backend that cannot run models.
    """
    if backend not in DEVICE_BACKENDS:
        choices = ", ".join(repr(name) for name in DEVICE_BACKENDS)
        raise ValueError(f"--model runs on {choices}, not {backend!r}")
    started = time.perf_counter()
    program = load_program(path)
    module = program.module()
    if not is_pt2e(module):
        operations = sorted(
            {
                str(n.target).removeprefix("aten.")
                for n in module.graph.nodes
                if n.op == "call_function"
            }
        )
        raise ValueError(
            f"{path} holds no quantized layer: its program has no PT2E quantize/dequantize "
            f"operations (found: {', '.join(operations) or 'no operations'}); quantize the model "
            "with torchao's prepare_pt2e / convert_pt2e, then torch.export it and save that"
        )
    inputs = random_inputs(program, path, seed, input_shape)
    with Device(backend, config) as device:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always", OffloadWarning)
            try:
                offloaded = offload(module, device)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
        with torch.no_grad():
            ours, theirs = offloaded(*inputs), module(*inputs)
        summary, rows = offloaded.summary(), offloaded.report()
    return {
        "model": str(path),
        "backend": backend,
        "config": config.to_dict(),
        "inputs": [{"shape": list(x.shape), "dtype": str(x.dtype)} for x in inputs],
        "seed": seed,
        **_agreement(ours, theirs, _output_steps(module)),
        "layers": layer_totals([rows]),
        "on_cpu": list(offloaded.on_cpu),
        "accelerator_macs": summary.accelerator_macs,
        "cpu_macs": summary.cpu_macs,
        "cpu_macs_by_operation": summary.cpu_macs_by_operation,
        "bytes_to_device": summary.bytes_to_device,
        "bytes_from_device": summary.bytes_from_device,
        "cycles": summary.accelerator_cycles,
        "modeled_us": summary.accelerator_cycles / config.clock_mhz,
        "wall_s": time.perf_counter() - started,
    }


def load_program(path: Path) -> torch.export.ExportedProgram:
    """The ``ExportedProgram`` saved at `path`; a `ValueError` naming the file otherwise."""
    if not path.is_file():
        raise ValueError(f"--model {str(path)!r}: no such file")
    if path.suffix != ".pt2":
        raise ValueError(
            f"--model {str(path)!r}: expected a .pt2 file written by torch.export.save, not a "
            f"{path.suffix or 'suffix-less'} file"
        )
    # PT2E programs call the quantized_decomposed operators: register them before reading one.
    import torch.ao.quantization.fx._decomposed

    with _torch_export_log() as logged:
        try:
            program = torch.export.load(path)
        except Exception as error:  # zip, archive and deserialization errors of many kinds
            reason = logged[-1] if logged else f"{type(error).__name__}: {error}"
            raise ValueError(
                f"{path} is not a program written by torch.export.save ({reason})"
            ) from None
    if not isinstance(program, torch.export.ExportedProgram):
        raise ValueError(f"{path} holds a {type(program).__name__}, not an ExportedProgram")
    return program


@contextlib.contextmanager
def _torch_export_log():
    """Collect (and keep off the console) the errors torch.export logs while it loads a file:
    ``torch.export.load`` logs the real reason and raises a generic error."""
    logger = logging.getLogger("torch.export")
    logged: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            error = record.exc_info[1] if record.exc_info else None
            text = f"{type(error).__name__}: {error}" if error else record.getMessage()
            logged.append(text.strip().splitlines()[0].split(". ")[0][:300])

    handlers, propagate = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [Collect()], False
    try:
        yield logged
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def random_inputs(
    program: torch.export.ExportedProgram,
    path: Path,
    seed: int,
    input_shape: tuple[int, ...] | None,
) -> tuple[torch.Tensor, ...]:
    """Seeded inputs of the shapes and dtypes `program` records (module doc)."""
    specs = _input_specs(program)
    if input_shape is not None:
        if len(specs) != 1:
            raise ValueError(
                f"{path} takes {len(specs)} inputs; --input-shape gives the shape of a "
                "program with one"
            )
        specs = [(input_shape, specs[0][1])]
    for index, (shape, dtype) in enumerate(specs):
        if shape is None:
            raise ValueError(
                f"{path} records no example inputs and its input {index} has a dynamic shape; "
                "give one with --input-shape (e.g. --input-shape 4,3,32,32)"
            )
        if not dtype.is_floating_point:
            raise ValueError(f"{path}: input {index} is {dtype}; --model feeds float inputs")
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=generator).to(dtype) for shape, dtype in specs)


def _input_specs(program: torch.export.ExportedProgram):
    """(shape or None when dynamic, dtype) of each user input of `program`."""
    examples = program.example_inputs
    if examples is not None:
        args, kwargs = examples
        leaves = pytree.tree_leaves((args, kwargs))
        if leaves and all(isinstance(x, torch.Tensor) for x in leaves):
            return [(tuple(x.shape), x.dtype) for x in leaves]
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for spec in program.graph_signature.input_specs:
        if spec.kind != torch.export.graph_signature.InputKind.USER_INPUT:
            continue
        value = placeholders[spec.arg.name].meta["val"]
        static = all(isinstance(size, int) for size in value.shape)
        specs.append((tuple(value.shape) if static else None, value.dtype))
    return specs


def _output_steps(module: torch.fx.GraphModule) -> list[float | None]:
    """The quantization step of each output leaf: the scale of the dequantize producing it."""
    output = next(n for n in module.graph.nodes if n.op == "output")
    steps = []
    for node in pytree.tree_leaves(output.args[0]):
        dequantized = isinstance(node, torch.fx.Node) and str(node.target) == _DEQUANTIZE
        steps.append(float(node.args[1]) if dequantized else None)
    return steps


def _agreement(ours, theirs, steps: list[float | None]) -> dict:
    """Outputs equal to torch's; the largest difference, absolute and in steps (rounded to 1e-3,
    float32 leaves a difference of 2 steps at 2.000001; None unless every output leaf is
    dequantized, so has a step)."""
    equal = outputs = 0
    largest: list[float] = []
    for mine, reference in zip(pytree.tree_leaves(ours), pytree.tree_leaves(theirs), strict=True):
        difference = (mine.float() - reference.float()).abs()
        equal += int((difference == 0).sum())
        outputs += difference.numel()
        largest.append(float(difference.max()) if difference.numel() else 0.0)
    known = all(step is not None for step in steps)
    return {
        "equal_outputs": equal,
        "outputs": outputs,
        "max_abs_difference": max(largest, default=0.0),
        "max_step_difference": (
            round(max((d / s for d, s in zip(largest, steps, strict=True)), default=0.0), 3)
            if known
            else None
        ),
    }


def render_exported(report: dict, console) -> None:
    """Print an exported program's run: summary and offloaded layers."""
    from rich.table import Table

    config = report["config"]
    summary = Table(title=f"Tessera: {report['model']} on the accelerator", header_style="bold")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    shapes = ", ".join(f"{x['dtype'].removeprefix('torch.')}{x['shape']}" for x in report["inputs"])
    steps = report["max_step_difference"]
    largest = f"{report['max_abs_difference']:.4g}"
    if steps is not None:
        largest = f"{steps:.3g} steps ({largest})"
    rows = [
        ("array", f"{config['rows']} x {config['cols']} {config['dataflow'].upper()}"),
        ("backend", report["backend"]),
        ("inputs (seeded standard normal)", f"{shapes}, seed {report['seed']}"),
        ("outputs equal to torch's run", f"{report['equal_outputs']:,} of {report['outputs']:,}"),
        ("largest difference", largest),
        ("MACs on the accelerator / on the CPU", mac_shares(report)),
        ("accelerator cycles", f"{report['cycles']:,}"),
        (f"modeled time at {config['clock_mhz']:g} MHz", f"{report['modeled_us']:.1f} us"),
        (
            "host -> device / device -> host",
            f"{report['bytes_to_device']:,} B / {report['bytes_from_device']:,} B",
        ),
        ("on the CPU", ", ".join(report["on_cpu"]) or "nothing but quantize/dequantize"),
        ("wall time", f"{report['wall_s']:.1f} s"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    console.print(layer_table(report, "offloaded layers"))
