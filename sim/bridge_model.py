"""A byte-level model of `hdl.bridge.HostBridge` on a serial line, for fault campaigns.

`BridgeModel` follows the bridge's protocol engine (docs/bridge.md) byte by byte: the same
states, the same running CRC and comparisons, the same quiet-line rule, in front of a memory and
a stand-in accelerator (`STOP_BYTE`). `ModelPort` is a serial port (``write``, ``read``,
``pause``) to it, with the timing of tests/uart_board.SimulatedSerialPort counted in byte times
instead of clock cycles: in each byte time at most one byte arrives at the bridge and one leaves
it, and a ``read`` that sees nothing on either line for ``timeout`` byte times returns short.

Stand-in accelerator: after each word it takes it is busy for ``hold_bytes`` (``cmd.ready``
and ``idle`` low; 0 by default), else ``cmd`` takes a word offered at once; a word whose first
byte is `STOP_BYTE` is taken and then stops it with `STOP_CODE` (like an instruction that fails
its checks), so later words are ``DROPPED``. The ``instructions`` counter counts the words
taken, every other counter reads 0. tests/bridge_standin.py is the same stand-in in Amaranth
(its ``hold`` in cycles), so the model and the RTL can be run on the same faults.
"""

from collections import deque

from hdl.bridge import COUNTER_BYTES, CRC_BYTES, HEADER_BYTES, Command, Status
from hdl.crc import CRC_INIT, crc16
from hdl.isa import ErrorCode
from hdl.top_ports import COUNTERS

__all__ = ["STOP_BYTE", "STOP_CODE", "BridgeModel", "ModelPort"]

#: First byte of an instruction word that stops the stand-in accelerator.
STOP_BYTE = 0xEE
#: The error code it stops with.
STOP_CODE = ErrorCode.BAD_OPCODE
#: Bits of one byte on the line (8N1): a pause is rounded up to whole byte times.
_BYTE_BITS = 10


class BridgeModel:
    """`hdl.bridge.HostBridge`, a memory and the stand-in accelerator (module docstring).

    Parameters
    ----------
    memory_bytes : int
        Bytes of memory (a power of two: addresses wrap modulo it).
    idle_bytes : int
        Byte times with no byte taken that end a frame or the discarding (the bridge's
        ``idle_cycles``).
    hold_bytes : int
        Byte times the stand-in accelerator is busy after each word it takes.
    """

    def __init__(self, memory_bytes: int, idle_bytes: int, hold_bytes: int = 0):
        self.memory = bytearray(memory_bytes)
        self.idle_bytes = idle_bytes
        self.hold_bytes = hold_bytes
        self._busy = 0  # byte times the stand-in is still busy
        self.words: list[bytes] = []  # the words cmd took, in order
        self.error = ErrorCode.NONE
        self.error_index = 0
        self.out: deque[int] = deque()  # answer bytes not yet on the line
        self._rx: int | None = None  # the receiver's one byte of buffer
        self._quiet = idle_bytes
        self._state = "COMMAND"
        self._crc = CRC_INIT
        self._opcode = 0
        self._need = 0
        self._header = bytearray()
        self._low_ok = False
        self._written = False
        self._address = self._length = 0
        self._pending = Status.CRC_ERROR  # the answer after DISCARD

    @property
    def receiving(self) -> bool:
        """Whether the bridge takes a byte: not while it waits for the accelerator or an
        answer goes out, but again once the answer's last byte waits in the transmitter's
        register (behind the one on the line)."""
        return len(self.out) <= 1 and self._state not in ("OFFER", "WAIT")

    def step(self, byte: int | None) -> None:
        """One byte time, in which `byte` (or nothing) arrived at the receiver."""
        if byte is not None:
            self._rx = byte  # a byte not taken yet is overwritten, as in hdl.uart.UartRx
        self._busy = max(self._busy - 1, 0)
        if self._state == "OFFER" and not self._busy:
            self._offer()
        elif self._state == "WAIT" and not self._busy:
            self._status()
        if not self.receiving:
            self._quiet = self.idle_bytes
            return
        if self._rx is not None:
            byte, self._rx = self._rx, None
            self._quiet = self.idle_bytes
            self._take(byte)
            return
        self._quiet = max(self._quiet - 1, 0)
        if self._quiet == 0 and self._state in ("HEADER", "WRITE"):
            self._state, self._pending = "DISCARD", Status.TIMEOUT
        if self._quiet == 0 and self._state == "DISCARD":
            self._answer(bytes([self._pending]), CRC_INIT)

    # The protocol engine -------------------------------------------------------------------
    def _take(self, byte: int) -> None:
        state = self._state
        if state == "COMMAND":
            self._crc, self._opcode, self._written = crc16(bytes([byte])), byte, False
            if byte in HEADER_BYTES:
                self._need = HEADER_BYTES[Command(byte)] + CRC_BYTES
                self._header = bytearray()
                self._state = "HEADER"
            else:
                self._reject(Status.BAD_COMMAND)
        elif state == "HEADER":
            self._need -= 1
            if self._need >= CRC_BYTES:
                self._crc = crc16(bytes([byte]), self._crc)
                self._header.append(byte)
            elif self._need == 1:
                self._low_ok = byte == self._crc & 0xFF
            elif self._low_ok and byte == self._crc >> 8:
                self._decode()
            else:
                self._reject(Status.CRC_ERROR)
        elif state == "WRITE":
            self.memory[self._address % len(self.memory)] = byte
            self._crc = crc16(bytes([byte]), self._crc)
            self._address, self._length = self._address + 1, self._length - 1
            if self._length == 0:
                self._state, self._need = "HEADER", CRC_BYTES
        # DISCARD: the byte is dropped.

    def _reject(self, status: Status) -> None:
        self._state, self._pending = "DISCARD", status

    def _answer(self, body: bytes, crc: int) -> None:
        """Send `body` and its CRC, run on from `crc`; then wait for a command."""
        self.out.extend(body + crc16(body, crc).to_bytes(CRC_BYTES, "little"))
        self._state = "COMMAND"

    def _decode(self) -> None:
        opcode, header, crc = self._opcode, bytes(self._header), self._crc
        taken = len(self.words) & 0xFF
        if opcode == Command.WRITE and self._written:
            self._answer(bytes([Status.OK]), crc)
        elif opcode == Command.WRITE:
            self._address = int.from_bytes(header[:4], "little")
            self._length = int.from_bytes(header[4:6], "little")
            self._written = True
            self._state, self._need = ("WRITE", 0) if self._length else ("HEADER", CRC_BYTES)
        elif opcode == Command.READ:
            address = int.from_bytes(header[:4], "little")
            length = int.from_bytes(header[4:6], "little")
            size = len(self.memory)
            data = bytes(self.memory[(address + i) % size] for i in range(length))
            self._answer(bytes([Status.OK]) + data, crc)
        elif opcode == Command.PUSH:
            if header[0] != taken:  # taken already: not offered again
                self._answer(bytes([Status.OK, taken]), crc)
            elif self.error is not ErrorCode.NONE:
                self._answer(bytes([Status.DROPPED, taken]), crc)
            else:
                self._state = "OFFER"
                if not self._busy:
                    self._offer()
        elif opcode == Command.STATUS:
            self._state = "WAIT"
            if not self._busy:
                self._status()
        else:  # COUNTERS
            counters = {name: 0 for name in COUNTERS} | {"instructions": len(self.words)}
            data = b"".join(counters[name].to_bytes(COUNTER_BYTES, "little") for name in COUNTERS)
            self._answer(bytes([Status.OK]) + data, crc)

    def _offer(self) -> None:
        """The PUSH word taken, once the stand-in is not busy."""
        word = bytes(self._header[1:])
        self.words.append(word)
        self._busy = self.hold_bytes
        if word[0] == STOP_BYTE:
            self.error, self.error_index = STOP_CODE, len(self.words) - 1
        self._answer(bytes([Status.OK, len(self.words) & 0xFF]), self._crc)

    def _status(self) -> None:
        """STATUS once the stand-in is idle."""
        fields = bytes([Status.OK, self.error.value]) + self.error_index.to_bytes(4, "little")
        self._answer(fields, self._crc)


class ModelPort:
    """A serial port (``write``, ``read``, ``pause``) to a `BridgeModel` (module docstring).

    Parameters
    ----------
    bridge : BridgeModel
    timeout : int
        Byte times with nothing on either line after which a ``read`` returns short.
    """

    def __init__(self, bridge: BridgeModel, timeout: int):
        self.bridge = bridge
        self.timeout = timeout
        self.time = 0  # byte times passed
        self._to_bridge: deque[int | None] = deque()  # bytes, None for a byte time of pause
        self._from_bridge = bytearray()

    def write(self, data: bytes) -> int:
        self._to_bridge.extend(bytes(data))
        return len(data)

    def pause(self, bits: int) -> None:
        """Hold the line idle for `bits` bit times (rounded up to byte times)."""
        self._to_bridge.extend([None] * -(-bits // _BYTE_BITS))

    def read(self, count: int) -> bytes:
        waiting = 0
        while len(self._from_bridge) < count and waiting <= self.timeout:
            sending = bool(self._to_bridge)
            self.bridge.step(self._to_bridge.popleft() if sending else None)
            if self.bridge.out:
                self._from_bridge.append(self.bridge.out.popleft())
                waiting = 0
            elif not sending:
                waiting += 1
            self.time += 1
        data = bytes(self._from_bridge[:count])
        del self._from_bridge[:count]
        return data
