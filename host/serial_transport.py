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
import time
from collections.abc import Callable

import numpy as np

from hdl.bridge import COUNTER_BYTES, Command, Status
from hdl.config import AccelConfig
from hdl.isa import ErrorCode, Instruction, encode_program
from hdl.top_ports import COUNTERS
from host.device import DeviceError, ProgramRun, Transport

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
    clock : callable
        Seconds, read before and after each `execute` to tell whether a counter could have
        wrapped (at most ``config.clock_mhz`` cycles per microsecond pass on the board). A
        simulated board passes its simulated time.
    """

    def __init__(
        self,
        port: object,
        config: AccelConfig,
        memory_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ):
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
        self.clock = clock
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
        """Push instruction words (uint32 [n, 4], `hdl.isa.encode_program`) on ``cmd``;
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
        counters, modulo ``2 ** config.counter_bits``: exact unless the run was long enough for
        a counter to wrap, which the wall time tells (then `SerialProtocolError`). After an
        error the accelerator takes no more words until it is reset, so the board is then of no
        further use; the error index is counted within `program`."""
        started = self.clock()
        before = self.counters()
        self.push(encode_program(program))
        code, index = self.status()
        after = self.counters()
        self._check_no_wrap(self.clock() - started)
        modulus = 1 << self.config.counter_bits
        if code is not ErrorCode.NONE:
            # error_index counts words since reset, modulo 2**32
            index = (index - before["instructions"]) % min(modulus, 1 << 32)
            raise DeviceError(
                code,
                index,
                f"the accelerator stopped with {code.name} at instruction {index} "
                f"of {len(program)}",
            )
        counters = {name: (after[name] - before[name]) % modulus for name in COUNTERS}
        return ProgramRun(counters["cycles"], counters, "rtl")

    def _check_no_wrap(self, seconds: float) -> None:
        """Raise `SerialProtocolError` if, in `seconds` at the config's clock, some counter
        could have grown by ``2 ** counter_bits`` (its difference would then be ambiguous).
        No counter grows faster than ``max(R * C, bus_bytes)`` a cycle over a run (bytes move a
        bus word at a time; a MATMUL's MACs are counted as it starts, R x C for each cycle of
        its rows)."""
        config = self.config
        fastest = max(config.rows * config.cols, config.bus_bytes)
        most = seconds * config.clock_mhz * 1e6 * fastest
        if most >= 1 << config.counter_bits:
            raise SerialProtocolError(
                f"the run took {seconds:.1f} s: at {config.clock_mhz:g} MHz a counter may have "
                f"grown by up to {most:.3g}, past the {config.counter_bits}-bit counters' "
                f"2**{config.counter_bits}, so the differences are ambiguous; split the "
                "program or build with a larger counter_bits"
            )
