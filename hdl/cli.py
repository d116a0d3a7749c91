"""Command-line options shared by every tool that takes an accelerator configuration."""

import argparse

from hdl.config import AccelConfig, Dataflow

#: The `AccelConfig` fields `add_array_arguments` adds an option for (``--spad-bytes`` for
#: ``spad_bytes``, ...); each defaults to None, so a tool can tell given options from defaults.
CONFIG_OPTIONS = (
    "rows",
    "cols",
    "dataflow",
    "sparse_lanes",
    "sparse_depth",
    "requant_lanes",
    "spad_bytes",
    "acc_rows",
    "bus_bytes",
    "mem_latency",
    "counter_bits",
)


def add_array_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `AccelConfig` options (validated later by `config_from_args`).

    ``--rows``, ``--cols``, ``--dataflow`` for the systolic array, ``--sparse-lanes`` and
    ``--sparse-depth`` for the sparse engine, ``--requant-lanes`` for the requantizer,
    ``--spad-bytes`` and ``--acc-rows`` for the
    memories, ``--bus-bytes`` and ``--mem-latency`` for the main-memory port,
    ``--counter-bits`` for the performance counters.
    """
    parser.add_argument("--rows", type=int, default=None, help="array rows R (default 16)")
    parser.add_argument("--cols", type=int, default=None, help="array columns C (default 16)")
    parser.add_argument(
        "--dataflow",
        choices=[d.value for d in Dataflow],
        default=None,
        help="ws = weight-stationary, os = output-stationary (default: ws)",
    )
    for flag, field, unit in (
        ("--spad-bytes", "spad_bytes", "bytes of each operand scratchpad, a power of two"),
        ("--acc-rows", "acc_rows", "rows of the int32 accumulator memory, a power of two"),
        ("--bus-bytes", "bus_bytes", "main-memory bytes per cycle (bus width), a power of two"),
        ("--mem-latency", "mem_latency", "cycles from a memory read request to its data"),
        ("--counter-bits", "counter_bits", "bits of each performance counter, 16..48"),
    ):
        default = getattr(AccelConfig, field)
        parser.add_argument(
            flag, type=int, default=None, metavar="N", help=f"{unit} (default {default})"
        )
    parser.add_argument(
        "--sparse-lanes",
        type=int,
        default=None,
        metavar="P",
        help="sparse-engine MACs, a multiple of --cols; 0 leaves the sparse engine out (SPMM is "
        "then an invalid opcode) (default: rows * cols)",
    )
    parser.add_argument(
        "--requant-lanes",
        type=int,
        default=None,
        metavar="L",
        help="requantizer lanes, a divisor of --cols (default: the fewest that take a row in "
        "at most 3 cycles, as fast as the store DMA writes it)",
    )
    parser.add_argument(
        "--sparse-depth",
        type=int,
        default=None,
        metavar="K",
        help=f"sparse-engine activation rows per bank, a power of two (default "
        f"{AccelConfig.sparse_depth})",
    )


def config_from_args(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    defaults: dict[str, object] | None = None,
) -> AccelConfig:
    """The `AccelConfig` the arguments ask for; a bad value exits through ``parser.error``.

    An option left out takes its value from `defaults` (a board's memory sizes, say), else
    `AccelConfig`'s own default.
    """
    defaults = defaults or {}
    fields = {field: getattr(args, field) for field in CONFIG_OPTIONS}
    for field, value in fields.items():
        if value is None:
            fields[field] = defaults.get(field, getattr(AccelConfig, field))
    try:
        return AccelConfig(**fields)
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def given_config_options(args: argparse.Namespace) -> list[str]:
    """The `AccelConfig` options given on the command line, as flags (``--rows``, ...)."""
    return [
        "--" + field.replace("_", "-")
        for field in CONFIG_OPTIONS
        if getattr(args, field) is not None
    ]
