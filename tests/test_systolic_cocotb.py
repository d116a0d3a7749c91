"""The Verilog systolic array under cocotb + Verilator: exact results, exact cycles, flow control.

Each array configuration is converted to Verilog (`hdl.gen.array_verilog`) and built once
through the build cache of `sim.toolchain.build_cocotb` (cold: 12-40 s up to 8x8, 2-2.5 min for
16x16 on 2 cores; cached: milliseconds), two builds at a time in the background (`ArrayBuilds`).
The cocotb module tests/cocotb/systolic_tb.py then runs every GEMM of `gemm_shapes` back to
back, as seeded random int8 operands with planted extremes:

- ``test_gemm/flow=none``: inputs always valid, output always ready; exact int32 results and
  cycle counts equal to `sim.cycles.array_cycles`;
- ``test_gemm/flow=idle|stall|both``: random idle cycles on the inputs and/or random
  back-pressure on ``out``; exact int32 results, stream protocol checked;
- ``test_gap_before_last_beat``: a directed idle gap before the last input beat of a tile
  (output-stationary: K < R), which once found a bug: last beats of consecutive tiles
  less than R cycles apart.

`test_checker_catches_faults` proves the checker can fail. Seeds are fixed; set
``TESSERA_COCOTB_SEED=<int>`` to shift them all. `measure_cocotb_speed` is the hook for
benchmarks (simulated cycles and wall seconds of cocotb runs).
"""

import concurrent.futures
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from hdl.config import AccelConfig
from hdl.gen import ARRAY_TOP, array_verilog
from sim.array_program import gemm_program
from sim.cycles import array_cycles
from sim.toolchain import CocotbBuild, CocotbResult, build_cocotb, run_cocotb

REPO = Path(__file__).resolve().parents[1]
COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"
TB_MODULE = "systolic_tb"  # tests/cocotb/systolic_tb.py
FLOW_CONTROLLED = ("idle", "stall", "both")
FAULTS = ("model", "cycles", "beats")

ARRAYS = [(2, 2), (4, 4), (8, 8), (16, 16), (4, 8)]


def _marks(rows: int, cols: int, dataflow: str, *, flow_control: bool = False) -> list:
    marks = []
    if rows >= 16 or (rows >= 8 and dataflow == "ws"):
        marks.append(pytest.mark.slow)  # cold Verilator build of a minute or more (cached: s)
    return marks


def _configs(**options) -> list:
    """Every (rows, cols, dataflow) of `ARRAYS` x {ws, os} as pytest params."""
    params = []
    for dataflow in ("ws", "os"):
        for rows, cols in ARRAYS:
            marks = _marks(rows, cols, dataflow, **options)
            params.append(
                pytest.param(rows, cols, dataflow, id=f"{dataflow}-{rows}x{cols}", marks=marks)
            )
    return params


def gemm_shapes(config: AccelConfig) -> list[tuple[int, int, int]]:
    """(M, N, K) shapes run on `config`: ragged in every dimension, plus tile-exact extremes.

    1x1x1; one more than a tile everywhere; weight-stationary loads hidden (M >= 2R + C - 1);
    tiny M with K a multiple of R (weight-stationary bank stalls); K < R (output-stationary
    bubbles); N one short of a tile.
    """
    r, c = config.rows, config.cols
    return [
        (1, 1, 1),
        (r + 1, c + 1, r + 1),
        (2 * r + c + 1, 2 * c - 1, 2 * r - 1),
        (3, c, 3 * r),
        (max(r - 1, 1), 2 * c + 1, max(r // 2, 1)),
        (2 * r + 3, max(c - 1, 1), r + 5),
    ]


def cocotb_env(config: AccelConfig, shapes, speed_json: Path | None = None) -> dict[str, str]:
    """Environment for tests/cocotb/systolic_tb.py (see its module docstring)."""
    env = {
        "TESSERA_ACCEL_CONFIG": config.to_json(),
        "TESSERA_SYSTOLIC_GEMMS": json.dumps([list(shape) for shape in shapes]),
        "PYTHONPATH": str(REPO),
    }
    if speed_json is not None:
        env["TESSERA_SPEED_JSON"] = str(speed_json)
    return env


def array_build(config: AccelConfig) -> CocotbBuild:
    """The cocotb build of the array for `config` (from the on-disk cache when it is there)."""
    return build_cocotb(array_verilog(config), ARRAY_TOP)


class ArrayBuilds:
    """Builds array configurations in the background, `workers` at a time, largest first.

    A cold Verilator build is mostly serial work (one core busy on average), so two at once on
    two cores nearly halve the wall time of a cold run. Calling the object with a config waits
    for its build (starting it if it was not queued). Amaranth's Verilog conversion runs in one
    thread at a time; the builds themselves are subprocesses, locked per cache key.
    """

    def __init__(self, configs, workers: int = 2):
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "array-build")
        self._convert = threading.Lock()
        self._futures: dict[AccelConfig, concurrent.futures.Future] = {}
        for config in sorted(set(configs), key=lambda c: c.rows * c.cols, reverse=True):
            self._submit(config)

    def _submit(self, config: AccelConfig) -> concurrent.futures.Future:
        if config not in self._futures:
            self._futures[config] = self._pool.submit(self._build, config)
        return self._futures[config]

    def _build(self, config: AccelConfig) -> CocotbBuild:
        with self._convert:
            verilog = array_verilog(config)
        return build_cocotb(verilog, ARRAY_TOP)

    def __call__(self, config: AccelConfig) -> CocotbBuild:
        return self._submit(config).result()

    def close(self) -> None:
        """Drop queued builds and wait for running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def builds(request):
    """`ArrayBuilds` queued with the configs of this module's selected tests."""
    configs = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and {"rows", "cols", "dataflow"} <= params.keys():
            configs.append(
                AccelConfig(rows=params["rows"], cols=params["cols"], dataflow=params["dataflow"])
            )
    builder = ArrayBuilds(configs)
    yield builder
    builder.close()


def run_tb(
    build: CocotbBuild,
    config: AccelConfig,
    run_dir: Path,
    testcase,
    *,
    shapes=None,
    seed: int = 1,
    check: bool = True,
) -> tuple[CocotbResult, dict]:
    """Run `testcase` of the TB; returns the result and the speed record (see systolic_tb).

    ``TESSERA_COCOTB_SEED`` in the environment, if set, is added to `seed` (to explore seeds).
    """
    seed += int(os.environ.get("TESSERA_COCOTB_SEED", "0"))
    speed_json = run_dir / "speed.json"
    shapes = gemm_shapes(config) if shapes is None else shapes
    result = run_cocotb(
        build,
        TB_MODULE,
        COCOTB_DIR,
        run_dir=run_dir,
        extra_env=cocotb_env(config, shapes, speed_json),
        testcase=testcase,
        seed=seed,
        check=check,
    )
    speed = json.loads(speed_json.read_text()) if speed_json.is_file() else {"runs": []}
    return result, speed


@pytest.mark.parametrize(("rows", "cols", "dataflow"), _configs())
def test_exact_results_and_cycles(builds, tmp_path, rows, cols, dataflow):
    config = AccelConfig(rows=rows, cols=cols, dataflow=dataflow)
    result, speed = run_tb(builds(config), config, tmp_path, "test_gemm/flow=none", seed=rows)
    assert (result.passed, result.failed) == (1, 0)
    # The TB checked the cycle counts already; the speed record shows them here too.
    measured = [(run["m"], run["n"], run["k"], run["cycles"]) for run in speed["runs"]]
    expected = [(m, n, k, array_cycles(m, n, k, config)) for m, n, k in gemm_shapes(config)]
    assert measured == expected


@pytest.mark.parametrize(("rows", "cols", "dataflow"), _configs(flow_control=True))
def test_idle_gaps_and_back_pressure_lose_nothing(builds, tmp_path, rows, cols, dataflow):
    """Random idle inputs and/or back-pressure on every shape, and a directed idle gap."""
    config = AccelConfig(rows=rows, cols=cols, dataflow=dataflow)
    names = [f"test_gemm/flow={flow}" for flow in FLOW_CONTROLLED] + ["test_gap_before_last_beat"]
    result, speed = run_tb(builds(config), config, tmp_path, names, seed=100 + rows)
    assert (result.passed, result.failed) == (4, 0), result.failed_tests
    runs = [run for run in speed["runs"] if run["test"].startswith("test_gemm/")]
    assert len(runs) == 3 * len(gemm_shapes(config))
    for run in runs:
        assert run["cycles"] >= array_cycles(run["m"], run["n"], run["k"], config)
    assert sum(run["cycles"] for run in runs) > 3 * sum(
        array_cycles(m, n, k, config) for m, n, k in gemm_shapes(config)
    )


@pytest.mark.parametrize(("dataflow", "first_sum"), [("ws", 2 * 128 * 128), ("os", 3 * 128 * 128)])
def test_checker_catches_faults(builds, tmp_path, dataflow, first_sum):
    config = AccelConfig(rows=2, cols=2, dataflow=dataflow)
    names = [f"test_checker_must_fail/fault={fault}" for fault in FAULTS]
    shape = (3, 3, 3)
    result, _ = run_tb(builds(config), config, tmp_path, names, shapes=[shape], check=False)
    assert (result.passed, result.failed) == (0, 3)
    assert result.failed_tests == tuple(names)
    log = result.log_file.read_text()
    # Output [0, 0] sums -128 * -128 over the first K-tile (ws) or all of K (os); the saturating
    # model reads -128 as -127.
    wrong_sum = first_sum // 128 * 127
    assert re.search(
        rf"out beat 0 is \[{first_sum}, -?\d+\] last=False, model \[{wrong_sum}, ", log
    )
    cycles = array_cycles(*shape, config)
    assert f"took {cycles} cycles, array_cycles says {cycles + 1}" in log
    beats = gemm_program(np.zeros((3, 3), np.int8), np.zeros((3, 3), np.int8), config).output_beats
    assert f"an extra out beat, 1 cycle(s) after the last of the {beats - 1} expected" in log


@pytest.mark.parametrize(
    ("claimed", "message"),
    [
        (AccelConfig(rows=2, cols=2, dataflow="os"), "the DUT has no operands stream"),
        (AccelConfig(rows=3, cols=2, dataflow="ws"), "acts__payload is 17 bits, not 25"),
        (AccelConfig(rows=2, cols=3, dataflow="ws"), "weights__payload is 16 bits, not 24"),
    ],
)
def test_tb_refuses_a_config_that_does_not_match_the_build(builds, tmp_path, claimed, message):
    built = AccelConfig(rows=2, cols=2, dataflow="ws")
    result = run_cocotb(
        builds(built),
        TB_MODULE,
        COCOTB_DIR,
        run_dir=tmp_path,
        extra_env=cocotb_env(claimed, [(1, 1, 1)]),
        testcase="test_gemm/flow=none",
        check=False,
    )
    assert (result.passed, result.failed) == (0, 1)
    assert message in result.log_file.read_text()


def measure_cocotb_speed(
    config: AccelConfig,
    shapes,
    run_dir: Path,
    *,
    flow: str = "none",
    seed: int = 1,
) -> dict:
    """Simulation speed of cocotb on the array: build (cached), run, return the speed record.

    Runs ``test_gemm/flow=<flow>`` of tests/cocotb/systolic_tb.py once over `shapes` ((M, N, K)
    tuples, run back to back after one reset) with ``TESSERA_SPEED_JSON`` set, and returns
    that file's content: ``{"cycles", "seconds", "cycles_per_second", "runs": [...]}``, where
    ``seconds`` is wall time inside the simulator from each GEMM's first input cycle to its last
    output beat (build, simulator start-up and operand preparation excluded) and every run
    records rows, cols, dataflow, m, n, k, idle, stall, cycles and seconds. Results are checked
    as in the tests; a failure raises `sim.toolchain.CocotbTestError`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    testcase = f"test_gemm/flow={flow}"
    _, speed = run_tb(array_build(config), config, run_dir, testcase, shapes=shapes, seed=seed)
    return speed


if __name__ == "__main__":
    # python tests/test_systolic_cocotb.py ROWS COLS DATAFLOW M N K: one speed record as JSON.
    import sys
    import tempfile

    rows, cols, dataflow, *mnk = sys.argv[1:]
    config = AccelConfig(rows=int(rows), cols=int(cols), dataflow=dataflow)
    shape = tuple(int(v) for v in mnk)
    record = measure_cocotb_speed(config, [shape], Path(tempfile.mkdtemp(prefix="cocotb-speed-")))
    print(json.dumps({key: record[key] for key in ("cycles", "seconds", "cycles_per_second")}))
