"""Which bits of a checked instruction word can be nonzero, so that a queue stores only those.

The dispatcher (`hdl.top`) queues only words that passed every check of docs/isa.md, and the
checks bound each field by the configuration: an address is below ``mem_bytes``, a scratchpad or
accumulator row below that memory's rows, a row count at most those rows, a width at most a
row's bytes, and bits outside the opcode's layout are zero. `field_limits` gives each field's
largest checked value, `live_bits` the word's bit positions that can then be nonzero for a set
of opcodes (the opcode and token flags always), and `pack` / `unpack` keep and restore exactly
those bits: wiring only, no logic. For a 2x2 accelerator with 1 KiB of memory (``spad_bytes``
256, ``acc_rows`` 16) the load, compute and store queues keep 45, 60 and 40 bits of each
128-bit word; at the 16x16 defaults, 90, 103 and 87.

One field is not bounded: the ``dram_stride`` of a LOAD or STORE of one row (the checks bound
``(rows - 1) * dram_stride``). Its bits above ``mem_bytes - 1`` are dropped, which changes
nothing: the DMAs add the stride only between rows.
"""

from amaranth.hdl import Cat, Const

from hdl.config import AccelConfig
from hdl.isa import LAYOUTS, WORD_BITS, Op, scratchpad_rows
from hdl.sparse import nonzero_beat_bytes

__all__ = ["field_limits", "live_bits", "pack", "unpack"]

#: Header fields, kept whole.
_HEADER = ("op", "deps")


def field_limits(config: AccelConfig) -> dict[Op, dict[str, int]]:
    """The largest value each field of each queued opcode has in a word that passed the checks
    (FENCE is never queued). A limit above a field's width is cut to the width."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    act_rows, wgt_rows = scratchpad_rows(config)
    address = config.mem_bytes - 1  # address + bytes <= mem_bytes, with bytes >= 1
    stride = config.mem_bytes - 1  # (rows - 1) * stride + bytes <= mem_bytes, rows >= 2
    limits = {
        Op.LOAD_ACT: {
            "dram_addr": address,
            "dram_stride": stride,
            "rows": act_rows,
            "spad_row": act_rows - 1,
            "width": config.rows,
        },
        Op.LOAD_WGT: {
            "dram_addr": address,
            "dram_stride": stride,
            "rows": wgt_rows,
            "spad_row": wgt_rows - 1,
            "width": config.cols,
        },
        Op.LOAD_PARAMS: {"dram_addr": address, "lanes": config.cols},
        Op.MATMUL: {
            "act_row": act_rows - 1,
            "wgt_row": wgt_rows - 1,
            "rows": act_rows,
            "acc_row": config.acc_rows - 1,
            "accumulate": 1,
        },
        Op.SPMM: {
            "nz_addr": address,
            "nz_beats": config.mem_bytes // nonzero_beat_bytes(config),
            "x_row": wgt_rows - 1,
            "k": min(config.sparse_depth, wgt_rows),
            "acc_row": config.acc_rows - 1,
            "accumulate": 1,
            "nz_cache": 2,
        },
        Op.STORE: {
            "acc_row": config.acc_rows - 1,
            "rows": config.acc_rows,
            "dram_addr": address,
            "dram_stride": stride,
            "int8": 1,
            "width": config.cols,
        },
    }
    for op, fields in limits.items():
        names = [name for name, _ in LAYOUTS[op] if name not in _HEADER]
        assert sorted(fields) == sorted(names), op  # every field has a limit
        for name, limit in fields.items():
            fields[name] = min(limit, (1 << LAYOUTS[op][name].width) - 1)
    return limits


def live_bits(config: AccelConfig, ops) -> tuple[int, ...]:
    """Bit positions of the 128-bit word that can be nonzero in a checked word of one of `ops`,
    in increasing order: the header, and the low ``limit.bit_length()`` bits of each field."""
    limits = field_limits(config)
    live = set()
    for op in ops:
        for name, field in LAYOUTS[op]:
            bits = field.width if name in _HEADER else limits[op][name].bit_length()
            live.update(range(field.offset, field.offset + bits))
    return tuple(sorted(live))


def pack(word, live: tuple[int, ...]):
    """The bits of `word` at the positions `live` (a `live_bits` result), lowest first."""
    return Cat(*(word[i] for i in live))


def unpack(entry, live: tuple[int, ...]):
    """The 128-bit word whose bits at `live` are `entry`'s, in order, and zero elsewhere."""
    position = {bit: i for i, bit in enumerate(live)}
    return Cat(*(entry[position[i]] if i in position else Const(0, 1) for i in range(WORD_BITS)))
