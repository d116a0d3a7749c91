"""The load half of the DMA: strided rows from main memory into a scratchpad.

A ``cmd`` beat (LOAD_ACT / LOAD_WGT fields, docs/isa.md) asks for ``rows`` rows of ``width``
bytes, row r at byte address ``dram_addr + r * dram_stride`` (any alignment), written to
scratchpad rows ``spad_row + r`` with the bytes beyond ``width`` zero. For each row the engine
issues one read burst of the bus words covering it (``req``); as the burst's words arrive on
``rdata`` it rotates each into place and keeps its bytes of the row in the output register, and
after the last one it writes the row (``write``, the `hdl.scratchpad.Scratchpad` write stream).

Timing: requests go out one row per cycle while the memory accepts them, up to `outstanding`
rows ahead of the data (a FIFO holds each row's offset, length and destination), so a memory with
latency L keeps streaming at one bus word per cycle when ``outstanding`` >= L / words per row.
A row is presented on ``write`` in the cycle after its last word arrives. The next command is
accepted as soon as the previous one has issued its last request, so commands pipeline too.
``done`` pulses for one cycle when the last row of a command is written. Each row carries its
command's ``tag`` (the accelerator routes rows by it while commands overlap).

Assumes 1 <= ``width`` <= the row width and that the rows lie inside memory (the controller
checks both before issuing the command, `hdl.isa.check_program` does on the host); so the
address, stride and row count are only as wide as that memory and the scratchpads need
(`hdl.isa.dma_command_fields`), and ``width`` only as wide as a row needs.
"""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.bram_fifo import BramFifo
from hdl.isa import (
    DRAM_ADDRESS_BITS,
    MAX_ROWS,
    check_dma_widths,
    dma_command_fields,
)
from hdl.memport import request_layout, row_beats
from hdl.scratchpad import row_index_bits

#: Bits of the tag a command carries to each of its rows (e.g. which memory they are for).
TAG_BITS = 2


def load_command_layout(
    row_bytes: int,
    spad_rows: int,
    address_bits: int = DRAM_ADDRESS_BITS,
    max_rows: int = MAX_ROWS,
) -> data.StructLayout:
    """Payload of ``cmd``: the LOAD instruction's fields (`hdl.isa.dma_command_fields`),
    ``spad_row`` as wide as a row index, ``width`` up to `row_bytes` (checked commands are no
    wider than their rows) and a ``tag`` that comes out with each of the command's rows."""
    return data.StructLayout(
        {
            **dma_command_fields(address_bits, max_rows),
            "spad_row": row_index_bits(spad_rows),
            "width": range(row_bytes + 1),
            "tag": TAG_BITS,
        }
    )


def load_write_layout(row_bytes: int, spad_rows: int) -> data.StructLayout:
    """Payload of ``write``: the scratchpad row, its bytes and its command's tag."""
    row = data.ArrayLayout(unsigned(8), row_bytes)
    return data.StructLayout(
        {"row": unsigned(row_index_bits(spad_rows)), "data": row, "tag": TAG_BITS}
    )


class LoadDma(wiring.Component):
    """Rows from main memory into a scratchpad; see the module docstring.

    Parameters
    ----------
    bus_bytes: bytes per memory word B (a power of two).
    row_bytes: bytes per scratchpad row.
    spad_rows: rows of the scratchpad (sets the width of row indices).
    outstanding: rows requested ahead of their data (FIFO depth, >= 1).
    address_bits, max_rows: a command's address width and most rows (`dma_command_fields`).
    """

    def __init__(
        self,
        bus_bytes: int,
        row_bytes: int,
        spad_rows: int,
        outstanding: int = 32,
        address_bits: int = DRAM_ADDRESS_BITS,
        max_rows: int = MAX_ROWS,
    ):
        if bus_bytes < 1 or bus_bytes & (bus_bytes - 1):
            raise ValueError(f"bus_bytes must be a power of two >= 1, not {bus_bytes!r}")
        if not 1 <= row_bytes <= 256:
            raise ValueError(f"row_bytes must be in [1, 256], not {row_bytes!r}")
        if outstanding < 1:
            raise ValueError(f"outstanding must be >= 1, not {outstanding!r}")
        check_dma_widths(address_bits, max_rows)
        self.bus_bytes, self.row_bytes, self.spad_rows = bus_bytes, row_bytes, spad_rows
        self.outstanding = outstanding
        #: Most words one row can span (when it starts at the last byte of a word).
        self.max_beats = row_beats(row_bytes, bus_bytes)
        super().__init__(
            {
                "cmd": In(
                    stream.Signature(
                        load_command_layout(row_bytes, spad_rows, address_bits, max_rows)
                    )
                ),
                "req": Out(stream.Signature(request_layout())),
                "rdata": In(stream.Signature(unsigned(8 * bus_bytes))),
                "write": Out(stream.Signature(load_write_layout(row_bytes, spad_rows))),
                "done": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus, shift = self.bus_bytes, (self.bus_bytes - 1).bit_length()
        meta_layout = data.StructLayout(
            {
                "offset": max(1, shift),
                "last_beat": range(self.max_beats),  # the row's words, less one
                "width": range(self.row_bytes + 1),
                "row": row_index_bits(self.spad_rows),
                "last": 1,
                "tag": TAG_BITS,
            }
        )
        m.submodules.meta = meta = BramFifo(width=meta_layout.size, depth=self.outstanding)

        # Request side: one burst per row of the current command.
        active = Signal()
        command = self.cmd.payload
        address = Signal.like(command.dram_addr)
        stride = Signal.like(command.dram_stride)
        rows_left = Signal.like(command.rows)
        width = Signal.like(command.width)
        row = Signal(row_index_bits(self.spad_rows))
        tag = Signal(TAG_BITS)
        offset = address[:shift] if shift else 0
        last_beat = (offset + width - 1) >> shift

        m.d.comb += self.cmd.ready.eq(~active)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                active.eq(1),
                address.eq(command.dram_addr),
                stride.eq(command.dram_stride),
                rows_left.eq(command.rows),
                width.eq(command.width),
                row.eq(command.spad_row),
                tag.eq(command.tag),
            ]

        entry = data.View(meta_layout, meta.w_data)
        m.d.comb += [
            self.req.valid.eq(active & meta.w_rdy),
            self.req.payload.addr.eq(Cat(Const(0, shift), address[shift:]) if shift else address),
            self.req.payload.beats.eq(last_beat + 1),
            self.req.payload.write.eq(0),
            entry.offset.eq(offset),
            entry.last_beat.eq(last_beat),
            entry.width.eq(width),
            entry.row.eq(row),
            entry.last.eq(rows_left == 1),
            entry.tag.eq(tag),
            meta.w_en.eq(self.req.valid & self.req.ready),
        ]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [
                address.eq(address + stride),
                rows_left.eq(rows_left - 1),
                row.eq(row + 1),
            ]
            with m.If(rows_left == 1):
                m.d.sync += active.eq(0)

        # Data side: each word's bytes go straight to their places in the output row. Byte k of
        # the row is byte (k + offset) % B of word (k + offset) // B, that is byte k % B of the
        # word rotated down by `offset` bytes, so one rotator serves every byte of the row.
        current = data.View(meta_layout, meta.r_data)
        count = Signal(range(self.max_beats))
        out_valid, out_last = Signal(), Signal()
        m.d.comb += [
            self.write.valid.eq(out_valid),
            self.rdata.ready.eq(meta.r_rdy & (~out_valid | self.write.ready)),
        ]
        with m.If(self.write.valid & self.write.ready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += self.done.eq(self.write.valid & self.write.ready & out_last)

        word = self.rdata.payload
        rotated = Cat(word, word).bit_select(current.offset * 8, 8 * bus) if shift else word
        # Without a reset (it only matters while ``write.valid`` is low), a byte's clearing can
        # be the flip-flops' synchronous reset.
        out = [Signal(8, name=f"out{k}", reset_less=True) for k in range(self.row_bytes)]
        m.d.comb += self.write.payload.data.eq(Cat(*out))
        with m.If(self.rdata.valid & self.rdata.ready):
            # The row in `out` was taken or never valid: rdata waits while it is held.
            for k in range(self.row_bytes):
                if shift:
                    carry = current.offset >= bus - k % bus  # byte k is in the next word
                    source = k // bus + carry
                else:
                    source = k
                with m.If(current.width <= k):
                    m.d.sync += out[k].eq(0)
                with m.Elif(count == source):
                    m.d.sync += out[k].eq(rotated.word_select(k % bus, 8))
            with m.If(count == current.last_beat):
                m.d.comb += meta.r_en.eq(1)
                m.d.sync += [
                    count.eq(0),
                    out_valid.eq(1),
                    out_last.eq(current.last),
                    self.write.payload.row.eq(current.row),
                    self.write.payload.tag.eq(current.tag),
                ]
            with m.Else():
                m.d.sync += count.eq(count + 1)

        m.d.comb += self.busy.eq(active | meta.r_rdy | out_valid)
        return m
