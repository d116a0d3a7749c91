"""The Verilog requantizer under cocotb + Verilator: exact int8 results and cycles, flow control.

Each lane count is converted to Verilog (`hdl.units`) and built once through the build cache of
`sim.toolchain.build_cocotb` (cold: 10-30 s on 2 cores). tests/cocotb/requant_tb.py runs random
accumulators over all of int32 with multipliers over the hardware's whole range, and exact .5
ties, back to back, checking every beat against torch's float32 requantization
(`requantize_float`) and, without flow control, the cycle count.
"""

import json
import re
from pathlib import Path

import pytest
from unit_cocotb import run_unit_tb

from hdl.config import AccelConfig
from sim.requant_program import requant_cycles

FLOWS = ("none", "idle", "stall", "both")
FAULTS = ("model", "cycles", "beats")


def run_tb(cols: int, run_dir: Path, testcase, *, cases=None, check=True):
    """Run `testcase` of requant_tb on the (cached) build for `cols` lanes; (result, speed)."""
    env = {} if cases is None else {"TESSERA_REQUANT_CASES": json.dumps(cases)}
    config = AccelConfig(rows=2, cols=cols)
    return run_unit_tb(
        "requant", config, "requant_tb", run_dir, testcase, env=env, seed=11, check=check
    )


@pytest.mark.parametrize("cols", [3, 8])
def test_exact_results_cycles_and_flow_control(tmp_path, cols):
    names = [f"test_requant/flow={flow}" for flow in FLOWS]
    result, speed = run_tb(cols, tmp_path, names)
    assert (result.passed, result.failed) == (4, 0), result.failed_tests
    exact = [run for run in speed["runs"] if run["test"].endswith("none")]
    chunks = AccelConfig(rows=2, cols=cols).requant_chunks  # 3 and 2: one lane per 3 or 2
    assert [run["cycles"] for run in exact] == [cols + n * chunks + 5 for n in (200, 100, 150)]
    slowed = [run for run in speed["runs"] if not run["test"].endswith("none")]
    assert all(run["cycles"] > cols + 100 + 5 for run in slowed)


def test_checker_catches_faults(tmp_path):
    names = [f"test_checker_must_fail/fault={fault}" for fault in FAULTS]
    result, _ = run_tb(4, tmp_path, names, cases=[["ties", 40, 0, False]], check=False)
    assert (result.passed, result.failed) == (0, 3)
    log = result.log_file.read_text()
    # Rounding half away from zero differs from half-to-even on about half of the ties.
    assert re.search(r"out beat \d+ is \[[-\d, ]+\] last=False, model \[", log)
    cycles = requant_cycles(40, AccelConfig(rows=2, cols=4))
    assert f"took {cycles} cycles, the model says {cycles + 1}" in log
    chunks = AccelConfig(rows=2, cols=4).requant_chunks  # the 40th row comes a row later
    assert f"an extra out beat, {chunks} cycle(s) after the last of the 39 expected" in log
