"""Fuzz the accelerator's program handling: seeded malformed programs, RTL against the ISA model.

Runs `sim.fuzz.Campaign` on the 4x4 native build the tests share (the configuration of
tests/accel_checks.native_config, so the build is a cache hit after the tests): every mutation
kind of `sim.fuzz.KINDS` in turn, each program run in the Verilator harness from memory (on a
fresh model, with a cycle bound that reports a hang as a hang) and predicted by
`sim.fuzz.expected_outcome`. Prints programs run, per-kind counts, verdicts, disagreements,
hangs, crashes and programs per second; progress every 1000 programs on stderr.

Run: ``python bench/fuzz_programs.py [--count 100000] [--seed 1] [--dataflow ws]
[--no-sparse-engine]``. Exits with status 1 when any program disagrees.
"""

import argparse
import sys

from sim.drivers.accel_native import NativeAccelerator
from sim.fuzz import Campaign, native_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="programs to run (100000)")
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (1)")
    parser.add_argument("--dataflow", choices=("ws", "os"), default="ws", help="(ws)")
    parser.add_argument(
        "--no-sparse-engine", action="store_true", help="fuzz the build with sparse_lanes=0"
    )
    parser.add_argument("--show", type=int, default=10, help="disagreements to print (10)")
    args = parser.parse_args(argv)
    config = native_config(args.dataflow, **({"sparse_lanes": 0} if args.no_sparse_engine else {}))

    def progress(report):
        print(
            f"  {report.programs} programs, {len(report.disagreements)} disagreements, "
            f"{report.programs_per_second:.0f}/s",
            file=sys.stderr,
            flush=True,
        )

    with NativeAccelerator(config) as accelerator:
        campaign = Campaign(accelerator, args.seed)
        report = campaign.run(args.count, progress=progress)
    engine = "no sparse engine" if args.no_sparse_engine else "sparse engine"
    print(f"4x4 {args.dataflow}, {engine}, seed {args.seed}")
    print(report.summary())
    for disagreement in report.disagreements[: args.show]:
        print(f"  {disagreement}")
    return 1 if report.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
