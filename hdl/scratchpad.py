"""A scratchpad: rows of bytes with one write stream and one read request/response stream pair.

One simple dual-port memory (one write port, one synchronous read port), so a row can be written
(by the DMA) and another read (by the compute unit) in every cycle; the two halves of its rows are
the two banks the host's double-buffering uses (docs/isa.md), a convention of the schedule rather
than of the hardware.

Ports
    ``write``: one row per beat (``row`` index, ``data`` = the row's bytes, element 0 lowest);
    always ready, written at the clock edge that accepts it.
    ``read_req``: a row index per beat; ``read_data``: that row's bytes, in request order.

Timing and flow control: a request accepted in cycle t is presented on ``read_data`` in cycle
t + 1 (`READ_LATENCY`); the read side advances only when ``read_data`` can move
(``~read_data.valid | read_data.ready``), so back-pressure holds the presented row and stops new
requests, and one row per cycle flows without back-pressure. A request accepted in the cycle a
row is written returns the row's new content (the read port is transparent), as does any later
one. No correct program reads a row in the cycle it is written: the controller starts a MATMUL or
SPMM on rows only after the LOAD that writes them has pushed its token (or a FENCE), which counts
from the cycle after the LOAD's last row is written, and lets a LOAD overwrite rows only after the
compute reading them has finished. Block RAM (an iCE40 EBR) defines no result for such a read,
and of the results logic can guarantee, the new content costs the least.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

#: Cycles from accepting a read request to presenting its row.
READ_LATENCY = 1


def row_index_bits(rows: int) -> int:
    """Width of a row index for `rows` rows (at least 1)."""
    return max(1, (rows - 1).bit_length())


class Scratchpad(wiring.Component):
    """`rows` rows of `row_bytes` bytes; see the module docstring for ports and timing.

    Parameters
    ----------
    row_bytes: bytes per row (1..4096).
    rows: number of rows (2..2**24).
    """

    def __init__(self, row_bytes: int, rows: int):
        for name, value, low, high in (
            ("row_bytes", row_bytes, 1, 4096),
            ("rows", rows, 2, 1 << 24),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], not {value!r}")
        self.row_bytes, self.rows = row_bytes, rows
        index = unsigned(row_index_bits(rows))
        row = data.ArrayLayout(unsigned(8), row_bytes)
        super().__init__(
            {
                "write": In(stream.Signature(data.StructLayout({"row": index, "data": row}))),
                "read_req": In(stream.Signature(index)),
                "read_data": Out(stream.Signature(row)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        storage = memory.Memory(shape=unsigned(8 * self.row_bytes), depth=self.rows, init=[])
        m.submodules.storage = storage
        write = storage.write_port()
        # Transparent: the cheapest defined result of a collision (module docstring).
        read = storage.read_port(transparent_for=(write,))

        m.d.comb += [
            self.write.ready.eq(1),
            write.addr.eq(self.write.payload.row),
            write.data.eq(self.write.payload.data.as_value()),
            write.en.eq(self.write.valid),
        ]

        advance = ~self.read_data.valid | self.read_data.ready
        valid = Signal()
        m.d.comb += [
            self.read_req.ready.eq(advance),
            read.addr.eq(self.read_req.payload),
            read.en.eq(advance),
            self.read_data.valid.eq(valid),
            self.read_data.payload.eq(read.data),
        ]
        with m.If(advance):
            m.d.sync += valid.eq(self.read_req.valid)
        return m
