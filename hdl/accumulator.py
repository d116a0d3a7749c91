"""The accumulator memory: rows of C int32 that the array's output rows overwrite or add into.

Ports
    ``write``: one row per beat: ``row`` index, ``data`` (C int32, element 0 lowest) and
    ``accumulate`` (1: add to the row, wrapping like the array's accumulators; 0: overwrite).
    Always ready.
    ``read_req``: a row index per beat; ``read_data``: that row's C int32, in request order.

Timing: an accepted ``write`` beat reads its row in the accepting cycle t and writes the new value
at the end of cycle t + 1 (`WRITE_LATENCY`), one beat per cycle sustained. The new value of a row
is forwarded to a beat accepted in cycle t + 1 for the same row, so back-to-back accumulation into
one row is exact. A read request accepted in cycle t is presented in cycle t + 1 with the row as
written by the beats accepted before cycle t, including the one written at the end of cycle t
(the read port is transparent); the read side advances only when ``read_data`` can move, so
back-pressure holds the presented row. No correct program reads a row while a beat for it is on
its way: a STORE reads rows only after the MATMUL or SPMM writing them has pushed its token (or a
FENCE), which it does as its last beat is accepted, so the STORE's first read comes after that
beat is written; and compute overwrites rows only after the STORE reading them has finished.
Block RAM defines no result for a read of a row being written, and of the results logic can
guarantee, the new value costs the least.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.scratchpad import row_index_bits

#: Cycles from accepting a ``write`` beat to the end of the cycle that stores its row.
WRITE_LATENCY = 1


def accumulator_write_layout(cols: int, rows: int) -> data.StructLayout:
    """Payload of ``write``: the row index, C int32 and the accumulate flag."""
    row = data.ArrayLayout(signed(32), cols)
    return data.StructLayout({"row": unsigned(row_index_bits(rows)), "data": row, "accumulate": 1})


class AccumulatorMemory(wiring.Component):
    """`rows` rows of `cols` int32 with accumulate-or-overwrite writes (module docstring).

    Parameters
    ----------
    cols: values per row, C (1..256).
    rows: number of rows (2..2**20).
    """

    def __init__(self, cols: int, rows: int):
        for name, value, low, high in (("cols", cols, 1, 256), ("rows", rows, 2, 1 << 20)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], not {value!r}")
        self.cols, self.rows = cols, rows
        index = unsigned(row_index_bits(rows))
        row = data.ArrayLayout(signed(32), cols)
        super().__init__(
            {
                "write": In(stream.Signature(accumulator_write_layout(cols, rows))),
                "read_req": In(stream.Signature(index)),
                "read_data": Out(stream.Signature(row)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cols = self.cols
        storage = memory.Memory(shape=unsigned(32 * cols), depth=self.rows, init=[])
        m.submodules.storage = storage
        new = storage.write_port()
        # Transparent: a beat reads its row in the cycle the previous beat's sum is written, and
        # gets that sum (the forwarding the module docstring states).
        old = storage.read_port(transparent_for=(new,))
        # Transparent too: the cheapest defined result of a collision (module docstring).
        out = storage.read_port(transparent_for=(new,))

        # Stage 0 (accepting cycle): read the row. Stage 1: add and write.
        beat = self.write.payload
        m.d.comb += [self.write.ready.eq(1), old.addr.eq(beat.row), old.en.eq(1)]
        pending = Signal()
        pending_row = Signal.like(beat.row)
        pending_accumulate = Signal()
        pending_data = Signal(32 * cols)
        m.d.sync += [
            pending.eq(self.write.valid),
            pending_row.eq(beat.row),
            pending_accumulate.eq(beat.accumulate),
            pending_data.eq(beat.data.as_value()),
        ]
        base = old.data
        total = Signal(32 * cols)
        for c in range(cols):
            part = slice(32 * c, 32 * c + 32)
            addend = Mux(pending_accumulate, base[part].as_signed(), 0)
            m.d.comb += total[part].eq(addend + pending_data[part].as_signed())
        m.d.comb += [new.addr.eq(pending_row), new.data.eq(total), new.en.eq(pending)]

        advance = ~self.read_data.valid | self.read_data.ready
        valid = Signal()
        m.d.comb += [
            self.read_req.ready.eq(advance),
            out.addr.eq(self.read_req.payload),
            out.en.eq(advance),
            self.read_data.valid.eq(valid),
            self.read_data.payload.eq(out.data),
        ]
        with m.If(advance):
            m.d.sync += valid.eq(self.read_req.valid)
        return m
