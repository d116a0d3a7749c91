"""A 200-point design-space sweep of the CNN on the embedded Dask cluster: wall time, points/s.

Draws ``--points`` configurations (seeded) from a grid of array shapes, dataflows, bus widths,
scratchpad sizes and memory latencies (`GRID`, 1,200 points), and runs `sim.sweep.run` on them
for the CNN (``--batch`` digits images per inference) into a fresh CSV file on a
`distributed.LocalCluster` of one worker per core. Prints the wall time from the call to the
last row (cluster start-up and the model's layer derivation included), points per second, and
the best configurations. Target (issue 20): 200 points in under 5 minutes on a 2-core machine.

Run: ``python bench/sweep_cnn.py [--points 200] [--batch 1] [--workers N] [--rtl-sample 0]``.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sim.sweep import run
from sim.sweep.__main__ import summary_table
from sim.sweep.plots import best, pareto_front

GRID = {
    "rows": [2, 4, 8, 16, 32],
    "cols": [2, 4, 8, 16, 32],
    "dataflow": ["ws", "os"],
    "bus_bytes": [4, 8, 16, 32],
    "spad_bytes": [4096, 65536],
    "mem_latency": [20, 64, 200],
}
TARGET_S = 300.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rtl-sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(width=110)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "cnn.csv"
        start = time.perf_counter()
        rows = run(
            GRID,
            "cnn",
            out,
            random=args.points,
            seed=args.seed,
            batch=args.batch,
            workers=args.workers,
            rtl_sample=args.rtl_sample,
        )
        wall = time.perf_counter() - start
    console.print(
        summary_table(
            sorted(pareto_front(rows), key=lambda r: r["latency_us"])[:10],
            "Pareto front (first 10 by latency)",
        )
    )
    console.print(summary_table([best(rows)], "least energy x latency"))
    for r in rows:
        if r["rtl_cycles"] is not None:
            console.print(
                f"RTL {r['rows']}x{r['cols']} {r['dataflow']}: {r['rtl_cycles']:,} "
                f"cycles, model {r['cycles']:,} ({100 * r['rtl_error']:+.2f} %)"
            )
    print(
        f"{len(rows)} points of the CNN (batch {args.batch}) in {wall:.1f} s: "
        f"{len(rows) / wall:.2f} points/s; target {TARGET_S:g} s: "
        f"{'met' if wall < TARGET_S else 'NOT met'}"
    )
    return 0 if wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
