"""The host bridge: a byte-stream command protocol to main memory and the accelerator.

`HostBridge` takes command bytes from a stream (a UART receiver), answers on another (a UART
transmitter), reads and writes main memory through `hdl.onchip_memory.OnchipMemory`'s byte
port, feeds instruction words to the accelerator's ``cmd`` and reports its status and counters.
The protocol is in docs/bridge.md and below; every field is little-endian, every header has a
fixed size, and every command's answer starts with a status byte.

========  ====  ================================  ============================================
command   byte  then the host sends               the bridge answers
========  ====  ================================  ============================================
WRITE     0x01  addr u32, length u16, length      ``OK`` once every byte is in memory
                bytes
READ      0x02  addr u32, length u16              ``OK``, then the length bytes from addr
PUSH      0x03  count u16, then count times: a    after each word: ``OK`` once ``cmd`` took it,
                16-byte instruction word          ``DROPPED`` if the accelerator has stopped
                (least significant byte first)    with an error (it takes no more words)
STATUS    0x04  nothing                           once ``idle`` is high: ``OK``, error code u8,
                                                  error index u32
COUNTERS  0x05  nothing                           ``OK``, then each counter of
                                                  `hdl.top_ports.COUNTERS` as 6 bytes (u48),
                                                  each sampled as its first byte is sent
other     any   nothing                           ``BAD_COMMAND``, the byte received
========  ====  ================================  ============================================

Status bytes: `OK` = 0x00, `DROPPED` = 0x01, `BAD_COMMAND` = 0xEE. After any answer the
bridge waits for the next command byte, so an unknown byte never hangs it. Memory addresses
wrap modulo the memory size; a length of 0 moves no bytes.

Flow control: the bridge takes each received byte within a few cycles except while it is
answering, waiting for ``cmd`` to take a pushed word or for ``idle``; the host sends nothing
then (it waits for the answer), so a receiver with no FIFO never overruns. A PUSH word is
answered only after ``cmd`` took it, so words are never lost to back-pressure.
"""

import enum

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.isa import WORD_BITS
from hdl.onchip_memory import host_port_signature
from hdl.top_ports import COUNTER_BITS, COUNTERS, counter_layout

__all__ = ["COUNTER_BYTES", "Command", "HostBridge", "Status"]

#: Bytes of each counter in a COUNTERS answer.
COUNTER_BYTES = COUNTER_BITS // 8
#: Bytes of an instruction word.
WORD_BYTES = WORD_BITS // 8


class Command(enum.IntEnum):
    """Command bytes of the protocol."""

    WRITE = 0x01
    READ = 0x02
    PUSH = 0x03
    STATUS = 0x04
    COUNTERS = 0x05


class Status(enum.IntEnum):
    """First byte of every answer."""

    OK = 0x00
    DROPPED = 0x01
    BAD_COMMAND = 0xEE


#: Header bytes after the command byte.
HEADER_BYTES = {Command.WRITE: 6, Command.READ: 6, Command.PUSH: 2}
#: addr u32, length u16: a WRITE's or READ's header (a PUSH's is the length's two bytes).
_HEADER_FIELDS_BYTES = HEADER_BYTES[Command.WRITE]


class _Reply(enum.Enum):
    """The answers the bridge sends before any data (their bytes: `HostBridge.elaborate`)."""

    OK = 0
    DROPPED = 1
    BAD_COMMAND = 2
    STATUS = 3


_REPLY_LENGTH = {_Reply.OK: 1, _Reply.DROPPED: 1, _Reply.BAD_COMMAND: 2, _Reply.STATUS: 6}
_REPLY_BYTES = max(_REPLY_LENGTH.values())


class HostBridge(wiring.Component):
    """Byte-stream commands to memory and the accelerator (protocol: module docstring).

    Ports
    -----
    rx : stream of bytes in (commands); tx : stream of bytes out (answers).
    mem : master of `hdl.onchip_memory.host_port_signature`.
    cmd : instruction words to `hdl.top.Accelerator`'s ``cmd``.
    idle, error, error_index, counters : the accelerator's status outputs.

    Parameters
    ----------
    address_bits : int
        Bits of the memory address the bridge keeps (1..32): addresses wrap modulo
        ``2 ** address_bits``, the memory's size, so the upper bits of a header's u32 go unused.
    """

    def __init__(self, address_bits: int = 32):
        if not 1 <= address_bits <= 32:
            raise ValueError(f"address_bits must be in [1, 32], not {address_bits!r}")
        self.address_bits = address_bits
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "tx": Out(stream.Signature(8)),
                "mem": In(host_port_signature()),
                "cmd": Out(stream.Signature(WORD_BITS)),
                "idle": In(1),
                "error": In(4),
                "error_index": In(32),
                "counters": In(counter_layout()),
            }
        )

    def elaborate(self, platform):
        m = Module()
        rx, tx, mem, cmd = self.rx, self.tx, self.mem, self.cmd

        opcode = Signal(8)
        # Bytes still to receive. A header's bytes go straight into `address` and `length`: the
        # one received with `need` = n is byte 6 - n of addr u32, length u16 (a PUSH header is
        # the count alone, received from `need` = 2, so it lands in `length` too).
        need = Signal(range(WORD_BYTES + 1))
        address = Signal(self.address_bits)
        length = Signal(16)
        # The answer is chosen by `reply_kind` and `reply_left` (bytes still to send) rather than
        # held in a register: the STATUS fields and the opcode do not change while it goes out
        # (the accelerator is idle and the host sends nothing).
        reply_kind = Signal(_Reply)
        reply_left = Signal(range(_REPLY_BYTES + 1))
        after = Signal(2)  # what follows the answer: idle, READ data, next PUSH word, counters
        word = Signal(WORD_BITS)
        out_byte = Signal(8)
        out_valid = Signal()
        # COUNTERS: each counter is sampled into `sample` as its first byte goes out, so a
        # counter is never torn between two of its bytes (48 flip-flops, not a copy of all).
        sample = Signal(COUNTER_BITS)
        sample_left = Signal(range(COUNTER_BYTES + 1))  # bytes of `sample` still to send
        counter_index = Signal(range(len(COUNTERS) + 1))
        counter_values = Array(self.counters[name] for name in COUNTERS)

        after_idle, after_read, after_push, after_counters = 0, 1, 2, 3
        m.d.comb += [tx.payload.eq(out_byte), tx.valid.eq(out_valid), mem.addr.eq(address)]
        with m.If(tx.ready):
            m.d.sync += out_valid.eq(0)

        def answer(m, kind, then=after_idle):
            m.d.sync += [reply_kind.eq(kind), reply_left.eq(_REPLY_LENGTH[kind]), after.eq(then)]
            m.next = "REPLY"

        status = [Const(Status.OK, 8), Cat(self.error, Const(0, 4))]
        status += [self.error_index[i : i + 8] for i in range(0, 32, 8)]
        replies = {  # each answer's bytes, first to last
            _Reply.OK: [Const(Status.OK, 8)],
            _Reply.DROPPED: [Const(Status.DROPPED, 8)],
            _Reply.BAD_COMMAND: [Const(Status.BAD_COMMAND, 8), opcode],
            _Reply.STATUS: status,
        }
        reply_byte = Signal(8)
        with m.Switch(Cat(reply_left, reply_kind)):
            for kind, answer_bytes in replies.items():
                for i, byte in enumerate(answer_bytes):
                    with m.Case(len(answer_bytes) - i | kind.value << len(reply_left)):
                        m.d.comb += reply_byte.eq(byte)

        with m.FSM():
            with m.State("COMMAND"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += opcode.eq(rx.payload)
                    with m.Switch(rx.payload):
                        for command, size in HEADER_BYTES.items():
                            with m.Case(command):
                                m.d.sync += need.eq(size)
                                m.next = "HEADER"
                        with m.Case(Command.STATUS):
                            m.next = "STATUS"
                        with m.Case(Command.COUNTERS):
                            m.next = "COUNTERS"
                        with m.Default():
                            answer(m, _Reply.BAD_COMMAND)
            with m.State("HEADER"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += need.eq(need - 1)
                    with m.Switch(need):
                        for byte in range(_HEADER_FIELDS_BYTES):
                            with m.Case(_HEADER_FIELDS_BYTES - byte):
                                field, at = (address, byte) if byte < 4 else (length, byte - 4)
                                if 8 * at < len(field):  # addresses wrap: no upper bytes
                                    m.d.sync += field[8 * at : 8 * at + 8].eq(rx.payload)
                    with m.If(need == 1):
                        m.next = "DECODE"
            with m.State("DECODE"), m.Switch(opcode):
                with m.Case(Command.WRITE):
                    m.next = "WRITE"
                with m.Case(Command.READ):
                    answer(m, _Reply.OK, after_read)
                with m.Default():  # PUSH: the count is in `length`
                    m.next = "PUSH_NEXT"
            with m.State("WRITE"):
                with m.If(length == 0):
                    answer(m, _Reply.OK)
                with m.Else():
                    m.d.comb += [rx.ready.eq(1), mem.w_data.eq(rx.payload)]
                    with m.If(rx.valid):
                        m.d.comb += mem.w_en.eq(1)
                        m.d.sync += [address.eq(address + 1), length.eq(length - 1)]
            with m.State("READ"):
                with m.If(length == 0):
                    m.next = "COMMAND"
                with m.Elif(~out_valid):
                    m.d.comb += mem.r_en.eq(1)
                    m.d.sync += [address.eq(address + 1), length.eq(length - 1)]
                    m.next = "READ_BYTE"
            with m.State("READ_BYTE"):
                m.d.sync += [out_byte.eq(mem.r_data), out_valid.eq(1)]
                m.next = "READ"
            with m.State("PUSH_NEXT"):
                with m.If(length == 0):
                    m.next = "COMMAND"
                with m.Else():
                    m.d.sync += [need.eq(WORD_BYTES), length.eq(length - 1)]
                    m.next = "PUSH_WORD"
            with m.State("PUSH_WORD"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += [word.eq(Cat(word[8:], rx.payload)), need.eq(need - 1)]
                    with m.If(need == 1):
                        m.next = "PUSH_OFFER"
            with m.State("PUSH_OFFER"):
                m.d.comb += [cmd.valid.eq(self.error == 0), cmd.payload.eq(word)]
                with m.If(self.error != 0):
                    answer(m, _Reply.DROPPED, after_push)
                with m.Elif(cmd.ready):
                    answer(m, _Reply.OK, after_push)
            with m.State("STATUS"), m.If(self.idle):
                answer(m, _Reply.STATUS)
            with m.State("COUNTERS"):
                m.d.sync += [counter_index.eq(0), sample_left.eq(0)]
                answer(m, _Reply.OK, after_counters)
            with m.State("COUNTER_BYTES"):
                with m.If(sample_left == 0):
                    with m.If(counter_index == len(COUNTERS)):
                        m.next = "COMMAND"
                    with m.Else():
                        m.d.sync += [
                            sample.eq(counter_values[counter_index]),
                            sample_left.eq(COUNTER_BYTES),
                            counter_index.eq(counter_index + 1),
                        ]
                with m.Elif(~out_valid | tx.ready):
                    m.d.sync += [
                        out_byte.eq(sample[:8]),
                        out_valid.eq(1),
                        sample.eq(sample[8:]),
                        sample_left.eq(sample_left - 1),
                    ]
            with m.State("REPLY"):
                with m.If(reply_left == 0), m.Switch(after):
                    with m.Case(after_read):
                        m.next = "READ"
                    with m.Case(after_push):
                        m.next = "PUSH_NEXT"
                    with m.Case(after_counters):
                        m.next = "COUNTER_BYTES"
                    with m.Default():
                        m.next = "COMMAND"
                with m.Elif(~out_valid | tx.ready):
                    m.d.sync += [
                        out_byte.eq(reply_byte),
                        out_valid.eq(1),
                        reply_left.eq(reply_left - 1),
                    ]
        return m
