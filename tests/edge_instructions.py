"""Random instructions built from edge values of every field, for checker tests.

Each field takes 0, 1, 2, its checked limit (`hdl.checked_bits.field_limits`) and the values
next to it, its largest value, or a random value up to the limit; about half of the
instructions pass `hdl.isa.check_program`, the others fail a rule at or just past an edge.
"""

from hdl.checked_bits import field_limits
from hdl.config import AccelConfig
from hdl.isa import LAYOUTS, Instruction, Op, ProgramError, check_program

#: Configurations the checker tests run: tiny memories (1 KiB, 1000 B, not a power of two) and
#: the 256 MiB default, both dataflows.
CHECK_CONFIGS = {
    "2x2-1KiB": AccelConfig(
        rows=2, cols=2, spad_bytes=256, acc_rows=16, sparse_depth=16, bus_bytes=4, mem_bytes=1024
    ),
    "os-4x8-1000B": AccelConfig(
        rows=4, cols=8, dataflow="os", spad_bytes=512, acc_rows=32, bus_bytes=8, mem_bytes=1000
    ),
    "16x16-256MiB": AccelConfig(),
    "2x2-no-sparse-engine": AccelConfig(
        rows=2, cols=2, spad_bytes=256, acc_rows=16, bus_bytes=4, mem_bytes=1024, sparse_lanes=0
    ),
}


def edge_values(limit: int, width: int, rng) -> list[int]:
    """Values of a field of `width` bits whose checked limit is `limit`."""
    top = (1 << width) - 1
    values = {0, 1, 2, limit - 1, limit, limit + 1, top, int(rng.integers(0, limit + 1))}
    return sorted(v for v in values if 0 <= v <= top)


def edge_instructions(config: AccelConfig, op: Op, count: int, rng) -> list[Instruction]:
    """`count` instructions of `op` (no token flags), each field an `edge_values` choice."""
    layout = LAYOUTS[op]
    choices = {
        name: edge_values(limit, layout[name].width, rng)
        for name, limit in field_limits(config)[op].items()
    }
    return [
        Instruction(op, **{name: int(rng.choice(values)) for name, values in choices.items()})
        for _ in range(count)
    ]


def host_code(instruction: Instruction, config: AccelConfig):
    """The `ErrorCode` `hdl.isa.check_program` gives a one-instruction program, or None."""
    try:
        check_program([instruction], config)
    except ProgramError as error:
        return error.code
    return None


def checked_instructions(config: AccelConfig, op: Op, count: int, rng) -> list[Instruction]:
    """Those of `edge_instructions` that pass `hdl.isa.check_program`."""
    return [
        instruction
        for instruction in edge_instructions(config, op, count, rng)
        if host_code(instruction, config) is None
    ]
