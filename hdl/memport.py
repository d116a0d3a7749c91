"""The accelerator's main-memory port: burst requests, write data and read data as streams.

The accelerator is the master (`memory_port_signature` is written from its side):

``req``
    One burst per beat: ``addr`` (byte address of the first word, a multiple of the bus width B
    = ``AccelConfig.bus_bytes``), ``beats`` (1..65535 words of B bytes) and ``write``.
``wdata``
    For each write burst, ``beats`` words in order: ``data`` (B bytes, byte 0 lowest) and
    ``strobe`` (one enable bit per byte; a disabled byte of memory is left unchanged).
``rdata``
    For each read burst, ``beats`` words in order; bursts are answered in request order.

Every stream is valid/ready with back-pressure either way and any latency: a memory may accept
requests ahead of the data, answer reads after any delay and hold off ``wdata``. A write burst's
data may be sent before, with or after its request; the memory pairs them in order.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

#: Bits of a byte address.
ADDRESS_BITS = 32
#: Bits of a burst length in words.
BEATS_BITS = 16


def request_layout() -> data.StructLayout:
    """Payload of ``req``."""
    return data.StructLayout({"addr": ADDRESS_BITS, "beats": BEATS_BITS, "write": 1})


def row_beats(row_bytes: int, bus_bytes: int) -> int:
    """Most words of B = `bus_bytes` bytes that `row_bytes` bytes at any byte address touch
    (when they start at the last byte of a word)."""
    return (row_bytes + bus_bytes - 2) // bus_bytes + 1


def write_layout(bus_bytes: int) -> data.StructLayout:
    """Payload of ``wdata``: B bytes and B byte enables."""
    return data.StructLayout({"data": unsigned(8 * bus_bytes), "strobe": bus_bytes})


def memory_port_signature(bus_bytes: int) -> wiring.Signature:
    """The port as the master (the accelerator) sees it; `.flip()` for a memory."""
    if isinstance(bus_bytes, bool) or not isinstance(bus_bytes, int):
        raise TypeError(f"bus_bytes must be an int, not {bus_bytes!r}")
    if bus_bytes < 1 or bus_bytes & (bus_bytes - 1):
        raise ValueError(f"bus_bytes must be a power of two >= 1, not {bus_bytes!r}")
    return wiring.Signature(
        {
            "req": Out(stream.Signature(request_layout())),
            "wdata": Out(stream.Signature(write_layout(bus_bytes))),
            "rdata": In(stream.Signature(unsigned(8 * bus_bytes))),
        }
    )
