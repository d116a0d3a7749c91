"""The host bridge: a byte-stream command protocol to main memory and the accelerator.

`HostBridge` takes command frames from a stream (a UART receiver), answers on another (a UART
transmitter), reads and writes main memory through `hdl.onchip_memory.OnchipMemory`'s byte
port, feeds instruction words to the accelerator's ``cmd`` and reports its status and counters.
The protocol is in docs/bridge.md and below; every field is little-endian and every header has a
fixed size.

A CRC (`hdl.crc`, CRC-16/MCRF4XX) runs over each exchange, a command and its answer: it starts
at the command byte and covers every byte of the exchange but its CRC fields; each ``crc`` below
is the CRC of every byte before it, so an answer's CRC also covers the command it answers.

========  ====  ======================================  =====================================
command   byte  then the host sends                     the bridge answers
========  ====  ======================================  =====================================
WRITE     0x01  addr u32, length u16, crc, then length  ``OK``, crc once every byte is in
                bytes, crc                              memory and both crcs matched
READ      0x02  addr u32, length u16, crc               ``OK``, the length bytes, crc
PUSH      0x03  seq u8, a 16-byte instruction word      ``OK`` or ``DROPPED``, taken u8, crc
                (least significant byte first), crc     (below)
STATUS    0x04  crc                                     once ``idle`` is high: ``OK``, error
                                                        code u8, error index u32, crc
COUNTERS  0x05  crc                                     ``OK``, each counter of
                                                        `hdl.top_ports.COUNTERS` as 6 bytes
                                                        (u48, sampled as its first byte goes
                                                        out), crc
========  ====  ======================================  =====================================

PUSH: ``taken`` is the ``instructions`` counter's low byte (words ``cmd`` took since reset). The
bridge offers the word only if ``seq`` equals ``taken``: then it answers ``OK`` once ``cmd``
took it, or ``DROPPED`` (the word not taken) if the accelerator has stopped with an error. A
``seq`` that is not ``taken`` (a retried word that was taken already) is answered ``OK`` and the
word is not offered again; ``taken`` tells the host which case it is.

A frame that goes wrong is answered, once the line has been quiet for ``idle_cycles``, with a
status byte and its own CRC (from `hdl.crc.CRC_INIT`): ``BAD_COMMAND`` for a first byte that is
no command, ``CRC_ERROR`` for a crc that does not match, ``TIMEOUT`` for a frame cut short (no
byte for ``idle_cycles``). The bridge discards every byte until then, so it answers once and
then waits for a command byte again: the host's next frame finds it in step.

Status bytes: `OK` = 0x00, `DROPPED` = 0x01, `CRC_ERROR` = 0xEC, `TIMEOUT` = 0xED,
`BAD_COMMAND` = 0xEE. Memory addresses wrap modulo the memory size; a length of 0 moves no
bytes. A WRITE writes its bytes as they arrive: one whose data crc fails has written (possibly
wrong) bytes in its own range only (the header's crc is checked first).

Flow control: the bridge takes each received byte within 9 cycles (the CRC's bit-serial
update) except while it is answering, waiting for ``cmd`` to take a pushed word or for
``idle``; the host sends nothing then (it waits for the answer), so a receiver with no FIFO
never overruns. A PUSH word is answered only after ``cmd`` took it, so words are never lost to
back-pressure.
"""

import enum

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.crc import Crc16
from hdl.isa import WORD_BITS
from hdl.onchip_memory import host_port_signature
from hdl.top_ports import COUNTER_BITS, COUNTERS, counter_layout

__all__ = ["COUNTER_BYTES", "CRC_BYTES", "HEADER_BYTES", "Command", "HostBridge", "Status"]

#: Bytes of each counter in a COUNTERS answer.
COUNTER_BYTES = COUNTER_BITS // 8
#: Bytes of an instruction word.
WORD_BYTES = WORD_BITS // 8
#: Bytes of a CRC field.
CRC_BYTES = 2
#: Fewest ``idle_cycles``: the CRC must have taken the last byte before an error answer starts.
MIN_IDLE_CYCLES = 16


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
    CRC_ERROR = 0xEC
    TIMEOUT = 0xED
    BAD_COMMAND = 0xEE


#: Header bytes after the command byte, before its crc.
HEADER_BYTES = {
    Command.WRITE: 6,
    Command.READ: 6,
    Command.PUSH: 1 + WORD_BYTES,
    Command.STATUS: 0,
    Command.COUNTERS: 0,
}
#: addr u32, length u16: a WRITE's or READ's header fields.
_FIELD_BYTES = HEADER_BYTES[Command.WRITE]


class _Reply(enum.Enum):
    """The answers the bridge sends before any data and the crc (bytes: `HostBridge.elaborate`)."""

    OK = 0
    PUSHED = 1
    DROPPED = 2
    STATUS = 3
    BAD_COMMAND = 4
    CRC_ERROR = 5
    TIMEOUT = 6


_REPLY_LENGTH = {_Reply.PUSHED: 2, _Reply.DROPPED: 2, _Reply.STATUS: 6}
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
    idle_cycles : int
        Cycles with no byte received that end a frame early (``TIMEOUT``) or the discarding
        after an error; at least `MIN_IDLE_CYCLES`, and more than a byte's time on the line.
    """

    def __init__(self, address_bits: int = 32, idle_cycles: int = 1 << 16):
        if not 1 <= address_bits <= 32:
            raise ValueError(f"address_bits must be in [1, 32], not {address_bits!r}")
        if isinstance(idle_cycles, bool) or not isinstance(idle_cycles, int):
            raise TypeError(f"idle_cycles must be an int, not {idle_cycles!r}")
        if idle_cycles < MIN_IDLE_CYCLES:
            raise ValueError(f"idle_cycles must be at least {MIN_IDLE_CYCLES}, not {idle_cycles}")
        self.address_bits = address_bits
        self.idle_cycles = idle_cycles
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
        m.submodules.crc = crc = Crc16()

        opcode = Signal(8)
        # Bytes of the frame still to receive, its crc's two included. Header bytes go straight
        # into place: the one received with `need` = n is byte 8 - n of addr u32, length u16 in
        # a WRITE or READ; every header byte also shifts into `word`, which holds a PUSH's seq
        # in its low byte and the instruction word above once the frame is in (the other
        # commands leave `word` unused, a PUSH `address` and `length`).
        need = Signal(range(max(HEADER_BYTES.values()) + CRC_BYTES + 1))
        address = Signal(self.address_bits)
        length = Signal(16)
        word = Signal(8 + WORD_BITS)
        crc_low_ok = Signal()  # the crc's first byte matched
        written = Signal()  # a WRITE's data are in: its second crc is the last
        # Cycles left before the line counts as quiet: reloaded by each byte taken and while the
        # bridge takes none (answering, or the CRC busy), then counted down to 0, where it stays.
        quiet = Signal(range(self.idle_cycles), init=self.idle_cycles - 1)
        # The answer is chosen by `reply_kind` and `reply_left` (bytes still to send) rather than
        # held in a register: the STATUS fields and `taken` do not change while it goes out (the
        # accelerator is idle and the host sends nothing).
        reply_kind = Signal(_Reply)
        reply_left = Signal(range(_REPLY_BYTES + 1))
        after = Signal(2)  # what follows the answer: the crc, READ data or the counters
        out_byte = Signal(8)
        out_valid = Signal()
        # COUNTERS: each counter is sampled into `sample` as its first byte goes out, so a
        # counter is never torn between two of its bytes (48 flip-flops, not a copy of all).
        sample = Signal(COUNTER_BITS)
        sample_left = Signal(range(COUNTER_BYTES + 1))  # bytes of `sample` still to send
        counter_index = Signal(range(len(COUNTERS) + 1))
        counter_values = Array(self.counters[name] for name in COUNTERS)
        # Words `cmd` took since reset, modulo 256 (a PUSH's seq). The counter moves in the cycle
        # after a word is taken, at least 9 cycles before an answer's second byte goes out.
        taken = self.counters["instructions"][:8]

        after_crc, after_read, after_counters = 0, 1, 2
        # Receiving: `take` is a byte taken; `feed` sends it through the CRC.
        receiving, feed = Signal(), Signal()
        take = rx.valid & rx.ready
        # Sending: `send` loads `send_byte` for the transmitter (and the CRC) when `can_send`.
        send, send_byte = Signal(), Signal(8)
        can_send = (~out_valid | tx.ready) & ~crc.busy
        expired = quiet == 0
        m.d.comb += [
            tx.payload.eq(out_byte),
            tx.valid.eq(out_valid),
            mem.addr.eq(address),
            rx.ready.eq(receiving & ~crc.busy),
            crc.start.eq(send | (take & feed)),
            crc.data.eq(Cat(rx.payload, send_byte).word_select(send, 8)),
        ]
        with m.If(tx.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(send):
            m.d.sync += [out_byte.eq(send_byte), out_valid.eq(1)]
        with m.If(take | ~rx.ready):
            m.d.sync += quiet.eq(self.idle_cycles - 1)
        with m.Elif(~expired):
            m.d.sync += quiet.eq(quiet - 1)

        def answer(m, kind, then=after_crc):
            """Answer `kind` (its bytes, then `then`, then the crc)."""
            m.d.sync += [
                reply_kind.eq(kind),
                reply_left.eq(_REPLY_LENGTH.get(kind, 1)),
                after.eq(then),
                need.eq(CRC_BYTES),
            ]
            m.next = "REPLY"

        def reject(m, kind):
            """Discard bytes until the line is quiet, then answer `kind`."""
            m.d.sync += reply_kind.eq(kind)
            m.next = "DISCARD"

        status = [Const(Status.OK, 8), Cat(self.error, Const(0, 4))]
        status += [self.error_index[i : i + 8] for i in range(0, 32, 8)]
        replies = {  # each answer's bytes, first to last
            _Reply.OK: [Const(Status.OK, 8)],
            _Reply.PUSHED: [Const(Status.OK, 8), taken],
            _Reply.DROPPED: [Const(Status.DROPPED, 8), taken],
            _Reply.STATUS: status,
            _Reply.BAD_COMMAND: [Const(Status.BAD_COMMAND, 8)],
            _Reply.CRC_ERROR: [Const(Status.CRC_ERROR, 8)],
            _Reply.TIMEOUT: [Const(Status.TIMEOUT, 8)],
        }
        reply_byte = Signal(8)
        with m.Switch(Cat(reply_left, reply_kind)):
            for kind, answer_bytes in replies.items():
                for i, byte in enumerate(answer_bytes):
                    with m.Case(len(answer_bytes) - i | kind.value << len(reply_left)):
                        m.d.comb += reply_byte.eq(byte)

        with m.FSM():
            with m.State("COMMAND"):
                m.d.comb += [receiving.eq(1), feed.eq(1), crc.init.eq(take)]
                with m.If(take):
                    m.d.sync += [opcode.eq(rx.payload), written.eq(0)]
                    with m.Switch(rx.payload):
                        for command, size in HEADER_BYTES.items():
                            with m.Case(command):
                                m.d.sync += need.eq(size + CRC_BYTES)
                                m.next = "HEADER"
                        with m.Default():
                            reject(m, _Reply.BAD_COMMAND)
            with m.State("HEADER"):  # header bytes, then the crc (compared, not fed)
                m.d.comb += [receiving.eq(1), feed.eq(need > CRC_BYTES)]
                crc_byte = Cat(crc.value[:8], crc.value[8:]).word_select(need == 1, 8)
                with m.If(take):
                    m.d.sync += need.eq(need - 1)
                    with m.If(need > CRC_BYTES):
                        m.d.sync += word.eq(Cat(word[8:], rx.payload))
                    with m.Switch(need):
                        for byte in range(_FIELD_BYTES):
                            with m.Case(_FIELD_BYTES + CRC_BYTES - byte):
                                field, at = (address, byte) if byte < 4 else (length, byte - 4)
                                if 8 * at < len(field):  # addresses wrap: no upper bytes
                                    m.d.sync += field[8 * at : 8 * at + 8].eq(rx.payload)
                        with m.Case(2):
                            m.d.sync += crc_low_ok.eq(rx.payload == crc_byte)
                        with m.Case(1):
                            with m.If(crc_low_ok & (rx.payload == crc_byte)):
                                m.next = "DECODE"
                            with m.Else():
                                reject(m, _Reply.CRC_ERROR)
                with m.Elif(expired):
                    reject(m, _Reply.TIMEOUT)
            with m.State("DECODE"), m.Switch(opcode):
                with m.Case(Command.WRITE):
                    with m.If(written):
                        answer(m, _Reply.OK)
                    with m.Else():
                        m.d.sync += written.eq(1)
                        m.next = "WRITE"
                with m.Case(Command.READ):
                    answer(m, _Reply.OK, after_read)
                with m.Case(Command.PUSH):
                    with m.If(word[:8] == taken):
                        m.next = "PUSH_OFFER"
                    with m.Else():  # taken already: not offered again
                        answer(m, _Reply.PUSHED)
                with m.Case(Command.STATUS):
                    m.next = "STATUS"
                with m.Default():  # COUNTERS
                    m.d.sync += [counter_index.eq(0), sample_left.eq(0)]
                    answer(m, _Reply.OK, after_counters)
            with m.State("WRITE"):
                with m.If(length == 0):
                    m.d.sync += need.eq(CRC_BYTES)
                    m.next = "HEADER"
                with m.Else():
                    m.d.comb += [receiving.eq(1), feed.eq(1), mem.w_data.eq(rx.payload)]
                    with m.If(take):
                        m.d.comb += mem.w_en.eq(1)
                        m.d.sync += [address.eq(address + 1), length.eq(length - 1)]
                    with m.Elif(expired):
                        reject(m, _Reply.TIMEOUT)
            with m.State("DISCARD"):
                m.d.comb += receiving.eq(1)
                with m.If(expired & ~take):
                    # The error answer has a CRC of its own.
                    m.d.comb += crc.init.eq(1)
                    m.d.sync += [reply_left.eq(1), after.eq(after_crc), need.eq(CRC_BYTES)]
                    m.next = "REPLY"
            with m.State("READ"):
                with m.If(length == 0):
                    m.next = "SEND_CRC"
                with m.Elif(can_send):
                    m.d.comb += mem.r_en.eq(1)
                    m.d.sync += [address.eq(address + 1), length.eq(length - 1)]
                    m.next = "READ_BYTE"
            with m.State("READ_BYTE"):
                m.d.comb += [send.eq(1), send_byte.eq(mem.r_data)]
                m.next = "READ"
            with m.State("PUSH_OFFER"):
                m.d.comb += [cmd.valid.eq(self.error == 0), cmd.payload.eq(word[8:])]
                with m.If(self.error != 0):
                    answer(m, _Reply.DROPPED)
                with m.Elif(cmd.ready):
                    answer(m, _Reply.PUSHED)
            with m.State("STATUS"), m.If(self.idle):
                answer(m, _Reply.STATUS)
            with m.State("COUNTER_BYTES"):
                with m.If(sample_left == 0):
                    with m.If(counter_index == len(COUNTERS)):
                        m.next = "SEND_CRC"
                    with m.Else():
                        m.d.sync += [
                            sample.eq(counter_values[counter_index]),
                            sample_left.eq(COUNTER_BYTES),
                            counter_index.eq(counter_index + 1),
                        ]
                with m.Elif(can_send):
                    m.d.comb += [send.eq(1), send_byte.eq(sample[:8])]
                    m.d.sync += [sample.eq(sample[8:]), sample_left.eq(sample_left - 1)]
            with m.State("REPLY"):
                with m.If(reply_left == 0), m.Switch(after):
                    with m.Case(after_read):
                        m.next = "READ"
                    with m.Case(after_counters):
                        m.next = "COUNTER_BYTES"
                    with m.Default():
                        m.next = "SEND_CRC"
                with m.Elif(can_send):
                    m.d.comb += [send.eq(1), send_byte.eq(reply_byte)]
                    m.d.sync += reply_left.eq(reply_left - 1)
            with m.State("SEND_CRC"):
                # Sending the register's low byte through the CRC shifts it right by 8 (the
                # byte cancels the feedback), so the high byte comes next.
                with m.If(need == 0):
                    m.next = "COMMAND"
                with m.Elif(can_send):
                    m.d.comb += [send.eq(1), send_byte.eq(crc.value[:8])]
                    m.d.sync += need.eq(need - 1)
        return m
