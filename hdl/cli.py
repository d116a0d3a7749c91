"""Command-line options shared by every tool that takes an array configuration."""

import argparse

from hdl.config import AccelConfig, Dataflow


def add_array_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--rows``, ``--cols`` and ``--dataflow`` (validated later by `config_from_args`)."""
    parser.add_argument("--rows", type=int, default=16, help="array rows R (default 16)")
    parser.add_argument("--cols", type=int, default=16, help="array columns C (default 16)")
    parser.add_argument(
        "--dataflow",
        choices=[d.value for d in Dataflow],
        default="ws",
        help="ws = weight-stationary, os = output-stationary (default: ws)",
    )


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AccelConfig:
    """The `AccelConfig` the arguments ask for; a bad value exits through ``parser.error``."""
    try:
        return AccelConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
