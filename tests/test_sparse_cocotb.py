"""The Verilog sparse engine under cocotb + Verilator: exact results and cycles, flow control.

Each configuration is converted to Verilog (`hdl.units`) and built once through the build cache
of `sim.toolchain.build_cocotb` (cold: 15-40 s on 2 cores; cached: milliseconds). The cocotb
module tests/cocotb/sparse_tb.py runs every case of its `default_cases` back to back: all the
acceptance sparsities (0, 50, 75, 90, 99 %), a 2:4 pattern, ragged K over several bank-sized
chunks and ragged M over several column blocks, planted empty, dense and single-nonzero rows.

- ``test_spmm/flow=none``: exact int32 results and cycle counts equal to `sim.cycles.sparse_cycles`;
- ``test_spmm/flow=idle|stall|both``: random idle inputs and/or back-pressure, exact results.

`test_checker_catches_faults` proves the checker can fail.
"""

import json
from pathlib import Path

import pytest
from unit_cocotb import run_unit_tb

from hdl.config import AccelConfig

FLOWS = ("none", "idle", "stall", "both")
FAULTS = ("model", "cycles", "beats")

# (rows, cols, sparse_lanes, sparse_depth): G = 2 and G = 3 with small banks (several K-chunks);
# the default 16x16 engine (G = 16) is slow to build.
ENGINES = [
    pytest.param(2, 2, 4, 16, id="2x2-g2"),
    pytest.param(2, 3, 9, 32, id="3col-g3"),
    pytest.param(16, 16, None, 512, id="16x16-g16", marks=pytest.mark.slow),
]


def run_tb(config: AccelConfig, run_dir: Path, testcase, *, cases=None, check=True):
    """Run `testcase` of sparse_tb on the (cached) build of `config`; (result, speed record)."""
    env = {} if cases is None else {"TESSERA_SPARSE_CASES": json.dumps(cases)}
    return run_unit_tb(
        "sparse", config, "sparse_tb", run_dir, testcase, env=env, seed=7, check=check
    )


@pytest.mark.parametrize(("rows", "cols", "lanes", "depth"), ENGINES)
def test_exact_results_cycles_and_flow_control(tmp_path, rows, cols, lanes, depth):
    config = AccelConfig(rows=rows, cols=cols, sparse_lanes=lanes, sparse_depth=depth)
    names = [f"test_spmm/flow={flow}" for flow in FLOWS]
    result, speed = run_tb(config, tmp_path, names)
    assert (result.passed, result.failed) == (4, 0), result.failed_tests
    runs = {flow: [r for r in speed["runs"] if r["test"].endswith(flow)] for flow in FLOWS}
    assert len(runs["none"]) == 7
    for flow in FLOWS[1:]:  # flow control only ever slows a run down
        for exact, slowed in zip(runs["none"], runs[flow], strict=True):
            assert slowed["cycles"] > exact["cycles"]


def test_checker_catches_faults(tmp_path):
    config = AccelConfig(rows=2, cols=2, sparse_lanes=4, sparse_depth=16)
    names = [f"test_checker_must_fail/fault={fault}" for fault in FAULTS]
    cases = [[3, 5, 2, 0.0]]
    result, _ = run_tb(config, tmp_path, names, cases=cases, check=False)
    assert (result.passed, result.failed) == (0, 3)
    log = result.log_file.read_text()
    # Row 1 of W is all -128 and column 0 of X all -128 but its last row (127): the model reading
    # -128 as -127 disagrees on out beat 1.
    assert "out beat 1 is [" in log and "model [" in log
    assert "cycles, sparse_cycles says" in log
    assert "an extra out beat, 1 cycle(s) after the last of the 2 expected" in log
