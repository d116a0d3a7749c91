"""The load half of the DMA: strided rows from main memory into a scratchpad.

A ``cmd`` beat (LOAD_ACT / LOAD_WGT fields, docs/isa.md) asks for ``rows`` rows of ``width``
bytes, row r at byte address ``dram_addr + r * dram_stride`` (any alignment), written to
scratchpad rows ``spad_row + r`` with the bytes beyond ``width`` zero. For each row the engine
issues one read burst of the bus words covering it (``req``), and when the burst's words arrive
on ``rdata`` it shifts the row's bytes into place and writes the row (``write``, the
`hdl.scratchpad.Scratchpad` write stream).

Timing: requests go out one row per cycle while the memory accepts them, up to `outstanding`
rows ahead of the data (a FIFO holds each row's offset, length and destination), so a memory with
latency L keeps streaming at one bus word per cycle when ``outstanding`` >= L / words per row.
A row is presented on ``write`` in the cycle after its last word arrives. The next command is
accepted as soon as the previous one has issued its last request, so commands pipeline too.
``done`` pulses for one cycle when the last row of a command is written. Each row carries its
command's ``tag`` (the accelerator routes rows by it while commands overlap).

Assumes ``width`` <= the row width and that the rows lie inside memory (the controller checks
both before issuing the command, `host.isa.check_program` does on the host); so the address,
stride and row count are only as wide as that memory and the scratchpads need
(`hdl.isa.dma_command_fields`).
"""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.isa import (
    DRAM_ADDRESS_BITS,
    MAX_ROWS,
    WIDTH_BITS,
    check_dma_widths,
    dma_command_fields,
)
from hdl.memport import request_layout
from hdl.scratchpad import row_index_bits

#: Bits of the tag a command carries to each of its rows (e.g. which memory they are for).
TAG_BITS = 2


def load_command_layout(
    spad_rows: int,
    address_bits: int = DRAM_ADDRESS_BITS,
    max_rows: int = MAX_ROWS,
) -> data.StructLayout:
    """Payload of ``cmd``: the LOAD instruction's fields (`hdl.isa.dma_command_fields`),
    ``spad_row`` as wide as a row index, and a ``tag`` that comes out with each of the
    command's rows."""
    return data.StructLayout(
        {
            **dma_command_fields(address_bits, max_rows),
            "spad_row": row_index_bits(spad_rows),
            "width": WIDTH_BITS,
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
        self.max_beats = (row_bytes + bus_bytes - 2) // bus_bytes + 1
        super().__init__(
            {
                "cmd": In(stream.Signature(load_command_layout(spad_rows, address_bits, max_rows))),
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
                "beats": range(self.max_beats + 1),
                "width": WIDTH_BITS,
                "row": row_index_bits(self.spad_rows),
                "last": 1,
                "tag": TAG_BITS,
            }
        )
        m.submodules.meta = meta = fifo.SyncFIFOBuffered(
            width=meta_layout.size, depth=self.outstanding
        )

        # Request side: one burst per row of the current command.
        active = Signal()
        command = self.cmd.payload
        address = Signal.like(command.dram_addr)
        stride = Signal.like(command.dram_stride)
        rows_left = Signal.like(command.rows)
        width = Signal(WIDTH_BITS)
        row = Signal(row_index_bits(self.spad_rows))
        tag = Signal(TAG_BITS)
        offset = address[:shift] if shift else 0
        beats = ((offset + width - 1) >> shift) + 1

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
            self.req.payload.beats.eq(beats),
            self.req.payload.write.eq(0),
            entry.offset.eq(offset),
            entry.beats.eq(beats),
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

        # Data side: gather each row's words, then shift its bytes into place.
        current = data.View(meta_layout, meta.r_data)
        words = [Signal(8 * bus, name=f"word{i}") for i in range(self.max_beats)]
        count = Signal(range(self.max_beats + 1))
        out_valid, out_last = Signal(), Signal()
        m.d.comb += [
            self.write.valid.eq(out_valid),
            self.rdata.ready.eq(meta.r_rdy & (~out_valid | self.write.ready)),
        ]
        with m.If(self.write.valid & self.write.ready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += self.done.eq(self.write.valid & self.write.ready & out_last)

        arrived = [Signal(8 * bus, name=f"arrived{i}") for i in range(self.max_beats)]
        for i in range(self.max_beats):
            m.d.comb += arrived[i].eq(words[i])
            with m.If(count == i):
                m.d.comb += arrived[i].eq(self.rdata.payload)
        gathered = Cat(*arrived) >> (current.offset * 8)
        # Byte i of the row is kept when i < width (a comparator per byte, not a wide shifter).
        keep = Cat(*[(current.width > i).replicate(8) for i in range(self.row_bytes)])
        with m.If(self.rdata.valid & self.rdata.ready):
            for i in range(self.max_beats):
                with m.If(count == i):
                    m.d.sync += words[i].eq(self.rdata.payload)
            with m.If(count == current.beats - 1):
                m.d.comb += meta.r_en.eq(1)
                m.d.sync += [
                    count.eq(0),
                    out_valid.eq(1),
                    out_last.eq(current.last),
                    self.write.payload.row.eq(current.row),
                    self.write.payload.tag.eq(current.tag),
                    self.write.payload.data.eq(gathered[: 8 * self.row_bytes] & keep),
                ]
            with m.Else():
                m.d.sync += count.eq(count + 1)

        m.d.comb += self.busy.eq(active | meta.r_rdy | out_valid)
        return m
