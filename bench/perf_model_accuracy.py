"""How close `sim.perf` comes to the gateware, over configurations, memories and program kinds.

Runs scheduled programs (`sim.schedule`) on `hdl.top.Accelerator` in the native harness and
compares the end-to-end cycles with `sim.perf`'s estimate; also checks that the model's bytes
read and written and MACs equal the hardware counters. Four configurations: 16x16 WS and OS at
16 bytes/cycle and 64-cycle latency (issue 5's), 8x8 WS and OS at 8 bytes/cycle and 20 cycles.
Programs: square GEMMs, 20 seeded random shapes (WS and OS int32, WS requantized int8), memory
variations (4 bytes/cycle, latency 0 and 300 at run time) and sparse products at 50/90/99 %
zeros. `bench/accel_sweep.py` is the short form for one configuration.

Run: ``python bench/perf_model_accuracy.py [--seed S]``. Cold: four Verilator builds of about
two minutes each (cached afterwards), then about five minutes of simulation on 2 cores.
"""

import argparse
import sys
from collections import defaultdict

import numpy as np

from hdl.config import AccelConfig
from hdl.isa import encode_program
from sim.drivers.accel_native import NativeAccelerator
from sim.golden.gemm import gemm
from sim.golden.requant import RequantParams
from sim.golden.sparse import random_sparse
from sim.perf import gemm_estimate, spmm_estimate
from sim.schedule import gemm_memory
from sim.spmm_schedule import spmm_memory, spmm_schedule

SMALL = dict(rows=8, cols=8, bus_bytes=8, mem_latency=20, spad_bytes=4096, acc_rows=256)
CONFIGS = {
    "16x16 ws": AccelConfig(),
    "16x16 os": AccelConfig(dataflow="os"),
    "8x8 ws": AccelConfig(**SMALL),
    "8x8 os": AccelConfig(dataflow="os", **SMALL),
}


def cases(seed: int) -> list[tuple[str, dict]]:
    """(configuration, case) pairs; a case is a GEMM (m, n, k, int8, latency, bandwidth) or a
    sparse product (n, k, m, sparsity)."""
    plan = []

    def add(name, **case):
        plan.append((name, case))

    for size in (16, 32, 64, 128, 256, 512):
        add("16x16 ws", m=size, n=size, k=size)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        m, n, k = (int(v) for v in rng.integers(1, 400, 3))
        add("16x16 ws", m=m, n=n, k=k)
        add("16x16 os", m=m, n=n, k=k)
        add("16x16 ws", m=m, n=n, k=k, int8=True)
    for size in (16, 64, 256):
        add("16x16 os", m=size, n=size, k=size)
        add("16x16 ws", m=size, n=size, k=size, int8=True)
        add("16x16 ws", m=size, n=size, k=size, bandwidth=4)
        add("16x16 ws", m=size, n=size, k=size, latency=0)
        add("16x16 ws", m=size, n=size, k=size, latency=300)
    for size in (16, 40, 100, 256):
        add("8x8 ws", m=size, n=size, k=size)
        add("8x8 os", m=size, n=size, k=size)
        add("8x8 ws", m=size, n=size, k=size, int8=True)
    for sparsity in (0.5, 0.9, 0.99):
        add("16x16 ws", n=256, k=256, m=64, sparsity=sparsity)
        add("8x8 ws", n=100, k=300, m=40, sparsity=sparsity)
    return plan


def run_case(sim: NativeAccelerator, case: dict, rng) -> tuple[str, str, int, object]:
    """Run one case on the RTL (checked against sim.golden): (kind, label, cycles, estimate)."""
    config = sim.config
    latency, bandwidth = case.get("latency"), case.get("bandwidth")
    if "sparsity" in case:
        n, k, m, sparsity = case["n"], case["k"], case["m"], case["sparsity"]
        w = random_sparse(rng, n, k, sparsity)
        x = rng.integers(-128, 128, (k, m), dtype=np.int8)
        memory, layout = spmm_memory(w, x, config)
        program, expected = spmm_schedule(layout), gemm(w, x)
        estimate = spmm_estimate(w, m, config, latency=latency, bytes_per_cycle=bandwidth)
        kind, label = "spmm", f"spmm {n}x{k}x{m} {sparsity:.0%} zeros"
    else:
        m, n, k, int8 = case["m"], case["n"], case["k"], case.get("int8", False)
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        params = RequantParams(np.full(n, 2**-10, np.float32), 3) if int8 else None
        memory, layout = gemm_memory(a, b, config, params=params)
        program = layout.schedule()
        expected = None if int8 else gemm(a, b)
        estimate = gemm_estimate(
            m, n, k, config, requant=int8, latency=latency, bytes_per_cycle=bandwidth
        )
        kind = "gemm int8" if int8 else "gemm"
        label = f"{m}x{n}x{k}{' int8' if int8 else ''}"
    if latency is not None:
        label += f", latency {latency}"
    if bandwidth is not None:
        label += f", {bandwidth} B/cycle"
    run = sim.run(memory, encode_program(program), latency=latency, bytes_per_cycle=bandwidth)
    if expected is not None and not np.array_equal(layout.result(memory), expected):
        raise AssertionError(f"{label}: the accelerator's result differs from sim.golden")
    counted = (run.counters["macs"], run.counters["bytes_read"], run.counters["bytes_written"])
    if counted != (estimate.macs, estimate.bytes_read, estimate.bytes_written):
        raise AssertionError(f"{label}: model counts {estimate} != hardware {counted}")
    return kind, label, run.cycles, estimate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=123, help="seed of shapes and operands")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sims: dict[str, NativeAccelerator] = {}
    errors = defaultdict(list)
    plan = cases(args.seed)
    for index, (name, case) in enumerate(plan):
        if name not in sims:
            print(f"building or loading the {name} accelerator...", file=sys.stderr, flush=True)
            sims[name] = NativeAccelerator(CONFIGS[name])
        kind, label, cycles, estimate = run_case(sims[name], case, rng)
        error = (estimate.cycles - cycles) / cycles
        errors[(name, kind.split()[0])].append(error)
        print(
            f"[{index + 1:3d}/{len(plan)}] {name:9s} {label:44s} RTL {cycles:8,d}  "
            f"model {estimate.cycles:8,d}  {100 * error:+6.2f} %  {estimate.bound}",
            flush=True,
        )
    print("\n| configuration | programs | runs | exact | max error | mean error |")
    print("|---|---|---|---|---|---|")
    for (name, kind), values in errors.items():
        values = np.abs(values)
        print(
            f"| {name} | {kind} | {len(values)} | {int(np.sum(values == 0))} | "
            f"{100 * values.max():.1f} % | {100 * values.mean():.1f} % |"
        )
    for sim in sims.values():
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
