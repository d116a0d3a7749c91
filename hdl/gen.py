"""``python -m hdl.gen``: emit Verilog for an `AccelConfig`, with the config as JSON beside it.

Writes ``DIR/<top>.v`` for each unit asked for (``--unit``, default the systolic array; see
`hdl.units`) and ``DIR/accel_config.json`` (which `AccelConfig.from_json` reads back, so a host
can drive a design it did not build). The Verilog is what `sim.toolchain` lints and simulates;
see docs/systolic-array.md, docs/requantizer.md and docs/sparse-engine.md for the ports.
"""

import argparse
import sys
from pathlib import Path

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
        epilog=f"units:\n{units}\n\nExample: python -m hdl.gen --rows 8 --cols 8 --dataflow os "
        "--unit array --unit sparse --out build/os8",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    units = args.unit or ["array"]
    if "all" in units:
        units = list(UNITS)
    for path in write_design(config, args.out, list(dict.fromkeys(units))):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
