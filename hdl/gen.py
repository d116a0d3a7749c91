"""``python -m hdl.gen``: emit Verilog for an `AccelConfig`, with the config as JSON beside it.

Without ``--board``: writes ``DIR/<top>.v`` for each unit asked for (``--unit``, default the
systolic array; see `hdl.units`) and ``DIR/accel_config.json`` (which `AccelConfig.from_json`
reads back, so a host can drive a design it did not build). The Verilog is what `sim.toolchain`
lints and simulates; see docs/systolic-array.md, docs/requantizer.md and docs/sparse-engine.md
for the ports.

With ``--board NAME``: builds a bitstream of the whole accelerator (`hdl.board_top.BoardTop`) for
that board into ``DIR`` with the YoWASP tools (`hdl.fpga.build_board`, docs/fpga.md) and prints
its resource / Fmax report as a table. Memory options left out take the board's defaults
(`hdl.boards.Board.config_defaults`); exit status 1 when the build fails (a missing tool, a
design that does not fit the device: the message has the numbers).
"""

import argparse
import sys
from pathlib import Path

from hdl.boards import BOARDS, DEFAULT_BAUD
from hdl.cli import add_array_arguments, config_from_args
from hdl.config import AccelConfig
from hdl.units import UNITS

#: Name of the Verilog top module of the systolic array.
ARRAY_TOP = UNITS["array"].top


def array_verilog(config: AccelConfig) -> str:
    """Verilog text of the systolic array for `config` (no source paths, so it is reproducible)."""
    return UNITS["array"].verilog(config)


def write_design(config: AccelConfig, out_dir: Path, units: list[str] | None = None) -> list[Path]:
    """Write each unit's Verilog (default: the array) and ``accel_config.json`` into `out_dir`.

    Returns the paths written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in units or ["array"]:
        unit = UNITS[name]
        path = out_dir / f"{unit.top}.v"
        path.write_text(unit.verilog(config))
        paths.append(path)
    config_path = out_dir / "accel_config.json"
    config_path.write_text(config.to_json())
    return [*paths, config_path]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m hdl.gen``."""
    units = "\n".join(f"  {unit.name:8} {unit.top}.v: {unit.summary}" for unit in UNITS.values())
    parser = argparse.ArgumentParser(
        prog="python -m hdl.gen",
        description="Emit Verilog of Tessera hardware units for one configuration.",
        epilog=f"units:\n{units}\n\nboards: {', '.join(BOARDS)}\n\n"
        "Example: python -m hdl.gen --rows 8 --cols 8 --dataflow os "
        "--unit array --unit sparse --out build/os8\n"
        "         python -m hdl.gen --board ulx3s-85f --rows 4 --cols 4 --out build/ulx3s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_array_arguments(parser)
    parser.add_argument(
        "--unit",
        action="append",
        choices=[*UNITS, "all"],
        metavar="NAME",
        help="unit to emit (repeatable; 'all' for every unit; default: array)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    board = parser.add_argument_group("FPGA bitstream (docs/fpga.md)")
    board.add_argument(
        "--board",
        choices=list(BOARDS),
        metavar="NAME",
        help=f"build a bitstream for this board instead of Verilog ({', '.join(BOARDS)}); "
        "memory options left out take the board's sizes ("
        + "; ".join(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in entry.config_defaults.items())
            for name, entry in BOARDS.items()
        )
        + "); a build takes minutes (docs/fpga.md)",
    )
    board.add_argument(
        "--memory-bytes",
        type=int,
        default=None,
        metavar="N",
        help="on-chip main memory of the board build (default: the board's)",
    )
    board.add_argument(
        "--baud",
        type=int,
        default=DEFAULT_BAUD,
        metavar="RATE",
        help=f"UART baud rate of the host link (default {DEFAULT_BAUD})",
    )
    board.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="nextpnr's placement seed (default: nextpnr's); another seed is another try for "
        "a design that places but does not route",
    )
    return parser


def build_for_board(parser: argparse.ArgumentParser, args: argparse.Namespace, config) -> int:
    """``--board``: build the bitstream and print its report; a build error exits with 1."""
    from hdl.fpga import FpgaBuildError, build_board

    if args.unit:
        parser.error("--unit does not apply to --board (a board build holds the whole design)")
    try:
        report = build_board(
            args.board,
            config,
            args.out,
            memory_bytes=args.memory_bytes,
            baud=args.baud,
            seed=args.seed,
        )
    except (FpgaBuildError, ModuleNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        parser.error(str(error))
    print(report.table())
    print(f"wrote {Path(report.bitstream).parent / 'report.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = BOARDS[args.board].config_defaults if args.board is not None else None
    config = config_from_args(parser, args, defaults)
    if args.board is not None:
        return build_for_board(parser, args, config)
    if args.memory_bytes is not None or args.baud != DEFAULT_BAUD or args.seed is not None:
        parser.error("--memory-bytes, --baud and --seed apply only with --board")
    units = args.unit or ["array"]
    if "all" in units:  # every unit this configuration has
        units = [u for u in UNITS if u != "sparse" or config.has_sparse_engine]
    if "sparse" in units and not config.has_sparse_engine:
        parser.error("--unit sparse: --sparse-lanes 0 leaves the sparse engine out")
    for path in write_design(config, args.out, list(dict.fromkeys(units))):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
