"""A UART: 8N1 serial receiver and transmitter with byte streams on the logic side.

Frames are 8N1: a start bit (0), eight data bits least significant first, a stop bit (1); the
line idles high. One bit lasts ``divisor`` clock cycles (baud rate = clock / ``divisor``), so a
frame lasts ``10 * divisor`` cycles. Both blocks are `wiring.Component`s with a
``stream.Signature(8)`` port (DESIGN.md §7 items 1-2).
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_divisor"]

#: Bits of one 8N1 frame (start, 8 data, stop).
FRAME_BITS = 10


def check_divisor(divisor: object) -> int:
    """`divisor` as an int >= 2, or `TypeError` / `ValueError` naming the bad value."""
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"divisor must be an int, not {divisor!r}")
    if divisor < 2:
        raise ValueError(f"divisor must be at least 2, not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver: the serial line ``rx`` in, one ``stream`` beat per received byte out.

    Timing
    ------
    ``rx`` passes a two-flop synchronizer (2 cycles). A falling edge starts a frame; the start
    bit is checked at its middle (``divisor // 2`` cycles later) and each data bit and the stop
    bit are sampled ``divisor`` cycles after the previous sample, so a byte is offered on
    ``stream`` about ``9.5 * divisor + 3`` cycles after its start bit began, and the receiver
    looks for the next start bit from the middle of the stop bit (tolerates a few percent of
    clock mismatch). A start bit that is high again at its middle is a glitch and ignored; a
    frame whose stop bit is low is dropped and sets ``frame_error`` for one cycle.

    Flow control
    ------------
    None on the line: the byte stays offered (``valid``) until taken; if a new byte completes
    while the previous one is still waiting, the new byte replaces it and ``overrun`` pulses.
    A consumer that takes each byte within ``10 * divisor`` cycles never loses one.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 2.
    """

    rx: In(1, init=1)
    stream: Out(stream.Signature(8))
    frame_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(divisor))
        bits = Signal(range(9))
        shift = Signal(8)
        done = Signal()

        with m.If(self.stream.ready):
            m.d.sync += self.stream.valid.eq(0)
        m.d.comb += done.eq(0)
        with m.FSM():
            with m.State("IDLE"), m.If(~line):
                m.d.sync += timer.eq(divisor // 2 - 1)
                m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), shift.eq(Cat(shift[1:], line))]
                    m.d.sync += bits.eq(bits + 1)
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.comb += done.eq(1)
                    m.next = "IDLE"
        with m.If(done & line):
            m.d.sync += [self.stream.payload.eq(shift), self.stream.valid.eq(1)]
        m.d.comb += [
            self.frame_error.eq(done & ~line),
            self.overrun.eq(done & line & self.stream.valid & ~self.stream.ready),
        ]
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: one ``stream`` beat per byte in, the serial line ``tx`` out.

    Timing
    ------
    A byte taken at a clock edge starts its start bit on ``tx`` right after that edge; the
    frame takes ``10 * divisor`` cycles and ``stream.ready`` is high again in the last cycle of
    the stop bit, so back-to-back bytes leave with no idle time between frames. ``tx`` is a
    register (no glitches) and idles high.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 2.
    """

    stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        timer = Signal(range(divisor))
        left = Signal(range(FRAME_BITS + 1))  # bits still to send after the one on the line
        shift = Signal(FRAME_BITS - 1)  # the data bits and the stop bit not sent yet

        last = (left == 0) & (timer == 0)
        m.d.comb += self.stream.ready.eq(last)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [
                self.tx.eq(shift[0]),
                shift.eq(shift[1:]),
                left.eq(left - 1),
                timer.eq(divisor - 1),
            ]
        with m.If(last & self.stream.valid):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(Cat(self.stream.payload, Const(1, 1))),
                left.eq(FRAME_BITS - 1),
                timer.eq(divisor - 1),
            ]
        with m.Elif(last):
            m.d.sync += self.tx.eq(1)
        return m
