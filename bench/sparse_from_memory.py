"""Sparse W @ X through the whole accelerator from memory, against the dense GEMM.

Y = W @ X with W 256 x 256 int8 at 50 / 75 / 90 / 95 % zeros and 2:4, X 256 x 64 int8, on the
default configuration (16 x 16 array, sparse engine of 256 MACs, 16 bytes/cycle, 64-cycle
latency): operands in main memory, the scheduler's program (`sim.spmm_schedule`) on the command
stream, Y (int32) stored back, every result checked against the golden GEMM. Printed for each
case: the RTL cycles (native Verilator harness) with the nonzeros cache (one fetch of W's
nonzeros per K-chunk, replayed for the other column blocks of X) and without it (every SPMM
streams them), the analytical model `sim.perf` beside each, the dense GEMM's RTL cycles
(int32 out) and the speed-up. bench/sparse_speedup.py measures the sparse engine alone.

A second table is a what-if of int8 output, for timing only: the same cached program with
each STORE made int8 (Y's rows 16 bytes instead of 64) through one set of C lane parameters
loaded first. Its bytes are not a per-channel requantization of Y (the requantizer's
parameters are per column, and Y's channels are its rows), so it is checked against the ISA
model running the same program (`sim.isa_model`), not against torch; its cycles are those an
int8 SPMM output with per-row parameters would take on today's store path.

Run: ``python bench/sparse_from_memory.py [--seed S]`` (builds are cached; cold: about a minute).
"""

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from hdl.config import AccelConfig
from hdl.isa import Instruction, Op, encode_program
from sim.backends import get_backend
from sim.drivers.accel_native import NativeAccelerator
from sim.golden.gemm import gemm
from sim.golden.param_records import pack_param_records
from sim.golden.requant import RequantParams
from sim.golden.sparse import random_24, random_sparse
from sim.isa_model import IsaModel
from sim.perf import gemm_estimate, program_estimate
from sim.program_builder import place
from sim.spmm_schedule import spmm_memory, spmm_schedule

N, K, M = 256, 256, 64
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
TARGET = 5.0  # at 90 % zeros, the bar


def sparse_run(accelerator, w, x, config, cache: bool) -> tuple[int, int]:
    """(RTL cycles, modeled cycles) of the scheduled SPMM program; the result checked."""
    image, layout = spmm_memory(w, x, config)
    program = spmm_schedule(layout, cache=cache)
    _, size = place([layout.size], config.bus_bytes)
    memory = np.zeros(size, np.uint8)
    memory[: image.size] = image
    cycles = timed_run(accelerator, memory, program, config)
    assert np.array_equal(layout.result(memory), gemm(w, x)), "wrong result"
    return cycles


def int8_store_run(accelerator, w, x, config) -> tuple[int, int]:
    """(RTL cycles, modeled cycles) of the cached program with int8 STOREs (the what-if of the
    module docstring); the RTL's memory checked against the ISA model's."""
    image, layout = spmm_memory(w, x, config)
    # M = 0.85 * 2**-10 on every lane, no bias: at 90 % zeros Y then takes 166 distinct int8
    # values, 1.9 % of them 0 and none clamped (so the comparison is not vacuous).
    multiplier = np.full(config.cols, 0.85 * 2**-10, np.float32)
    records = pack_param_records(np.zeros(config.cols, np.int32), RequantParams(multiplier, 0))
    (_, params_addr), size = place([layout.size, records.size], config.bus_bytes)
    memory = np.zeros(size, np.uint8)
    memory[: image.size] = image
    memory[params_addr : params_addr + records.size] = records
    program = [Instruction(Op.LOAD_PARAMS, dram_addr=params_addr, lanes=config.cols)]
    for ins in spmm_schedule(layout, cache=True):
        if ins.op is Op.STORE:  # the same rows of Y, a byte per value instead of four
            int8_addr = layout.y_addr + (ins.dram_addr - layout.y_addr) // 4
            fields = dict(ins.fields, int8=1, dram_addr=int8_addr, dram_stride=ins.dram_stride // 4)
            ins = Instruction(Op.STORE, **fields, **ins.deps)
        program.append(ins)
    model = IsaModel(config, memory)
    model.run(program)
    cycles = timed_run(accelerator, memory, program, config)
    assert np.array_equal(memory, model.memory), "RTL and ISA model disagree"
    return cycles


def timed_run(accelerator, memory, program, config) -> tuple[int, int]:
    """(RTL cycles, `sim.perf` cycles) of `program` on `memory` (updated in place), which must
    end without an error."""
    run = accelerator.run(memory, encode_program(program))
    assert run.error.name == "NONE", run.error
    return int(run.cycles), program_estimate(program, config).cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of W and X (default 0)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    config = AccelConfig()
    x = rng.integers(-128, 128, (K, M), dtype=np.int8)
    cases = [(f"{s:.0%}", random_sparse(rng, N, K, s)) for s in SPARSITIES]
    cases.append(("2:4", random_24(rng, N, K)))
    dense_result = get_backend("verilator", config).gemm(cases[0][1], x)
    assert np.array_equal(dense_result.output, gemm(cases[0][1], x))
    dense, dense_model = dense_result.cycles, gemm_estimate(N, M, K, config).cycles
    accelerator = NativeAccelerator(config)
    table = Table(title=f"W {N}x{K} @ X {K}x{M} from memory, int32 Y, default AccelConfig")
    columns = (
        "zeros",
        "cached RTL",
        "model",
        "err",
        "streamed RTL",
        "model",
        "dense RTL",
        "speed-up",
    )
    for column in columns:
        table.add_column(column, justify="right")
    speedups = {}
    for name, w in cases:
        cached, cached_model = sparse_run(accelerator, w, x, config, cache=True)
        streamed, streamed_model = sparse_run(accelerator, w, x, config, cache=False)
        speedups[name] = dense / cached
        table.add_row(
            name,
            f"{cached:,}",
            f"{cached_model:,}",
            f"{100 * (cached_model - cached) / cached:+.1f} %",
            f"{streamed:,}",
            f"{streamed_model:,}",
            f"{dense:,}",
            f"{dense / cached:.2f}x (streamed {dense / streamed:.2f}x)",
        )
    what_if = Table(title="What-if (timing only): int8 STOREs, 16 KB Y")
    for column in ("zeros", "RTL", "model", "err", "speed-up over dense int32"):
        what_if.add_column(column, justify="right")
    for name, w in cases:
        cycles, modeled = int8_store_run(accelerator, w, x, config)
        error = f"{100 * (modeled - cycles) / cycles:+.1f} %"
        what_if.add_row(name, f"{cycles:,}", f"{modeled:,}", error, f"{dense / cycles:.2f}x")
    accelerator.close()
    console = Console(width=120)
    console.print(table)
    print(f"dense GEMM: {dense:,} RTL cycles, model {dense_model:,}")
    verdict = "met" if speedups["90%"] >= TARGET else "NOT met"
    print(f"target >= {TARGET}x at 90 % zeros: {speedups['90%']:.2f}x, {verdict}")
    console.print(what_if)


if __name__ == "__main__":
    main()
