"""Which multipliers of a board build get the device's DSP blocks, and which become logic.

Yosys maps every multiplier to DSP blocks when asked to, with no budget: a design with more
multipliers than the device has DSPs fails in place and route. A board build therefore lists the
design's multipliers first (`list_multipliers`: one short Yosys run on the elaborated RTLIL) and
`plan` shares out the DSPs: multipliers in order of the logic a DSP saves (operand bits
``a * b`` per DSP block it takes, most first; the requantizer's 25x24 products before the
array's 8x8 ones), each taken while the blocks it needs are left. The rest go to Booth
multipliers in logic (Yosys' ``booth`` pass, which ``synth_ice40`` / ``synth_ecp5`` do not run
themselves). `synthesis_script` is the Yosys script that does that before synthesis.

``booth`` leaves products with an operand under 4 bits or a result under 8 bits alone (e.g. the
dispatcher's ``nz_beats * 5``), and synthesis then puts them on DSPs all the same; `plan` gives
those their blocks first, so that the budget counts them (an 8x8 ECP5 build once planned 156
of 156 blocks and placed 158).

DSP blocks per multiplier: an ``A x B`` product takes ``ceil(A / w) * ceil(B / w)`` blocks of a
``w x w`` multiplier (18 for the ECP5's MULT18X18D, 16 for the iCE40's SB_MAC16), as Yosys'
``mul2dsp`` splits it; products narrower than Yosys' DSP minimum widths stay in logic anyway.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "DSP_WIDTH",
    "Multiplier",
    "MultiplierPlan",
    "parse_multipliers",
    "plan",
    "synthesis_script",
]

#: Operand width of one DSP block's multiplier, per FPGA family.
DSP_WIDTH = {"ecp5": 18, "ice40": 16}
#: Yosys leaves products narrower than this (either operand) or with fewer result bits in logic
#: (``DSP_A_MINWIDTH`` / ``DSP_B_MINWIDTH`` / ``DSP_Y_MINWIDTH`` of synth_ecp5 and synth_ice40).
_MIN_OPERAND = 2
_MIN_RESULT = {"ecp5": 0, "ice40": 11}

#: ``booth`` maps only products whose operands both have this many bits and whose result has
#: `_BOOTH_MIN_RESULT` (Yosys' passes/techmap/booth.cc).
_BOOTH_MIN_OPERAND = 4
_BOOTH_MIN_RESULT = 8

#: Yosys script that lists the multipliers as synthesis will see them (flattened, operand widths
#: reduced); the same passes start `synthesis_script`, so the cell names agree.
PREPARE = ["hierarchy -top {top}", "proc", "flatten", "opt_expr", "opt_clean", "wreduce"]


@dataclass(frozen=True)
class Multiplier:
    """One ``$mul`` cell: its name in the flattened design and its operand / result widths."""

    name: str
    a_width: int
    b_width: int
    y_width: int

    def dsp_blocks(self, family: str) -> int:
        """DSP blocks Yosys would use for it on `family` (0 where it stays in logic anyway)."""
        if min(self.a_width, self.b_width) < _MIN_OPERAND or self.y_width < _MIN_RESULT[family]:
            return 0
        width = DSP_WIDTH[family]
        return math.ceil(self.a_width / width) * math.ceil(self.b_width / width)

    @property
    def booth_maps(self) -> bool:
        """Whether Yosys' ``booth`` pass would turn it into logic (it skips small products)."""
        return (
            min(self.a_width, self.b_width) >= _BOOTH_MIN_OPERAND
            and self.y_width >= _BOOTH_MIN_RESULT
        )


@dataclass(frozen=True)
class MultiplierPlan:
    """`plan`'s answer: the multipliers given DSP blocks, those left to logic, blocks used."""

    dsp: tuple[Multiplier, ...]
    logic: tuple[Multiplier, ...]
    dsp_blocks: int
    available: int

    def summary(self) -> str:
        return (
            f"{len(self.dsp)} multipliers on {self.dsp_blocks} DSP blocks, "
            f"{len(self.logic)} in logic; budget {self.available}"
        )


_CELL = re.compile(r"^\s*cell \$mul (\S+)$(.*?)^\s*end$", re.MULTILINE | re.DOTALL)
_WIDTH = re.compile(r"^\s*parameter \\([ABY])_WIDTH (\d+)$", re.MULTILINE)


def parse_multipliers(dump: str) -> list[Multiplier]:
    """The ``$mul`` cells of a Yosys ``dump t:$mul`` output."""
    found = []
    for cell in _CELL.finditer(dump):
        widths = {port: int(width) for port, width in _WIDTH.findall(cell[2])}
        found.append(Multiplier(cell[1], widths["A"], widths["B"], widths["Y"]))
    return found


def plan(multipliers: list[Multiplier], family: str, available: int) -> MultiplierPlan:
    """Share `available` DSP blocks of `family` out among `multipliers` (module docstring)."""
    if family not in DSP_WIDTH:
        raise ValueError(f"unknown FPGA family {family!r}; known: {', '.join(DSP_WIDTH)}")

    def saving(mul: Multiplier) -> tuple[float, str]:
        return (-mul.a_width * mul.b_width / mul.dsp_blocks(family), mul.name)

    wanting = [m for m in multipliers if m.dsp_blocks(family)]
    # Those booth cannot move to logic take their blocks whatever the budget says.
    dsp = [m for m in wanting if not m.booth_maps]
    used = sum(m.dsp_blocks(family) for m in dsp)
    for mul in sorted((m for m in wanting if m.booth_maps), key=saving):
        if used + mul.dsp_blocks(family) <= available:
            dsp.append(mul)
            used += mul.dsp_blocks(family)
    chosen = {mul.name for mul in dsp}
    logic = tuple(m for m in wanting if m.name not in chosen)
    return MultiplierPlan(tuple(dsp), logic, used, available)


def synthesis_script(top: str, logic: tuple[Multiplier, ...] | list[Multiplier]) -> str:
    """Yosys commands to run before ``synth_*``: `PREPARE`, then ``booth`` on `logic`'s cells."""
    lines = [step.format(top=top) for step in PREPARE]
    if logic:
        lines.append("booth " + " ".join(f"{top}/{mul.name}" for mul in logic))
    return "\n".join(lines) + "\n"
