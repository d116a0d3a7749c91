"""On-chip main memory: the accelerator's burst port and a byte port for the host bridge.

`OnchipMemory(size, bus_bytes)` is one `amaranth.lib.memory.Memory` of ``size // bus_bytes``
words of ``bus_bytes`` bytes (byte 0 lowest) with two users:

``bus``
    The memory side of `hdl.memport.memory_port_signature` (flipped): burst requests, write
    data with byte strobes and read data, served strictly in request order, one burst at a time.
``host``
    A byte port for `hdl.bridge.HostBridge`: ``addr`` (byte address), ``w_en`` / ``w_data``
    (write one byte at the edge) and ``r_en`` (read): ``r_data`` is the byte at ``addr`` in the
    cycle after ``r_en`` was high (only then).

Addresses wrap modulo ``size`` (the host side checks ranges; the accelerator checks its own,
error DRAM_RANGE). The memory has one read port and one write port, so that it maps to the block
RAM of every FPGA family (an iCE40 EBR has no second write port); the host and the accelerator
share them and the host wins: in a cycle the host writes, the accelerator's write data waits
(``wdata.ready`` low), in a cycle it reads, the accelerator's next read waits. The host never
waits. It is expected not to touch memory the accelerator is using while a program runs.

A read in the cycle of a write to the same bytes returns the written bytes (the read port is
transparent; the other bytes of the word are read as they were). That never happens in correct
use: the accelerator runs one burst at a time, and the host would have to read or write bytes a
running program uses (`host.serial_transport.SerialTransport` touches memory only between
programs). Block RAM defines no result for such a read, and of the results logic can guarantee,
the written bytes cost the least.

Timing of ``bus``
-----------------
``req.ready`` is high when no burst is in progress; a burst accepted at an edge starts in the
next cycle. A write burst takes one ``wdata`` word per cycle (``wdata.ready`` high while it
runs and the host is not writing). A read burst issues one memory read per cycle while its
output is free or being emptied and the host is not reading; a word is offered on ``rdata`` one
cycle after its read (read latency 1 cycle after the burst started, 2 cycles after the request
was taken) and held in a register of its own while it waits (a host read may use the port
meanwhile), and bursts of either kind complete in order, so a read after a write sees the
written data.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hdl.mem_arbiter import MAX_BEATS
from hdl.memport import memory_port_signature

__all__ = ["OnchipMemory", "check_size", "host_port_signature"]


def host_port_signature() -> wiring.Signature:
    """The byte port (`OnchipMemory.host`) as the memory sees it; `.flip()` for a master."""
    return wiring.Signature(
        {
            "addr": In(32),
            "w_en": In(1),
            "w_data": In(8),
            "r_en": In(1),
            "r_data": Out(8),
        }
    )


def check_size(size: object, bus_bytes: int) -> None:
    """`TypeError` / `ValueError` naming `size` unless it is a power of two >= `bus_bytes`."""
    memory_port_signature(bus_bytes)  # validates bus_bytes
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {size!r}")
    if size < 1 or size & (size - 1):
        raise ValueError(f"size must be a power of two, not {size!r}")
    if size < bus_bytes:
        raise ValueError(f"size must be at least bus_bytes ({bus_bytes}), not {size!r}")


class OnchipMemory(wiring.Component):
    """Main memory of `size` bytes in block RAM; see the module docstring for its ports.

    Parameters
    ----------
    size : int
        Bytes of memory: a power of two, a multiple of `bus_bytes`.
    bus_bytes : int
        Bytes per word of the accelerator's port (`hdl.config.AccelConfig.bus_bytes`).
    init : bytes, optional
        Initial contents (default zeros).
    max_beats : int, optional
        The most words of any burst requested (1..65535; assumed, not checked): the burst
        counter is only as wide as that (`hdl.top.longest_burst` for the accelerator).
    """

    def __init__(self, size: int, bus_bytes: int, init: bytes = b"", max_beats: int = MAX_BEATS):
        check_size(size, bus_bytes)
        signature = memory_port_signature(bus_bytes)
        if len(init) > size:
            raise ValueError(f"init has {len(init)} bytes, more than size ({size})")
        if not 1 <= max_beats <= MAX_BEATS:
            raise ValueError(f"max_beats must be in [1, {MAX_BEATS}], not {max_beats!r}")
        self.size = size
        self.bus_bytes = bus_bytes
        self.max_beats = max_beats
        self._init = bytes(init)
        super().__init__({"bus": In(signature), "host": Out(host_port_signature())})

    def elaborate(self, platform):
        m = Module()
        bus_bytes, depth = self.bus_bytes, self.size // self.bus_bytes
        shift = (bus_bytes - 1).bit_length()
        data = self._init.ljust(self.size, b"\0")
        words = [
            int.from_bytes(data[i * bus_bytes : (i + 1) * bus_bytes], "little")
            for i in range(depth)
        ]
        m.submodules.mem = mem = memory.Memory(shape=8 * bus_bytes, depth=depth, init=words)
        write = mem.write_port(granularity=8)
        # Transparent: the cheapest defined result of a collision (module docstring).
        read = mem.read_port(transparent_for=(write,))
        word_bits = max(1, (depth - 1).bit_length())
        host = self.host

        # Accelerator bursts, on the ports when the host leaves them free.
        bus = self.bus
        active = Signal()
        writing = Signal()
        address = Signal(word_bits)
        last = Signal(range(self.max_beats))  # the burst's words still to come, less one
        out_valid = Signal()
        fresh = Signal()  # the read port holds the word on rdata (read in the last cycle)
        held = Signal(8 * bus_bytes)  # that word, kept while rdata waits
        m.d.comb += bus.req.ready.eq(~active)
        with m.If(bus.req.valid & ~active):
            m.d.sync += [
                active.eq(1),
                writing.eq(bus.req.payload.write),
                address.eq(bus.req.payload.addr[shift:]),
                last.eq(bus.req.payload.beats - 1),
            ]
        m.d.comb += bus.wdata.ready.eq(active & writing & ~host.w_en)
        with m.If(host.w_en):
            m.d.comb += [
                write.addr.eq(host.addr[shift:]),
                write.data.eq(host.w_data.replicate(bus_bytes)),
                write.en.eq(Const(1, bus_bytes) << host.addr[:shift]),
            ]
        with m.Else():
            m.d.comb += [write.addr.eq(address), write.data.eq(bus.wdata.payload.data)]
            with m.If(bus.wdata.valid & bus.wdata.ready):
                m.d.comb += write.en.eq(bus.wdata.payload.strobe)
                m.d.sync += [address.eq(address + 1), last.eq(last - 1)]
                with m.If(last == 0):
                    m.d.sync += active.eq(0)
        issue = Signal()
        m.d.comb += [
            issue.eq(active & ~writing & (~out_valid | bus.rdata.ready) & ~host.r_en),
            read.addr.eq(Mux(host.r_en, host.addr[shift:], address)),
            read.en.eq(issue | host.r_en),
            bus.rdata.valid.eq(out_valid),
            bus.rdata.payload.eq(Mux(fresh, read.data, held)),
        ]
        m.d.sync += fresh.eq(issue)
        with m.If(fresh):
            m.d.sync += held.eq(read.data)
        with m.If(issue):
            m.d.sync += [out_valid.eq(1), address.eq(address + 1), last.eq(last - 1)]
            with m.If(last == 0):
                m.d.sync += active.eq(0)
        with m.Elif(bus.rdata.ready):
            m.d.sync += out_valid.eq(0)

        # Host bytes: the lane of the byte read is remembered for the cycle its word arrives.
        lane = Signal(range(bus_bytes))
        m.d.comb += host.r_data.eq(read.data.word_select(lane, 8))
        with m.If(host.r_en):
            m.d.sync += lane.eq(host.addr[:shift])
        return m
