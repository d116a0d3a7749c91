"""Command-line options shared by every tool that takes an accelerator configuration."""

import argparse

from hdl.config import AccelConfig, Dataflow


def add_array_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `AccelConfig` options (validated later by `config_from_args`).

    ``--rows``, ``--cols``, ``--dataflow`` for the systolic array, ``--sparse-lanes`` and
    ``--sparse-depth`` for the sparse engine.
    """
    parser.add_argument("--rows", type=int, default=16, help="array rows R (default 16)")
    parser.add_argument("--cols", type=int, default=16, help="array columns C (default 16)")
    parser.add_argument(
        "--dataflow",
        choices=[d.value for d in Dataflow],
        default="ws",
        help="ws = weight-stationary, os = output-stationary (default: ws)",
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
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
