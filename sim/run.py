"""``python -m sim.run``: run a workload on a simulation backend and print what it cost.

With no arguments: the main job. It trains the MLP of `models` on scikit-learn's digits (the
first time; then the weights come from the disk cache), quantizes it, runs the digits test split
through the accelerator on the verilator backend (16x16 array) and prints float vs int8 accuracy,
the exact agreement with torch's int8 outputs, per-layer cycles and utilization, the modeled
latency and measured torch baselines on the CPU (and CUDA when present); `sim.model_run`. The
``cnn``, ``transformer`` and ``mobilenet`` (depthwise-separable) workloads do the same for the
other reference models; ``--images N`` keeps only the first N test images (a short run on a
small array).

``--model PATH.pt2``: your own model instead of a workload (`sim.exported_run`). The file is a
program written by ``torch.export.save``: a model quantized by torchao's PT2E flow
(``prepare_pt2e``, calibration, ``convert_pt2e``) and exported again with ``torch.export.export``.
It is loaded with ``torch.export.load``, its quantized Linear/Conv layers go to the accelerator
(`host.offload`), and it runs on seeded random inputs (``--seed``) of the shapes its example
inputs record (``--input-shape`` when it records none and its shape is dynamic), beside torch's
own execution of the program. The report: outputs equal to torch's and the largest difference in
quantization steps (torch runs PT2E in float32, so a few outputs may be a step apart; the exit
status does not depend on it), MACs on the accelerator vs the CPU, cycles, host<->device bytes and
the per-layer table. A missing file, one that is not a ``.pt2`` program, or a program without
quantized layers exits with a message naming the file and what it holds.

The matrix workloads, each on a chosen backend (golden, pysim or verilator), with seeded random
operands (the int8 extremes -128 and 127 planted in them) and the int32 result checked against an
independent oracle (torch's int64 matmul, wrapped to int32). Every backend runs the product through
the whole accelerator: operands in main memory, a tiled program (`sim.schedule`) on the command
stream, the result stored back (golden: numpy results with the cycles of the analytical model
`sim.perf`; pysim / verilator: the RTL, cycle by cycle):

- ``gemm``: A (M x K) @ B (K x N) through the systolic array; the table reports the
  end-to-end cycles beside the analytical model's prediction, the bare array's streaming cycles
  and SCALE-Sim's convention, utilization, what bounds the run, and the bytes moved;
With ``--sparsity S`` a model workload is pruned first (`host.prune`: unstructured, or
``--pattern 2:4``) and fine-tuned on the digits (`sim.pruned_run`); each layer runs on the
engine with fewer predicted cycles, the dense array or the sparse engine (``--engine`` forces
one; the layer table names each layer's), and the same pruned int8 model runs again all dense:
the report adds the pruning, the accuracies and the speed-up, and the outputs are checked
against torch's pruned int8 model bit for bit.

- ``spmm``: W (N x K, ``--sparsity`` zeros) @ X (K x M) through the sparse engine, which
  multiplies only W's nonzeros; the table reports its cycles beside the model's and the dense
  accelerator's modeled cycles for the same product, the speed-up and the engine's MAC
  utilization.

Modeled times use ``AccelConfig.clock_mhz``: with ``--fpga-report DIR/report.json`` (a board
build's, ``python -m hdl.gen --board``) the build's configuration at its achieved Fmax (the
slowest clock's), otherwise the default 100 MHz, which no build of ours reaches
(docs/fpga.md). The last line of every run says which clock was used and why.

``--json`` writes the same figures for scripts (and ``clock``: its MHz and source). ``--plot DIR``
(models and ``--model``) draws each offloaded layer's utilization into a PNG in DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hdl.cli import add_array_arguments, config_from_args, given_config_options
from hdl.config import AccelConfig
from host.engine_choice import ENGINES
from host.prune import PATTERNS, check_pruning
from sim.backends import BACKENDS, get_backend
from sim.cycles import array_cycles, scalesim_cycles, utilization
from sim.exported_run import render_exported, run_exported
from sim.golden.gemm import wrap_int32
from sim.golden.sparse import random_sparse
from sim.model_run import MODELS, render_model, run_model
from sim.perf import gemm_estimate, spmm_estimate


def positive_int(text: str) -> int:
    """argparse type: an int >= 1, with a message naming the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a float in [0, 1], with a message naming the bad value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], not {text!r}")
    return value


def shape(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive ints (``4,3,32,32``)."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas (4,3,32,32), not {text!r}"
        )
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sim.run``."""
    parser = argparse.ArgumentParser(
        prog="python -m sim.run",
        description=(
            "Run an int8 workload on a Tessera simulation backend, check it bit-exactly against "
            "an independent oracle, and report cycles and array utilization."
        ),
        epilog="Examples:\n"
        "  python -m sim.run                      # the MLP on the digits, verilator, 16x16\n"
        "  python -m sim.run --workload cnn --backend golden --rows 8 --cols 8\n"
        "  python -m sim.run --workload mobilenet --backend golden --images 64\n"
        "  python -m sim.run --model my_model.pt2 --backend golden   # your PT2E program\n"
        "  python -m sim.run --workload gemm --m 128 --n 64 --k 300 --rows 8 --cols 8 "
        "--dataflow os\n"
        "  python -m sim.run --workload mlp --sparsity 0.9 --backend golden\n"
        "  python -m sim.run --workload spmm --n 256 --k 256 --m 64 --sparsity 0.9 "
        "--backend verilator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workload",
        choices=[*MODELS, "gemm", "spmm"],
        default=None,
        help="mlp, cnn, transformer, mobilenet = a reference model on the digits test split; "
        "gemm = A @ B on the systolic array; spmm = sparse W @ dense X on the sparse engine "
        "(default: mlp)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="PATH.pt2",
        help="instead of a workload: run your own model, a PT2E-quantized program (torchao's "
        "prepare_pt2e / convert_pt2e, exported with torch.export.export and saved with "
        "torch.export.save), on the accelerator with seeded random inputs of the shapes its "
        "example inputs record, and compare it with torch running the same program: equal "
        "outputs, largest difference in quantization steps, MACs on the accelerator and the CPU, "
        "cycles",
    )
    parser.add_argument(
        "--input-shape",
        type=shape,
        metavar="N,C,H,W",
        help="--model: the shape of the program's one input, e.g. 4,3,32,32 (default: the "
        "shape recorded in the program; needed when it records none and its shape is dynamic)",
    )
    parser.add_argument(
        "--m", type=positive_int, default=64, help="rows of A (gemm), columns of X (spmm); 64"
    )
    parser.add_argument(
        "--n", type=positive_int, default=64, help="columns of B (gemm), rows of W (spmm); 64"
    )
    parser.add_argument("--k", type=positive_int, default=64, help="inner dimension (default 64)")
    parser.add_argument(
        "--sparsity",
        type=fraction,
        default=None,
        help="spmm: fraction of W's entries that are zero, in [0, 1] (default 0.9); models: "
        "prune the model to this fraction of zero weights in [0, 1) and fine-tune it first "
        "(default: no pruning)",
    )
    parser.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="unstructured",
        help="models with --sparsity: unstructured (the smallest weights of each layer) or 2:4 "
        "(two of every four consecutive weights; --sparsity 0.5) (default unstructured)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="models: run every layer on the engine with fewer predicted cycles (auto), on the "
        "dense array, or on the sparse engine (default auto)",
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=None,
        help="simulation backend: golden (numpy results, modeled cycles), pysim (Amaranth's "
        "simulator, small arrays, matrix workloads only) or verilator (the RTL, cycle by cycle); "
        "default: verilator for the models, golden for gemm and spmm",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="models: test images per forward pass (default: the whole test split at once)",
    )
    parser.add_argument(
        "--images",
        type=positive_int,
        default=None,
        metavar="N",
        help="models: run only the first N test images (default: the whole test split, 359)",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="models: skip timing torch on the CPU (and CUDA)",
    )
    add_array_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH"
    )
    parser.add_argument(
        "--fpga-report",
        type=Path,
        metavar="PATH",
        help="model a board build: take the configuration from its report.json (python -m "
        "hdl.gen --board) and turn cycles into time at its achieved Fmax; replaces --rows, "
        "--cols and the other configuration options",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="models and --model: write DIR/layer_utilization.png, each offloaded layer's "
        "utilization (sim.sweep.plots)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="PATH",
        help="gemm and spmm on the verilator backend: write a VCD waveform of the run to PATH "
        "(must end in .vcd; a traced build simulates several times slower)",
    )
    return parser


def config_from_fpga_report(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """``--fpga-report``: the built design's `AccelConfig`, clocked at the slowest clock's
    achieved Fmax (`hdl.fpga.BoardReport`), and where that clock comes from (`clock_line`); a
    bad file or a clash exits through ``parser.error``."""
    given = given_config_options(args)
    if given:
        parser.error(
            f"--fpga-report takes the configuration from the report; drop {', '.join(given)}"
        )
    try:
        report = json.loads(args.fpga_report.read_text())
        clocks = report["fmax_mhz"]
        slowest = min(clocks, key=clocks.get)
        config = AccelConfig.from_dict(report["config"])
        source = (
            f"the achieved Fmax of {args.fpga_report} ({report['board']}, clock {slowest}; "
            f"the board runs it at {float(report['clock_mhz']):g} MHz)"
        )
        return dataclasses.replace(config, clock_mhz=float(clocks[slowest])), source
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.error(
            f"--fpga-report {str(args.fpga_report)!r} is not a board build's report.json "
            f"({type(error).__name__}: {error})"
        )


def make_backend(args: argparse.Namespace, config: AccelConfig):
    """The backend the arguments ask for (traced when ``--trace`` is given)."""
    if args.trace is None:
        return get_backend(args.backend, config)
    return get_backend(args.backend, config, vcd_path=args.trace)


def random_operands(rng: np.random.Generator, m: int, n: int, k: int):
    """Seeded int8 operands with -128 and 127 planted at both ends of each."""
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a.flat[0], a.flat[-1] = -128, 127
    b.flat[0], b.flat[-1] = -128, 127
    return a, b


def torch_oracle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent reference: torch's int64 matmul, wrapped to int32 like the accumulators."""
    product = torch.from_numpy(a.astype(np.int64)) @ torch.from_numpy(b.astype(np.int64))
    return wrap_int32(product.numpy())


def run_gemm(args: argparse.Namespace, config: AccelConfig) -> dict:
    """Run one GEMM as the arguments ask and return the figures of the report."""
    rng = np.random.default_rng(args.seed)
    a, b = random_operands(rng, args.m, args.n, args.k)
    backend = make_backend(args, config)
    start = time.perf_counter()
    result = backend.gemm(a, b)
    wall = time.perf_counter() - start
    mismatches = int(np.count_nonzero(result.output != torch_oracle(a, b)))
    estimate = gemm_estimate(args.m, args.n, args.k, config)
    return {
        "workload": "gemm",
        "backend": args.backend,
        "shape": {"m": args.m, "n": args.n, "k": args.k},
        "config": config.to_dict(),
        "cycles": result.cycles,
        "cycle_model": result.cycle_model,
        "model_cycles": estimate.cycles,
        "bound": estimate.bound,
        "array_cycles": array_cycles(args.m, args.n, args.k, config),
        "scalesim_cycles": scalesim_cycles(args.m, args.n, args.k, config),
        "utilization": utilization(args.m, args.n, args.k, result.cycles, config),
        "counters": result.counters,
        "mismatches": mismatches,
        "outputs": int(result.output.size),
        "modeled_us": result.cycles / config.clock_mhz,
        "wall_s": wall,
    }


def run_spmm(args: argparse.Namespace, config: AccelConfig) -> dict:
    """Run one sparse product W (N x K) @ X (K x M) as the arguments ask; the report's figures."""
    rng = np.random.default_rng(args.seed)
    (m, n, k) = args.m, args.n, args.k
    w = random_sparse(rng, n, k, args.sparsity)  # main() sets the default
    _, x = random_operands(rng, 1, m, k)  # X: K x M
    backend = make_backend(args, config)
    start = time.perf_counter()
    result = backend.spmm(w, x)
    wall = time.perf_counter() - start
    mismatches = int(np.count_nonzero(result.output != torch_oracle(w, x)))
    nnz = int(np.count_nonzero(w))
    dense = gemm_estimate(n, m, k, config).cycles  # the same product W @ X through MATMULs
    return {
        "workload": "spmm",
        "backend": args.backend,
        "shape": {"m": m, "n": n, "k": k},
        "sparsity": args.sparsity,
        "nnz": nnz,
        "config": config.to_dict(),
        "cycles": result.cycles,
        "cycle_model": result.cycle_model,
        "model_cycles": spmm_estimate(w, m, config).cycles,
        "dense_cycles": dense,
        "speedup": dense / result.cycles,
        "utilization": nnz * m / (result.cycles * config.sparse_lanes),
        "counters": result.counters,
        "mismatches": mismatches,
        "outputs": int(result.output.size),
        "modeled_us": result.cycles / config.clock_mhz,
        "wall_s": wall,
    }


def _gemm_rows(report: dict) -> list[tuple[str, str]]:
    shape, config, counters = report["shape"], report["config"], report["counters"]
    rows = [
        (
            "GEMM (M x K) @ (K x N)",
            f"({shape['m']} x {shape['k']}) @ ({shape['k']} x {shape['n']})",
        ),
        ("array", f"{config['rows']} x {config['cols']} {config['dataflow'].upper()}"),
        _memory_row(config),
        ("backend", report["backend"]),
        (f"cycles, end to end ({report['cycle_model']})", f"{report['cycles']:,}"),
        ("utilization", f"{100 * report['utilization']:.1f} % ({report['bound']}-bound)"),
        ("cycles of the bare array (no memory)", f"{report['array_cycles']:,}"),
        ("cycles (SCALE-Sim convention)", f"{report['scalesim_cycles']:,}"),
        (f"modeled time at {config['clock_mhz']:g} MHz", f"{report['modeled_us']:.2f} us"),
        ("MAC slots / bytes read / bytes written", _traffic(counters)),
        ("int32 outputs vs torch oracle", _verdict(report)),
        ("wall time", f"{1e3 * report['wall_s']:.1f} ms"),
    ]
    if report["cycle_model"] == "rtl":
        rows.insert(5, _model_row(report))
    return rows


def _memory_row(config: dict) -> tuple[str, str]:
    return (
        "main memory",
        f"{config['bus_bytes']} B/cycle, {config['mem_latency']}-cycle latency",
    )


def _traffic(counters: dict) -> str:
    return (
        f"{counters.get('macs', 0):,} / {counters.get('bytes_read', 0):,} / "
        f"{counters.get('bytes_written', 0):,}"
    )


def _spmm_rows(report: dict) -> list[tuple[str, str]]:
    shape, config = report["shape"], report["config"]
    groups = config["sparse_lanes"] // config["cols"]
    rows = [
        (
            "SpMM W (N x K) @ X (K x M)",
            f"({shape['n']} x {shape['k']}) @ ({shape['k']} x {shape['m']})",
        ),
        ("W nonzeros", f"{report['nnz']:,} ({100 * report['sparsity']:g} % zeros)"),
        ("sparse engine", f"{config['sparse_lanes']} MACs = {groups} nonzeros x {config['cols']}"),
        _memory_row(config),
        ("backend", report["backend"]),
        (f"cycles, end to end ({report['cycle_model']})", f"{report['cycles']:,}"),
        (
            f"dense {config['rows']} x {config['cols']} {config['dataflow'].upper()} "
            "accelerator (model)",
            f"{report['dense_cycles']:,} cycles (sparse {report['speedup']:.2f}x faster)",
        ),
        ("MAC utilization (useful MACs / slots)", f"{100 * report['utilization']:.1f} %"),
        (f"modeled time at {config['clock_mhz']:g} MHz", f"{report['modeled_us']:.2f} us"),
        ("MACs / bytes read / bytes written", _traffic(report["counters"])),
        ("int32 outputs vs torch oracle", _verdict(report)),
        ("wall time", f"{1e3 * report['wall_s']:.1f} ms"),
    ]
    if report["cycle_model"] == "rtl":
        rows.insert(6, _model_row(report))
    return rows


def _model_row(report: dict) -> tuple[str, str]:
    error = (report["model_cycles"] - report["cycles"]) / report["cycles"]
    return ("cycles (analytical model sim.perf)", f"{report['model_cycles']:,} ({error:+.1%})")


def _verdict(report: dict) -> str:
    verdict = "exact" if report["mismatches"] == 0 else f"{report['mismatches']} MISMATCHES"
    return f"{verdict} ({report['outputs']:,} outputs)"


def render(report: dict, console: Console) -> None:
    """Print the report as a table."""
    spmm = report["workload"] == "spmm"
    title = "Tessera: sparse int8 GEMM" if spmm else "Tessera: int8 GEMM"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in _spmm_rows(report) if spmm else _gemm_rows(report):
        table.add_row(name, value)
    console.print(table)


def _console() -> Console:
    """A console 110 columns wide when the output is not a terminal (files, pipes, CI logs)."""
    return Console() if sys.stdout.isatty() else Console(width=110)


def run_model_file(parser: argparse.ArgumentParser, args: argparse.Namespace, config) -> dict:
    """``--model``: run and print the exported program; a bad file, or an option that belongs
    to the workloads, exits through ``parser.error``."""
    given = [
        flag
        for flag, value in (
            ("--workload", args.workload),
            ("--batch", args.batch),
            ("--images", args.images),
            ("--trace", args.trace),
            ("--no-baselines", args.no_baselines or None),
            ("--sparsity", args.sparsity),
            ("--pattern", None if args.pattern == "unstructured" else args.pattern),
            ("--engine", None if args.engine == "auto" else args.engine),
        )
        if value is not None
    ]
    if given:
        parser.error(f"--model runs your program; {', '.join(given)} apply to the workloads")
    try:
        report = run_exported(
            args.model,
            args.backend or "verilator",
            config,
            seed=args.seed,
            input_shape=args.input_shape,
        )
    except ValueError as error:
        parser.error(str(error))
    render_exported(report, _console())
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status: 1 if a workload's output disagrees with
    its oracle; ``--model`` reports its agreement with torch (PT2E runs in float there, so a few
    outputs may differ by a step) and returns 0."""
    # torch 2.13 announces the deprecation of its quantized tensors on every weight unpacking;
    # the models here use them on purpose (they are the int8 oracle).
    warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fpga_report is not None:
        config, clock_source = config_from_fpga_report(parser, args)
    else:
        config, clock_source = config_from_args(parser, args), ASSUMED_CLOCK
    if args.model is not None:
        report = run_model_file(parser, args, config)
        finish(report, config, clock_source, args.json)
        plot_layers(report, config, args.plot)
        return 0
    if args.input_shape is not None:
        parser.error("--input-shape gives the input of --model; the workloads make their own")
    args.workload = args.workload or "mlp"
    if args.workload not in MODELS:
        if args.pattern != "unstructured" or args.engine != "auto":
            parser.error("--pattern and --engine apply to the model workloads")
        args.sparsity = 0.9 if args.sparsity is None else args.sparsity
    elif args.sparsity is None and args.pattern != "unstructured":
        parser.error("--pattern prunes the model: give --sparsity too (0.5 for 2:4)")
    elif args.sparsity is not None:
        try:
            check_pruning(args.sparsity, args.pattern)
        except ValueError as error:
            parser.error(str(error))
    if args.plot is not None and args.workload not in MODELS:
        parser.error(f"--plot draws a model's layers; the {args.workload} workload has none")
    if args.backend is None:
        args.backend = "verilator" if args.workload in MODELS else "golden"
    if args.trace is not None:
        if args.workload in MODELS:
            parser.error(f"--trace records the gemm and spmm workloads, not {args.workload!r}")
        if args.backend != "verilator":
            parser.error(f"--trace needs --backend verilator, not {args.backend!r}")
        if args.trace.suffix != ".vcd":
            parser.error(
                f"--trace writes VCD; give a path ending in .vcd, not {str(args.trace)!r} "
                "(FST is not built: Verilator's FST writer needs the lz4 headers, which these "
                "machines do not have)"
            )
    if args.workload in MODELS:
        try:
            report = run_model(
                args.workload,
                args.backend,
                config,
                batch=args.batch or 1 << 30,
                baselines=not args.no_baselines,
                images=args.images,
                sparsity=args.sparsity,
                pattern=args.pattern,
                engine=args.engine,
            )
        except ValueError as error:
            parser.error(str(error))
        render_model(report, _console())
    else:
        if args.workload == "spmm" and not config.has_sparse_engine:
            parser.error(
                "the spmm workload needs the sparse engine: --sparse-lanes 0 leaves it out"
            )
        report = run_spmm(args, config) if args.workload == "spmm" else run_gemm(args, config)
        render(report, _console())
    finish(report, config, clock_source, args.json)
    plot_layers(report, config, args.plot)
    return 0 if report["mismatches"] == 0 else 1


def plot_layers(report: dict, config: AccelConfig, directory: Path | None) -> None:
    """``--plot DIR``: the per-layer utilization of a model run as DIR/layer_utilization.png."""
    if directory is None:
        return
    from sim.sweep.plots import layer_utilization_plot

    path = directory / "layer_utilization.png"
    title = f"{report.get('workload', report.get('model'))} on {config.rows}x{config.cols}"
    layer_utilization_plot(report["layers"], config.macs, title, path)
    _console().print(f"plot: {path}")


#: Where the clock of the modeled times comes from when no ``--fpga-report`` is given.
ASSUMED_CLOCK = (
    "assumed (AccelConfig.clock_mhz's default), not a measured clock: give --fpga-report "
    "DIR/report.json of a board build (python -m hdl.gen --board) for its achieved Fmax; "
    "docs/fpga.md lists what the builds reach"
)


def finish(report: dict, config: AccelConfig, clock_source: str, json_path: Path | None) -> None:
    """Say which clock the modeled times use and why, record it in the report, write the JSON."""
    report["clock"] = {"mhz": config.clock_mhz, "source": clock_source}
    _console().print(f"clock of the modeled times: {config.clock_mhz:g} MHz, {clock_source}")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
