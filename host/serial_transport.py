"""A `host.device.Transport` over a serial line to `hdl.board_top.BoardTop`.

`SerialTransport(port, config, memory_bytes)` speaks the byte protocol of `hdl.bridge`
(docs/bridge.md) over `port`: any object with ``write(data: bytes)`` and
``read(n: int) -> bytes`` (pyserial's ``serial.Serial`` has both; so does the simulated port of
tests/test_board_uart.py). A read that returns fewer than ``n`` bytes (a port timeout) raises
`SerialProtocolError` naming what was expected, as does an answer with an unexpected status.

Example::

    port = serial.Serial("/dev/ttyUSB0", 115200, timeout=5)
    device = Device(config=config, transport=SerialTransport(port, config, 1 << 16))
"""

from __future__ import annotations

import struct

import numpy as np

from hdl.bridge import COUNTER_BYTES, Command, Status
from hdl.config import AccelConfig
from hdl.isa import ErrorCode
from hdl.top_ports import COUNTERS
from host.device import DeviceError, ProgramRun, Transport
from host.isa import Instruction, encode_program

__all__ = ["MAX_CHUNK", "SerialProtocolError", "SerialTransport"]

#: Most bytes one WRITE or READ command moves (its length field is 16 bits).
MAX_CHUNK = 0xFFFF


class SerialProtocolError(RuntimeError):
    """The board's answer was short (a port timeout) or not what the protocol says."""


class SerialTransport(Transport):
    """Main memory and the command stream of a `BoardTop` behind a serial port.

    Parameters
    ----------
    port
        An object with ``write(bytes)`` and ``read(n) -> bytes`` (e.g. ``serial.Serial`` with a
        timeout, so that a silent board gives a short read instead of a hang).
    config : AccelConfig
        The board's accelerator.
    memory_bytes : int
        Bytes of the board's on-chip memory.
    """

    def __init__(self, port: object, config: AccelConfig, memory_bytes: int):
        if not (callable(getattr(port, "write", None)) and callable(getattr(port, "read", None))):
            raise TypeError(f"port must have write(bytes) and read(n) methods, not {port!r}")
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int):
            raise TypeError(f"memory_bytes must be an int, not {memory_bytes!r}")
        if memory_bytes < 1:
            raise ValueError(f"memory_bytes must be positive, not {memory_bytes!r}")
        self.port = port
        self.config = config
        self._memory_bytes = memory_bytes

    @property
    def memory_bytes(self) -> int:
        return self._memory_bytes

    # Protocol ------------------------------------------------------------------------------
    def _read(self, count: int, what: str) -> bytes:
        data = bytes(self.port.read(count))
        if len(data) != count:
            raise SerialProtocolError(
                f"expected {count} bytes ({what}) from the board, got {len(data)}: {data.hex()}"
            )
        return data

    def _expect_ok(self, what: str) -> None:
        status = self._read(1, f"the status byte of {what}")[0]
        if status != Status.OK:
            name = Status(status).name if status in Status._value2member_map_ else "unknown"
            raise SerialProtocolError(
                f"{what}: expected status OK (0x00) from the board, got {status:#04x} ({name})"
            )

    def _check(self, address: int, count: int) -> None:
        if not 0 <= address <= address + count <= self.memory_bytes:
            raise ValueError(
                f"bytes [{address}, {address + count}) are outside main memory "
                f"[0, {self.memory_bytes})"
            )

    # Transport -----------------------------------------------------------------------------
    def write(self, address: int, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8).tobytes()
        self._check(address, len(data))
        for start in range(0, len(data), MAX_CHUNK):
            chunk = data[start : start + MAX_CHUNK]
            header = struct.pack("<BIH", Command.WRITE, address + start, len(chunk))
            self.port.write(header + chunk)
            self._expect_ok(f"WRITE of {len(chunk)} bytes at {address + start:#x}")

    def read(self, address: int, count: int) -> np.ndarray:
        self._check(address, count)
        parts = []
        for start in range(0, count, MAX_CHUNK):
            size = min(MAX_CHUNK, count - start)
            what = f"READ of {size} bytes at {address + start:#x}"
            self.port.write(struct.pack("<BIH", Command.READ, address + start, size))
            self._expect_ok(what)
            parts.append(self._read(size, f"the data of {what}"))
        return np.frombuffer(b"".join(parts), np.uint8).copy()

    def push(self, words: np.ndarray) -> int:
        """Push instruction words (uint32 [n, 4], `host.isa.encode_program`) on ``cmd``;
        the number the accelerator took (it stops taking words after an error)."""
        data = np.ascontiguousarray(words, dtype="<u4").reshape(-1, 4)
        self.port.write(struct.pack("<BH", Command.PUSH, len(data)))
        taken = 0
        for index, row in enumerate(data):
            self.port.write(row.tobytes())
            status = self._read(1, f"the answer to instruction word {index} of PUSH")[0]
            if status == Status.OK:
                taken += 1
            elif status != Status.DROPPED:
                raise SerialProtocolError(
                    f"PUSH word {index}: expected status OK (0x00) or DROPPED (0x01), "
                    f"got {status:#04x}"
                )
        return taken

    def status(self) -> tuple[ErrorCode, int]:
        """Wait until the accelerator is idle: (error code, index of the bad word)."""
        self.port.write(bytes([Command.STATUS]))
        self._expect_ok("STATUS")
        code, index = struct.unpack("<BI", self._read(5, "the error code and index of STATUS"))
        try:
            return ErrorCode(code), index
        except ValueError:
            raise SerialProtocolError(f"STATUS: unknown error code {code}") from None

    def counters(self) -> dict[str, int]:
        """The accelerator's counters (`hdl.top_ports.COUNTERS`)."""
        self.port.write(bytes([Command.COUNTERS]))
        self._expect_ok("COUNTERS")
        data = self._read(COUNTER_BYTES * len(COUNTERS), "the counters of COUNTERS")
        return {
            name: int.from_bytes(data[i * COUNTER_BYTES : (i + 1) * COUNTER_BYTES], "little")
            for i, name in enumerate(COUNTERS)
        }

    def execute(self, program: list[Instruction]) -> ProgramRun:
        """Push `program`, wait until idle, read the counters.

        ``cycles`` is the difference of the ``cycles`` counter before and after (it counts from
        reset, so it includes the time the words spent on the serial line), and so are the other
        counters. After an error the accelerator takes no more words until it is reset, so the
        board is then of no further use; the error index is counted within `program`."""
        before = self.counters()
        self.push(encode_program(program))
        code, index = self.status()
        after = self.counters()
        if code is not ErrorCode.NONE:
            index -= before["instructions"]  # error_index counts words since reset
            raise DeviceError(
                code,
                index,
                f"the accelerator stopped with {code.name} at instruction {index} "
                f"of {len(program)}",
            )
        counters = {name: after[name] - before[name] for name in COUNTERS}
        return ProgramRun(counters["cycles"], counters, "rtl")
