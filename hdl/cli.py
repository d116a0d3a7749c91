"""Command-line options shared by every tool that takes an accelerator configuration."""

import argparse

from hdl.config import AccelConfig, Dataflow


def add_array_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `AccelConfig` options (validated later by `config_from_args`).

    ``--rows``, ``--cols``, ``--dataflow`` for the systolic array, ``--sparse-lanes`` and
    ``--sparse-depth`` for the sparse engine, ``--spad-bytes`` and ``--acc-rows`` for the
    memories, ``--bus-bytes`` and ``--mem-latency`` for the main-memory port.
    """
    parser.add_argument("--rows", type=int, default=16, help="array rows R (default 16)")
    parser.add_argument("--cols", type=int, default=16, help="array columns C (default 16)")
    parser.add_argument(
        "--dataflow",
        choices=[d.value for d in Dataflow],
        default="ws",
        help="ws = weight-stationary, os = output-stationary (default: ws)",
    )
    for flag, field, unit in (
        ("--spad-bytes", "spad_bytes", "bytes of each operand scratchpad, a power of two"),
        ("--acc-rows", "acc_rows", "rows of the int32 accumulator memory, a power of two"),
        ("--bus-bytes", "bus_bytes", "main-memory bytes per cycle (bus width), a power of two"),
        ("--mem-latency", "mem_latency", "cycles from a memory read request to its data"),
    ):
        default = getattr(AccelConfig, field)
        parser.add_argument(
            flag, type=int, default=default, metavar="N", help=f"{unit} (default {default})"
        )
    parser.add_argument(
        "--sparse-lanes",
        type=int,
        default=None,
        metavar="P",
        help="sparse-engine MACs, a multiple of --cols (default: rows * cols)",
    )
    parser.add_argument(
        "--sparse-depth",
        type=int,
        default=AccelConfig.sparse_depth,
        metavar="K",
        help=f"sparse-engine activation rows per bank, a power of two (default "
        f"{AccelConfig.sparse_depth})",
    )


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AccelConfig:
    """The `AccelConfig` the arguments ask for; a bad value exits through ``parser.error``."""
    try:
        return AccelConfig(
            rows=args.rows,
            cols=args.cols,
            dataflow=args.dataflow,
            sparse_lanes=args.sparse_lanes,
            sparse_depth=args.sparse_depth,
            spad_bytes=args.spad_bytes,
            acc_rows=args.acc_rows,
            bus_bytes=args.bus_bytes,
            mem_latency=args.mem_latency,
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
