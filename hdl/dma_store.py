"""The store half of the DMA: rows of bytes into main memory at any alignment.

A ``cmd`` beat (from a STORE instruction, docs/isa.md) asks for ``rows`` rows of ``width`` bytes,
row r at byte address ``dram_addr + r * dram_stride``. The rows themselves arrive on ``data``
(``row_bytes`` bytes each, byte 0 first; bytes past ``width`` are ignored), e.g. the
requantizer's int8 rows or raw int32 rows of the accumulator memory. For each row the engine
issues one write burst of the bus words the row touches (``req``) and sends those words on
``wdata`` with a byte strobe that enables exactly the row's bytes, so memory around the row is
never written.

Timing: one bus word per cycle on ``wdata``; a row's request is offered in the cycle its data is
taken and its words follow at once (the memory pairs bursts and data in order), so a one-word
row takes one cycle. The next row is taken in the cycle after the current row's last word and
request have gone; the next command is taken once the current one's last row has been taken.
``done`` pulses for one cycle when the last word of a command's last row is accepted.

Assumes ``width`` <= ``row_bytes`` and rows inside memory (checked by the controller).
"""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.isa import DRAM_ADDRESS_BITS, MAX_ROWS, check_dma_widths, dma_command_fields
from hdl.memport import request_layout, row_beats, write_layout


def store_command_layout(
    row_bytes: int, address_bits: int = DRAM_ADDRESS_BITS, max_rows: int = MAX_ROWS
) -> data.StructLayout:
    """Payload of ``cmd``: address, stride, row count (`hdl.isa.dma_command_fields`: as wide as
    checked commands need) and the bytes per row to write."""
    return data.StructLayout(
        {
            **dma_command_fields(address_bits, max_rows),
            "width": range(row_bytes + 1),
        }
    )


class StoreDma(wiring.Component):
    """Rows of bytes into main memory with byte strobes; see the module docstring.

    Parameters
    ----------
    bus_bytes: bytes per memory word B (a power of two).
    row_bytes: bytes per incoming row (1..1024).
    address_bits, max_rows: a command's address width and most rows (`dma_command_fields`).
    """

    def __init__(
        self,
        bus_bytes: int,
        row_bytes: int,
        address_bits: int = DRAM_ADDRESS_BITS,
        max_rows: int = MAX_ROWS,
    ):
        if bus_bytes < 1 or bus_bytes & (bus_bytes - 1):
            raise ValueError(f"bus_bytes must be a power of two >= 1, not {bus_bytes!r}")
        if not 1 <= row_bytes <= 1024:
            raise ValueError(f"row_bytes must be in [1, 1024], not {row_bytes!r}")
        check_dma_widths(address_bits, max_rows)
        self.bus_bytes, self.row_bytes = bus_bytes, row_bytes
        #: Most words one row can touch (when it starts at the last byte of a word).
        self.max_beats = row_beats(row_bytes, bus_bytes)
        super().__init__(
            {
                "cmd": In(
                    stream.Signature(store_command_layout(row_bytes, address_bits, max_rows))
                ),
                "data": In(stream.Signature(data.ArrayLayout(unsigned(8), row_bytes))),
                "req": Out(stream.Signature(request_layout())),
                "wdata": Out(stream.Signature(write_layout(bus_bytes))),
                "done": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus, shift = self.bus_bytes, (self.bus_bytes - 1).bit_length()

        # Command state: where the next row goes.
        active = Signal()
        command = self.cmd.payload
        address = Signal.like(command.dram_addr)
        stride = Signal.like(command.dram_stride)
        rows_left = Signal.like(command.rows)
        width = Signal(range(self.row_bytes + 1))
        m.d.comb += self.cmd.ready.eq(~active)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                active.eq(1),
                address.eq(command.dram_addr),
                stride.eq(command.dram_stride),
                rows_left.eq(command.rows),
                width.eq(command.width),
            ]

        # Row state: the row being written, as it came (`row`, shifted down a word per word
        # sent) and its byte strobes already at their offsets in the burst (`strobes`, shifted
        # likewise, so the words still to send are those with a strobe: a row has a byte in
        # each of its words); `previous` holds the bottom word of `row` before the last shift.
        # Those two need no reset: their bytes count only under a strobe, while ``wdata.valid``.
        holding, request_pending, last_row = Signal(), Signal(), Signal()
        row_addr = Signal.like(address)
        beats = Signal(range(self.max_beats + 1))
        row = Signal(8 * max(self.row_bytes, bus), reset_less=True)
        previous = Signal(8 * bus, reset_less=True)
        strobes = Signal(bus * self.max_beats)

        sending = holding & strobes.any()
        final_word = self.wdata.valid & self.wdata.ready & ~strobes[bus:].any()
        request_done = ~request_pending | self.req.ready
        finishing = holding & (final_word | ~strobes.any()) & request_done
        m.d.comb += self.done.eq(finishing & last_row)

        # A new row's state (below) overrides these updates of the finishing row.
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += request_pending.eq(0)
        with m.If(self.wdata.valid & self.wdata.ready):
            m.d.sync += [
                row.eq(row >> (8 * bus)),
                previous.eq(row[: 8 * bus]),
                strobes.eq(strobes >> bus),
            ]
        offset = address[:shift] if shift else Const(0, 1)
        take = active & (~holding | finishing)
        m.d.comb += self.data.ready.eq(take)
        with m.If(finishing):
            m.d.sync += holding.eq(0)
        with m.If(take & self.data.valid):
            enables = Cat(*[width > i for i in range(self.row_bytes)])  # byte i < width
            m.d.sync += [
                holding.eq(1),
                request_pending.eq(1),
                last_row.eq(rows_left == 1),
                row_addr.eq(address),
                beats.eq(((offset + width - 1) >> shift) + 1),
                row.eq(self.data.payload.as_value()),
                strobes.eq(enables << offset),
                address.eq(address + stride),
                rows_left.eq(rows_left - 1),
            ]
            with m.If(rows_left == 1):
                m.d.sync += active.eq(0)

        m.d.comb += [
            self.req.valid.eq(holding & request_pending),
            self.req.payload.addr.eq(Cat(Const(0, shift), row_addr[shift:]) if shift else row_addr),
            self.req.payload.beats.eq(beats),
            self.req.payload.write.eq(1),
        ]

        # Word i of the burst is bytes [i * B - offset, (i + 1) * B - offset) of the row: the
        # bottom word of `row` moved up by `offset` bytes, below it the top of `previous`
        # (B - 1 - offset = ~offset bytes of the B - 1 that can be needed are skipped).
        word = row[: 8 * bus]
        if shift:
            window = Cat(previous[8:], word)
            word = window.bit_select(~row_addr[:shift] * 8, 8 * bus)
        m.d.comb += [
            self.wdata.valid.eq(sending),
            self.wdata.payload.data.eq(word),
            self.wdata.payload.strobe.eq(strobes[:bus]),
        ]

        m.d.comb += self.busy.eq(active | holding)
        return m
