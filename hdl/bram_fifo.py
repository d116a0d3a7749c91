"""A synchronous FIFO in block RAM with no read-collision logic.

`BramFifo(width, depth)` behaves exactly as `amaranth.lib.fifo.SyncFIFOBuffered` of the same
`width` and `depth` (at least 2): the same ``w_data`` / ``w_en`` / ``w_rdy``, ``r_data`` /
``r_en`` / ``r_rdy`` and ``level``, cycle for cycle. ``depth - 1`` entries are in a memory and
the head entry in the output register (``r_data``, valid while ``r_rdy``); an entry written to
an empty FIFO is on ``r_data`` two cycles later, ``w_rdy`` is low while the memory holds
``depth - 1`` entries, and ``level`` counts both.

Why not SyncFIFOBuffered itself: its memory read port is not transparent, so Yosys, which cannot
tell that a FIFO never reads the entry it is writing (the memory is empty or full when the two
pointers meet, and then nothing is read or nothing written), adds logic that makes such a read
return the old entry: about one flip-flop per data bit, address bit and a few more on an iCE40,
whose block RAM defines no result for it. Here the memory carries Yosys's ``no_rw_check``
attribute (collisions are don't-care, as they can never happen) and is read combinationally into
the output register, which Yosys folds into the block RAM's read port. The memory has a power
of two of entries, at least two and at least ``depth - 1``, of which ``depth - 1`` are used, so
the pointers wrap for free.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BramFifo"]


class BramFifo(wiring.Component):
    """`SyncFIFOBuffered`'s behaviour without its collision logic (module docstring).

    Parameters
    ----------
    width: bits per entry (at least 1).
    depth: entries held, the output register's included (at least 2).
    """

    def __init__(self, *, width: int, depth: int):
        for name, value, low in (("width", width, 1), ("depth", depth, 2)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if value < low:
                raise ValueError(f"{name} must be at least {low}, not {value!r}")
        self.width, self.depth = width, depth
        super().__init__(
            {
                "w_data": In(width),
                "w_en": In(1),
                "w_rdy": Out(1),
                "r_data": Out(width),
                "r_en": In(1),
                "r_rdy": Out(1),
                "level": Out(range(depth + 1)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        slots = self.depth - 1  # entries in the memory
        size = max(2, 1 << (slots - 1).bit_length())  # (1-bit pointers at least)
        storage = memory.Memory(shape=self.width, depth=size, init=[], attrs={"no_rw_check": 1})
        m.submodules.storage = storage
        write = storage.write_port()
        read = storage.read_port(domain="comb")
        stored = Signal(range(slots + 1))
        tail = Signal(range(size))  # where the next entry is written
        head = Signal(range(size))  # the oldest entry in the memory
        put = self.w_en & self.w_rdy
        # The head entry moves to the output register when that is empty or being read.
        take = (stored != 0) & (~self.r_rdy | self.r_en)
        out = Signal(self.width, reset_less=True)
        m.d.comb += [
            self.w_rdy.eq(stored != slots),
            write.addr.eq(tail),
            write.data.eq(self.w_data),
            write.en.eq(put),
            read.addr.eq(head),
            self.r_data.eq(out),
            self.level.eq(stored + self.r_rdy),
        ]
        m.d.sync += stored.eq(stored + put - take)
        with m.If(put):
            m.d.sync += tail.eq(tail + 1)
        with m.If(take):
            m.d.sync += [head.eq(head + 1), out.eq(read.data), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m
