"""The netlist a native Verilator harness is built from: Amaranth's RTLIL optimised by Yosys.

By default a native library (`sim.drivers.unit_build`, `sim.drivers.accel_build`) is built not
from Amaranth's Verilog text itself but from the same RTLIL run through more Yosys passes
(``netlist="optimized"``: flatten, ``opt``, ``wreduce``, ``opt_dff``). Amaranth computes every
register's next value in a combinational process (the array-wide enable is a mux in front of each
register), which Verilator evaluates as input-dependent logic twice per cycle; ``opt_dff`` folds
the enables into the flip-flops (6-10x faster), ``opt`` merges equal registers, and Yosys's
bit-by-bit sign extensions are rewritten as replications. It is the same design (Yosys's passes
preserve behaviour; the tests check both netlists bit-exactly); ``netlist="gen"`` builds
Amaranth's exact Verilog (`hdl.units.Unit.verilog` for a unit).

The optimised Verilog is cached on disk in ``cache_dir()/native/netlist/`` (key: the RTLIL, the
passes and the Yosys version): Yosys takes 5-10 s on a 16x16 array, once.
"""

from __future__ import annotations

import os
import re
import tempfile

from sim.toolchain import ToolchainError, cache_dir, content_hash

__all__ = ["NETLISTS"]

#: Netlists a native build can be made from; see the module docstring.
NETLISTS = ("optimized", "gen")

_YOSYS_PASSES = ("proc", "flatten", "opt", "wreduce", "opt_dff", "opt_clean -purge")

_IDENT = r"(?:_\d+_|\\\S+ |[A-Za-z_][A-Za-z0-9_$]*)"
_SIGN_EXTENSION = re.compile(r"\{ ((" + _IDENT + r")\[\d+\]), ((?:\1, )*)(" + _IDENT + r") \}")


def _compact_sign_extensions(verilog: str) -> str:
    """Write Yosys's bit-by-bit sign extensions ``{ x[15], x[15], x }`` as ``{ {2{x[15]}}, x }``.

    The two are the same expression; Verilator turns the replication into one shift-and-or, but
    the long concatenation into a chain of per-bit operations (a 16x16 array has 256 of them).
    """

    def replace(match: re.Match[str]) -> str:
        bit, name, rest, base = match.groups()
        if name != base:
            return match.group(0)
        return f"{{ {{{1 + rest.count(bit)}{{{bit}}}}}, {base} }}"

    return _SIGN_EXTENSION.sub(replace, verilog)


def _yosys():
    try:
        from amaranth._toolchain.yosys import find_yosys
    except ImportError as error:  # pragma: no cover - amaranth is a dependency
        raise ToolchainError(
            f"Amaranth's Yosys runner is not importable ({error}); install the project's "
            "dependencies with `pip install -e .`."
        ) from error
    return find_yosys(lambda version: version >= (0, 40))


def _optimized_verilog(rtlil_text: str, top: str) -> str:
    """Run `_YOSYS_PASSES` on the RTLIL; the result is cached on disk (16x16: 5-10 s of Yosys)."""
    yosys = _yosys()
    key = content_hash(
        "tessera-native-netlist-v1",
        rtlil_text,
        list(_YOSYS_PASSES),
        yosys.__name__,
        list(yosys.version()),
    )
    path = cache_dir() / "native" / "netlist" / f"{key}.v"
    if path.is_file():
        return path.read_text()
    script = "\n".join(
        [
            f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil",
            f"hierarchy -top {top}",
            *_YOSYS_PASSES,
            "write_verilog -noattr",
        ]
    )
    verilog = _compact_sign_extensions(yosys.run(["-q", "-"], script, ignore_warnings=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{key}.", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        file.write(verilog)
    os.replace(partial, path)
    return verilog
