"""``python -m hdl.gen``: emit Verilog for an `AccelConfig`, with the config as JSON beside it.

Writes ``DIR/<top>.v`` and ``DIR/accel_config.json`` (which `AccelConfig.from_json` reads back,
so a host can drive a design it did not build). The Verilog is what `sim.toolchain` lints and
simulates; see docs/systolic-array.md for its ports.
"""

import argparse
import sys
from pathlib import Path

from amaranth.back import verilog

from hdl.cli import add_array_arguments, config_from_args
from hdl.config import AccelConfig
from hdl.systolic import SystolicArray

#: Name of the Verilog top module of the systolic array.
ARRAY_TOP = "systolic_array"


def array_verilog(config: AccelConfig) -> str:
    """Verilog text of the systolic array for `config` (no source paths, so it is reproducible)."""
    return verilog.convert(SystolicArray(config), name=ARRAY_TOP, emit_src=False)


def write_design(config: AccelConfig, out_dir: Path) -> list[Path]:
    """Write the Verilog and ``accel_config.json`` into `out_dir`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    verilog_path = out_dir / f"{ARRAY_TOP}.v"
    verilog_path.write_text(array_verilog(config))
    config_path = out_dir / "accel_config.json"
    config_path.write_text(config.to_json())
    return [verilog_path, config_path]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m hdl.gen``."""
    parser = argparse.ArgumentParser(
        prog="python -m hdl.gen",
        description="Emit Verilog of the Tessera systolic array for one configuration.",
        epilog="Example: python -m hdl.gen --rows 8 --cols 8 --dataflow os --out build/os8",
    )
    add_array_arguments(parser)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    for path in write_design(config, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
