"""Run a cocotb testbench of tests/cocotb/ on a unit's cached Verilator build (test helper)."""

import json
import os
from pathlib import Path

from hdl.config import AccelConfig
from hdl.units import UNITS
from sim.toolchain import CocotbResult, build_cocotb, run_cocotb

REPO = Path(__file__).resolve().parents[1]
COCOTB_DIR = REPO / "tests" / "cocotb"


def run_unit_tb(
    unit: str,
    config: AccelConfig,
    tb_module: str,
    run_dir: Path,
    testcase,
    *,
    env: dict[str, str] | None = None,
    seed: int = 1,
    check: bool = True,
) -> tuple[CocotbResult, dict]:
    """Build `unit` for `config` (or reuse the cached build) and run `testcase` of `tb_module`.

    The testbench gets ``TESSERA_ACCEL_CONFIG``, ``TESSERA_SPEED_JSON`` and a ``PYTHONPATH``
    with the repository and tests/ (for the shared operand helpers), plus `env`. Returns the
    cocotb result and the speed record (``{"runs": [...]}``, see tests/cocotb/streams.py).
    """
    speed_json = run_dir / "speed.json"
    full_env = {
        "TESSERA_ACCEL_CONFIG": config.to_json(),
        "TESSERA_SPEED_JSON": str(speed_json),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        **(env or {}),
    }
    spec = UNITS[unit]
    build = build_cocotb(spec.verilog(config), spec.top)
    result = run_cocotb(
        build,
        tb_module,
        COCOTB_DIR,
        run_dir=run_dir,
        extra_env=full_env,
        testcase=testcase,
        seed=seed,
        check=check,
    )
    speed = json.loads(speed_json.read_text()) if speed_json.is_file() else {"runs": []}
    return result, speed
