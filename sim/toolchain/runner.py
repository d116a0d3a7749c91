"""cocotb's Verilator runner, subclassed to fix its environment handling (`_new_runner`)."""

from __future__ import annotations

import os
from typing import Any

from sim.toolchain.errors import ToolchainError
from sim.toolchain.tools import MAKEFLAGS, _dist_version


def _new_runner() -> Any:
    """Return a cocotb Verilator runner that applies the Tessera environment fixes.

    cocotb 2.1's runner builds the subprocess environment in ``Runner._set_env_common``: it
    merges ``os.environ`` over the caller's values and then sets ``PYTHONPATH`` to this
    process's ``sys.path``, which silently drops an ``extra_env`` ``PYTHONPATH``. The subclass
    puts the caller's values back on top, prepends the caller's ``PYTHONPATH``, and sets
    `MAKEFLAGS` for every build.
    """
    try:
        from cocotb_tools.runner import Verilator
    except ImportError as error:
        raise ToolchainError(
            f"cocotb is not importable ({error}). Install it with `pip install 'cocotb>=2.1,<2.2'` "
            "(or `pip install -e .` from the repository root)."
        ) from error
    if not hasattr(Verilator, "_set_env_common"):
        raise ToolchainError(
            f"cocotb {_dist_version('cocotb')} has no Runner._set_env_common, which "
            "sim/toolchain/runner.py hooks; install the supported release with "
            "`pip install 'cocotb>=2.1,<2.2'`."
        )

    class _TesseraVerilator(Verilator):  # type: ignore[misc, valid-type]
        def _set_env_common(self) -> None:
            requested = dict(self.env)
            extra_pythonpath = requested.pop("PYTHONPATH", "")
            super()._set_env_common()
            self.env.update(requested)
            self.env["MAKEFLAGS"] = MAKEFLAGS
            if extra_pythonpath:
                self.env["PYTHONPATH"] = os.pathsep.join(
                    [extra_pythonpath, self.env.get("PYTHONPATH", "")]
                )

    return _TesseraVerilator()
