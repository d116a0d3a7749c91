"""``python -m sim.run``: run a workload on a simulation backend and print what it cost.

Today's workload is one int8 GEMM on a chosen backend (golden, pysim or verilator): random
operands (seeded, with the int8 extremes -128 and 127 planted in them) are multiplied, the int32
result is checked against an independent oracle (torch's int64 matmul, wrapped to int32), and a
table reports the shape, array, cycles (beside the analytical model's prediction and SCALE-Sim's
convention), utilization and the check. ``--json`` writes the same figures for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hdl.cli import add_array_arguments, config_from_args
from hdl.config import AccelConfig
from sim.backends import BACKENDS, get_backend
from sim.cycles import array_cycles, scalesim_cycles, utilization
from sim.golden.gemm import wrap_int32


def positive_int(text: str) -> int:
    """argparse type: an int >= 1, with a message naming the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sim.run``."""
    parser = argparse.ArgumentParser(
        prog="python -m sim.run",
        description=(
            "Run an int8 workload on a Tessera simulation backend, check it bit-exactly against "
            "an independent oracle, and report cycles and array utilization."
        ),
        epilog="Example: python -m sim.run --m 128 --n 64 --k 300 --rows 8 --cols 8 --dataflow os",
    )
    parser.add_argument(
        "--workload",
        choices=["gemm"],
        default="gemm",
        help="what to run: gemm = one int8 x int8 -> int32 matrix product (default: gemm)",
    )
    parser.add_argument("--m", type=positive_int, default=64, help="rows of A and C (default 64)")
    parser.add_argument(
        "--n", type=positive_int, default=64, help="columns of B and C (default 64)"
    )
    parser.add_argument("--k", type=positive_int, default=64, help="inner dimension (default 64)")
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="golden",
        help="simulation backend (default: golden, the numpy numeric spec)",
    )
    add_array_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH"
    )
    return parser


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
    backend = get_backend(args.backend, config)
    start = time.perf_counter()
    result = backend.gemm(a, b)
    wall = time.perf_counter() - start
    mismatches = int(np.count_nonzero(result.output != torch_oracle(a, b)))
    return {
        "workload": "gemm",
        "backend": args.backend,
        "shape": {"m": args.m, "n": args.n, "k": args.k},
        "config": config.to_dict(),
        "cycles": result.cycles,
        "cycle_model": result.cycle_model,
        "model_cycles": array_cycles(args.m, args.n, args.k, config),
        "scalesim_cycles": scalesim_cycles(args.m, args.n, args.k, config),
        "utilization": utilization(args.m, args.n, args.k, result.cycles, config),
        "counters": result.counters,
        "mismatches": mismatches,
        "outputs": int(result.output.size),
        "modeled_us": result.cycles / config.clock_mhz,
        "wall_s": wall,
    }


def render(report: dict, console: Console) -> None:
    """Print the report as a table."""
    shape, config = report["shape"], report["config"]
    table = Table(title="Tessera: int8 GEMM", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    verdict = "exact" if report["mismatches"] == 0 else f"{report['mismatches']} MISMATCHES"
    rows = [
        (
            "GEMM (M x K) @ (K x N)",
            f"({shape['m']} x {shape['k']}) @ ({shape['k']} x {shape['n']})",
        ),
        ("array", f"{config['rows']} x {config['cols']} {config['dataflow'].upper()}"),
        ("backend", report["backend"]),
        (f"cycles ({report['cycle_model']})", f"{report['cycles']:,}"),
        ("utilization", f"{100 * report['utilization']:.1f} %"),
        (f"modeled time at {config['clock_mhz']:g} MHz", f"{report['modeled_us']:.2f} us"),
        ("MACs", f"{report['counters'].get('macs', 0):,}"),
        ("int32 outputs vs torch oracle", f"{verdict} ({report['outputs']:,} outputs)"),
        ("wall time", f"{1e3 * report['wall_s']:.1f} ms"),
    ]
    extra = [("cycles (SCALE-Sim convention)", f"{report['scalesim_cycles']:,}")]
    if report["cycle_model"] == "rtl":
        agree = "=" if report["model_cycles"] == report["cycles"] else "!="
        extra.insert(0, ("cycles (analytical model)", f"{report['model_cycles']:,} ({agree} RTL)"))
    rows[4:4] = extra
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (1 if any output disagrees)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    report = run_gemm(args, config)
    render(report, Console())
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
