"""The whole accelerator from memory: RTL cycles vs the analytical model vs SCALE-Sim's convention.

Each int8 GEMM (int32 output) runs through `get_backend("verilator", config)`: operands in the
memory model, the `sim.schedule` program on the command stream, the result read back and
checked bit-exactly against `sim.golden`. Beside its end-to-end RTL cycles the table prints
`sim.perf.gemm_estimate` (the analytical model of the whole accelerator, target: within 5 %),
SCALE-Sim's convention (`sim.cycles.scalesim_cycles`: array folds only, no memory) and the
utilization M*N*K / (cycles * R * C). Two sets: the square sweep 16..512, where the run turns
from latency- to compute-bound, and 20 seeded random shapes (each dimension 1..399).

Run: ``python bench/accel_sweep.py [--dataflow ws|os] [--seed S] [--markdown]``. The default
configuration is issue 5's: 16x16 array, 16 bytes/cycle, 64-cycle memory latency. A cold
Verilator build of the 16x16 accelerator takes about two minutes, then it is cached; the runs
take about 15 s. Exits 1 if a result is wrong or the model misses the 5 % target.
"""

import argparse
import sys
import time

import numpy as np

from hdl.config import AccelConfig
from sim.backends import get_backend
from sim.cycles import scalesim_cycles, utilization
from sim.golden.gemm import gemm
from sim.perf import gemm_estimate

SWEEP = (16, 32, 64, 128, 256, 512)
RANDOM_SHAPES = 20
TARGET = 0.05  # largest |model - RTL| / RTL
COLUMNS = (
    "M x N x K",
    "RTL cycles",
    "model",
    "model err",
    "SCALE-Sim",
    "SCALE-Sim / RTL",
    "utilization",
    "bound",
    "RTL wall s",
    "model wall s",
)


def random_shapes(seed: int) -> list[tuple[int, int, int]]:
    """`RANDOM_SHAPES` seeded (M, N, K), each in 1..399."""
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(1, 400, 3)) for _ in range(RANDOM_SHAPES)]


def measure(backend, config: AccelConfig, shape: tuple[int, int, int], rng) -> dict:
    """One GEMM on the RTL and on the model; raises if the RTL result is wrong."""
    m, n, k = shape
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a.flat[0], b.flat[-1] = -128, 127
    start = time.perf_counter()
    result = backend.gemm(a, b)
    rtl_wall = time.perf_counter() - start
    if not np.array_equal(result.output, gemm(a, b)):
        raise AssertionError(f"{m} x {n} x {k}: the accelerator's result differs from sim.golden")
    start = time.perf_counter()
    estimate = gemm_estimate(m, n, k, config)
    model_wall = time.perf_counter() - start
    return {
        "shape": shape,
        "rtl": result.cycles,
        "model": estimate.cycles,
        "error": (estimate.cycles - result.cycles) / result.cycles,
        "scalesim": scalesim_cycles(m, n, k, config),
        "utilization": utilization(m, n, k, result.cycles, config),
        "bound": estimate.bound,
        "rtl_wall": rtl_wall,
        "model_wall": model_wall,
    }


def cells(row: dict) -> list[str]:
    m, n, k = row["shape"]
    return [
        f"{m} x {n} x {k}",
        f"{row['rtl']:,}",
        f"{row['model']:,}",
        f"{100 * row['error']:+.2f} %",
        f"{row['scalesim']:,}",
        f"{row['scalesim'] / row['rtl']:.2f}",
        f"{100 * row['utilization']:.1f} %",
        row["bound"],
        f"{row['rtl_wall']:.3f}",
        f"{row['model_wall']:.3f}",
    ]


def print_table(title: str, rows: list[dict], markdown: bool) -> None:
    print(f"\n{title}")
    if markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(cells(row)) + " |")
        return
    table = [list(COLUMNS)] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataflow", choices=("ws", "os"), default="ws")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random shapes")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    config = AccelConfig(dataflow=args.dataflow)
    print(
        f"{config.rows}x{config.cols} {config.dataflow.value.upper()}, {config.bus_bytes} "
        f"B/cycle, {config.mem_latency}-cycle latency; building or loading the accelerator...",
        flush=True,
    )
    backend = get_backend("verilator", config)
    rng = np.random.default_rng(args.seed)
    sets = {
        "sweep": [(size, size, size) for size in SWEEP],
        f"{RANDOM_SHAPES} random shapes (seed {args.seed})": random_shapes(args.seed),
    }
    worst = 0.0
    for title, shapes in sets.items():
        rows = []
        for index, shape in enumerate(shapes):
            rows.append(measure(backend, config, shape, rng))
            print(f"  {title}: {index + 1}/{len(shapes)} {shape}", file=sys.stderr, flush=True)
        print_table(title, rows, args.markdown)
        errors = [abs(row["error"]) for row in rows]
        print(f"model error: max {100 * max(errors):.2f} %, mean {100 * np.mean(errors):.2f} %")
        worst = max(worst, *errors)
    met = worst <= TARGET
    print(f"\ntarget: model within {100 * TARGET:g} % of RTL: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
