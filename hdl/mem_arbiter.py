"""Several memory-port masters on one memory port, with round-robin arbitration.

Each master port ``m0`` .. ``m{N-1}`` is a full `hdl.memport` port (its ``req``, ``wdata`` and
``rdata``); ``mem`` is the one port to main memory. A request is granted to the first valid
master at or after a rotating pointer (which then moves past it), so no master starves. Because
the memory answers reads and takes write data in request order, the arbiter records the owner
and length of every granted read burst and write burst in two FIFOs (`outstanding` entries
each): read words go to the owner of the oldest read burst, and the write words taken from
masters follow the order of their granted write requests. Lengths are kept only as wide as
the longest burst a master requests (`max_beats`, which the masters' users know).

Timing: a request passes through in the cycle it is granted (no register), so the arbiter adds
no latency to requests or read words; one request per cycle, one read word and one write word per
cycle. A write burst's words are taken from its master from the cycle after its request is
granted (when the owner FIFO shows it), never earlier.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.bram_fifo import BramFifo
from hdl.memport import BEATS_BITS, memory_port_signature

#: The longest burst a request can ask for.
MAX_BEATS = (1 << BEATS_BITS) - 1


class MemoryArbiter(wiring.Component):
    """`masters` memory ports onto one (module docstring).

    Parameters
    ----------
    bus_bytes: bytes per memory word.
    masters: number of master ports (1..16).
    outstanding: bursts of each kind (read, write) in flight at once.
    max_beats: the most words of any burst a master requests (1..65535; assumed, not checked).
    """

    def __init__(
        self, bus_bytes: int, masters: int, outstanding: int = 32, max_beats: int = MAX_BEATS
    ):
        if not 1 <= masters <= 16:
            raise ValueError(f"masters must be in [1, 16], not {masters!r}")
        if outstanding < 1:
            raise ValueError(f"outstanding must be >= 1, not {outstanding!r}")
        if not 1 <= max_beats <= MAX_BEATS:
            raise ValueError(f"max_beats must be in [1, {MAX_BEATS}], not {max_beats!r}")
        self.masters, self.outstanding, self.max_beats = masters, outstanding, max_beats
        port = memory_port_signature(bus_bytes)
        members = {f"m{i}": In(port) for i in range(masters)}
        members["mem"] = Out(port)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        count = self.masters
        ports = [getattr(self, f"m{i}") for i in range(count)]
        # Each burst's owner and its words less one (the count of its last word).
        owner_layout = data.StructLayout({"owner": range(count), "last": range(self.max_beats)})
        reads = BramFifo(width=owner_layout.size, depth=self.outstanding)
        writes = BramFifo(width=owner_layout.size, depth=self.outstanding)
        m.submodules.reads, m.submodules.writes = reads, writes

        # Grant: the first valid master at or after `pointer`.
        pointer = Signal(range(count))
        grant = Signal(range(count))
        granted = Signal()
        for offset in reversed(range(count)):  # the last assignment (offset 0) wins
            for base in range(count):
                index = (base + offset) % count
                with m.If((pointer == base) & ports[index].req.valid):
                    m.d.comb += [grant.eq(index), granted.eq(1)]
        request = self.mem.req
        with m.Switch(grant):
            for i, port in enumerate(ports):
                with m.Case(i):
                    m.d.comb += request.payload.eq(port.req.payload)
        room = ~request.payload.write & reads.w_rdy | request.payload.write & writes.w_rdy
        m.d.comb += request.valid.eq(granted & room)
        for i, port in enumerate(ports):
            m.d.comb += port.req.ready.eq((grant == i) & request.ready & room)
        entry = data.View(owner_layout, reads.w_data)
        m.d.comb += [
            entry.owner.eq(grant),
            entry.last.eq(request.payload.beats - 1),
            writes.w_data.eq(reads.w_data),
        ]
        accepted = request.valid & request.ready
        m.d.comb += [
            reads.w_en.eq(accepted & ~request.payload.write),
            writes.w_en.eq(accepted & request.payload.write),
        ]
        with m.If(accepted):
            m.d.sync += pointer.eq(Mux(grant == count - 1, 0, grant + 1))

        self._route_reads(m, ports, reads, owner_layout)
        self._route_writes(m, ports, writes, owner_layout)
        return m

    def _route_reads(self, m, ports, reads, layout) -> None:
        head = data.View(layout, reads.r_data)
        words = Signal.like(head.last)
        rdata = self.mem.rdata
        m.d.comb += rdata.ready.eq(0)
        for i, port in enumerate(ports):
            mine = reads.r_rdy & (head.owner == i)
            m.d.comb += [
                port.rdata.valid.eq(rdata.valid & mine),
                port.rdata.payload.eq(rdata.payload),
            ]
            with m.If(mine):
                m.d.comb += rdata.ready.eq(port.rdata.ready)
        with m.If(rdata.valid & rdata.ready):
            m.d.sync += words.eq(words + 1)
            with m.If(words == head.last):
                m.d.sync += words.eq(0)
                m.d.comb += reads.r_en.eq(1)

    def _route_writes(self, m, ports, writes, layout) -> None:
        head = data.View(layout, writes.r_data)
        words = Signal.like(head.last)
        wdata = self.mem.wdata
        for i, port in enumerate(ports):
            mine = writes.r_rdy & (head.owner == i)
            m.d.comb += port.wdata.ready.eq(wdata.ready & mine)
            with m.If(mine):
                m.d.comb += [wdata.valid.eq(port.wdata.valid), wdata.payload.eq(port.wdata.payload)]
        with m.If(wdata.valid & wdata.ready):
            m.d.sync += words.eq(words + 1)
            with m.If(words == head.last):
                m.d.sync += words.eq(0)
                m.d.comb += writes.r_en.eq(1)
