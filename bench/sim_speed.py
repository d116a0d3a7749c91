"""Simulated cycles per wall second of the systolic array on each simulation path.

Paths: Amaranth's simulator (pysim), cocotb driving every cycle from Python on Verilator, and
the native C++ harness (whole programs per ctypes call). Arrays 8x8 and 16x16, both dataflows;
results are checked bit-exactly on every path. Prints a table and the native/cocotb ratio.
Run: ``python bench/sim_speed.py`` (builds are cached; a cold run builds each design).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hdl.config import AccelConfig
from sim.array_program import gemm_program
from sim.drivers.native import NativeSim
from sim.drivers.pysim import run_pysim
from sim.golden.gemm import gemm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_systolic_cocotb import measure_cocotb_speed

ARRAYS = [(8, "ws"), (8, "os"), (16, "ws"), (16, "os")]


def operands(size: int):
    rng = np.random.default_rng(size)
    a = rng.integers(-128, 128, (size, size), dtype=np.int8)
    b = rng.integers(-128, 128, (size, size), dtype=np.int8)
    return a, b


def timed(run, program, a, b) -> float:
    start = time.perf_counter()
    output, cycles = run(program)
    seconds = time.perf_counter() - start
    assert np.array_equal(program.assemble(output), gemm(a, b))
    return cycles / seconds, cycles


def main() -> None:
    table = Table(title="Simulated cycles per second (one core)")
    for column in ("array", "pysim", "cocotb", "native", "native GEMM", "native / cocotb"):
        table.add_column(column, justify="right")
    for size, dataflow in ARRAYS:
        config = AccelConfig(rows=size, cols=size, dataflow=dataflow)
        a, b = operands(32)
        pysim_rate, _ = timed(lambda p: run_pysim(p), gemm_program(a, b, config), a, b)
        with tempfile.TemporaryDirectory() as run_dir:
            cocotb = measure_cocotb_speed(config, [(64, 64, 64)], Path(run_dir))
        native = NativeSim(config)
        a, b = operands(256)
        program = gemm_program(a, b, config)
        native.run(program)  # warm-up
        rates = []
        for _ in range(5):
            start = time.perf_counter()
            output, cycles, _ = native.run(program)
            rates.append(cycles / (time.perf_counter() - start))
        assert np.array_equal(program.assemble(output), gemm(a, b))
        native_rate = float(np.median(rates))
        table.add_row(
            f"{size}x{size} {dataflow}",
            f"{pysim_rate:,.0f}",
            f"{cocotb['cycles_per_second']:,.0f}",
            f"{native_rate:,.0f}",
            f"256^3, {cycles:,} cycles",
            f"{native_rate / cocotb['cycles_per_second']:.0f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
