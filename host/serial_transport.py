"""A `host.device.Transport` over a serial line to `hdl.board_top.BoardTop`.

`SerialTransport(port, config, memory_bytes)` speaks the byte protocol of `hdl.bridge`
(docs/bridge.md) over `port`: any object with ``write(data: bytes)`` and
``read(n: int) -> bytes`` (pyserial's ``serial.Serial`` has both; so does the simulated port of
tests/uart_board.py).

Every command is one exchange: the host writes the whole frame (its CRC fields included) and
reads the answer, whose CRC runs on from the command's bytes, so an answer is taken only for the
command that produced it. An exchange fails when the answer is short (a port timeout), its CRC
does not match, or the bridge answers ``CRC_ERROR``, ``TIMEOUT`` or ``BAD_COMMAND`` (it took
the frame damaged). The host then drains the port (reads until a read returns nothing, so the
bridge has finished discarding and answering) and sends the frame again, at most ``retries``
times; then it raises `SerialProtocolError` naming every failure. Every command can be sent
again: WRITE, READ, STATUS and COUNTERS are idempotent, and a PUSH carries the count of words
the accelerator had taken before it, so the bridge never offers a word twice.

Example::

    port = serial.Serial("/dev/ttyUSB0", 115200, timeout=0.1)
    device = Device(config=config, transport=SerialTransport(port, config, 1 << 16))

The port's timeout must be longer than the bridge's ``idle_bits`` (8.9 ms at 115200 baud by
default) and than the longest wait of an answer (STATUS waits until the accelerator is idle; a
PUSH word waits while the accelerator's queues are full).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import numpy as np

from hdl.bridge import COUNTER_BYTES, CRC_BYTES, Command, Status
from hdl.config import AccelConfig
from hdl.crc import crc16
from hdl.isa import ErrorCode, Instruction, ProgramError, check_program, encode_program
from hdl.top_ports import COUNTERS
from host.device import DeviceError, ProgramRun, Transport

__all__ = ["MAX_CHUNK", "RETRIES", "SerialProtocolError", "SerialTransport"]

#: Most bytes one WRITE or READ command moves (its length field is 16 bits).
MAX_CHUNK = 0xFFFF
#: Default times an exchange is sent again after a failure.
RETRIES = 4
#: Bytes asked of each read while draining, and reads before a port that never falls quiet is
#: given up on.
_DRAIN_BYTES, _DRAIN_READS = 4096, 64
#: Statuses of a frame the bridge rejected (their answer carries a CRC of its own).
_REJECTED = (Status.CRC_ERROR, Status.TIMEOUT, Status.BAD_COMMAND)


class SerialProtocolError(RuntimeError):
    """The board gave no good answer (short, damaged or rejected) in every try, or an answer
    the protocol does not allow."""


class _TryFailedError(Exception):
    """One exchange failed in a way another try can mend."""


def _with_crc(data: bytes, value: int) -> bytes:
    """`data` and the CRC `value` of everything before it in the exchange (low byte first)."""
    return data + value.to_bytes(CRC_BYTES, "little")


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
    retries : int
        Times an exchange is sent again after a failure (module docstring).

    ``retried`` counts the exchanges sent again so far.
    """

    def __init__(
        self,
        port: object,
        config: AccelConfig,
        memory_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        retries: int = RETRIES,
    ):
        if not (callable(getattr(port, "write", None)) and callable(getattr(port, "read", None))):
            raise TypeError(f"port must have write(bytes) and read(n) methods, not {port!r}")
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int):
            raise TypeError(f"memory_bytes must be an int, not {memory_bytes!r}")
        if memory_bytes < 1:
            raise ValueError(f"memory_bytes must be positive, not {memory_bytes!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        self.port = port
        self.config = config
        self.clock = clock
        self.retries = retries
        self.retried = 0
        self._memory_bytes = memory_bytes
        # The low byte of the board's `instructions` counter (a PUSH's seq); None until read.
        self._taken: int | None = None

    @property
    def memory_bytes(self) -> int:
        return self._memory_bytes

    # Protocol ------------------------------------------------------------------------------
    def _read(self, count: int, what: str) -> bytes:
        data = bytes(self.port.read(count))
        if len(data) != count:
            raise _TryFailedError(f"expected {count} bytes ({what}), got {len(data)}: {data.hex()}")
        return data

    def _drain(self) -> None:
        """Read until the port falls quiet: the bridge is waiting for a command again."""
        for _ in range(_DRAIN_READS):
            if not self.port.read(_DRAIN_BYTES):
                return
        raise SerialProtocolError(
            f"the board kept sending: {_DRAIN_READS} reads of {_DRAIN_BYTES} bytes did not "
            "drain the port"
        )

    def _exchange(
        self,
        frame: bytes,
        covered: bytes,
        length: int,
        what: str,
        statuses: tuple[Status, ...] = (Status.OK,),
    ) -> bytes:
        """Send `frame` and return its answer's `length` bytes (the status byte first), trying
        up to ``1 + retries`` times. `covered` is every byte of `frame` but its CRC fields: the
        answer's CRC runs on from them."""
        failures = []
        for attempt in range(1 + self.retries):
            if attempt:
                self.retried += 1
                self._drain()
            try:
                self.port.write(frame)
                answer = self._answer(covered, length)
            except _TryFailedError as failure:
                failures.append(f"try {attempt + 1}: {failure}")
                continue
            if answer[0] not in statuses:
                expected = " or ".join(f"{s.name} ({s.value:#04x})" for s in statuses)
                raise SerialProtocolError(
                    f"{what}: expected status {expected} from the board, got {answer[0]:#04x}"
                )
            return answer
        raise SerialProtocolError(
            f"{what}: no good answer in {1 + self.retries} tries: " + "; ".join(failures)
        )

    def _answer(self, covered: bytes, length: int) -> bytes:
        """The answer's `length` bytes, its CRC checked, or `_TryFailedError`."""
        status = self._read(1, "the status byte")
        if status[0] in _REJECTED:
            check = self._read(CRC_BYTES, "the CRC of a rejection")
            if _with_crc(status, crc16(status)) == status + check:
                raise _TryFailedError(f"the board answered {Status(status[0]).name}")
            raise _TryFailedError(f"a damaged answer: status {status.hex()}, CRC {check.hex()}")
        rest = self._read(length - 1 + CRC_BYTES, "the rest of the answer")
        answer = status + rest[:-CRC_BYTES]
        if _with_crc(answer, crc16(answer, crc16(covered))) != status + rest:
            raise _TryFailedError(f"the answer's CRC does not match: {(status + rest).hex()}")
        return answer

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
            frame = _with_crc(_with_crc(header, crc16(header)) + chunk, crc16(header + chunk))
            what = f"WRITE of {len(chunk)} bytes at {address + start:#x}"
            self._exchange(frame, header + chunk, 1, what)

    def read(self, address: int, count: int) -> np.ndarray:
        self._check(address, count)
        parts = []
        for start in range(0, count, MAX_CHUNK):
            size = min(MAX_CHUNK, count - start)
            header = struct.pack("<BIH", Command.READ, address + start, size)
            what = f"READ of {size} bytes at {address + start:#x}"
            frame = _with_crc(header, crc16(header))
            parts.append(self._exchange(frame, header, 1 + size, what)[1:])
        return np.frombuffer(b"".join(parts), np.uint8).copy()

    def push(self, words: np.ndarray) -> int:
        """Push instruction words (uint32 [n, 4], `hdl.isa.encode_program`) on ``cmd``, one
        PUSH each; the number the accelerator took (it stops taking words after an error, and
        the rest are not sent)."""
        data = np.ascontiguousarray(words, dtype="<u4").reshape(-1, 4)
        if self._taken is None and len(data):
            self.counters()  # learns `_taken`
        for index, row in enumerate(data):
            seq = self._taken
            header = bytes([Command.PUSH, seq]) + row.tobytes()
            status, taken = self._exchange(
                _with_crc(header, crc16(header)),
                header,
                2,
                f"PUSH of instruction word {index}",
                (Status.OK, Status.DROPPED),
            )
            if taken == (seq + 1) & 0xFF:  # taken now or by an earlier try
                self._taken = taken
            elif status == Status.DROPPED and taken == seq:
                return index
            else:
                raise SerialProtocolError(
                    f"PUSH of instruction word {index}: sent as word {seq} (mod 256), the board "
                    f"answered {Status(status).name} with {taken} words taken: out of step"
                )
        return len(data)

    def status(self) -> tuple[ErrorCode, int]:
        """Wait until the accelerator is idle: (error code, index of the bad word)."""
        header = bytes([Command.STATUS])
        answer = self._exchange(_with_crc(header, crc16(header)), header, 6, "STATUS")
        code, index = struct.unpack("<BI", answer[1:])
        try:
            return ErrorCode(code), index
        except ValueError:
            raise SerialProtocolError(f"STATUS: unknown error code {code}") from None

    def counters(self) -> dict[str, int]:
        """The accelerator's counters (`hdl.top_ports.COUNTERS`)."""
        header = bytes([Command.COUNTERS])
        length = 1 + COUNTER_BYTES * len(COUNTERS)
        data = self._exchange(_with_crc(header, crc16(header)), header, length, "COUNTERS")[1:]
        counters = {
            name: int.from_bytes(data[i * COUNTER_BYTES : (i + 1) * COUNTER_BYTES], "little")
            for i, name in enumerate(COUNTERS)
        }
        self._taken = counters["instructions"] & 0xFF
        return counters

    def execute(self, program: list[Instruction]) -> ProgramRun:
        """Push `program`, wait until idle, read the counters.

        ``cycles`` is the difference of the ``cycles`` counter before and after (it counts from
        reset, so it includes the time the words spent on the serial line), and so are the other
        counters, modulo ``2 ** config.counter_bits``: exact unless the run was long enough for
        a counter to wrap, which the wall time tells (then `SerialProtocolError`). After an
        error the accelerator takes no more words until it is reset, so the board is then of no
        further use; the error index is counted within `program`.

        A PUSH carries no end-of-program mark, so the board cannot tell a program that
        deadlocks at its end from one whose words are still coming: such a program raises
        `hdl.isa.ProgramError` (DEADLOCK) before a word is sent. Every other bad program is
        sent, and the accelerator reports it (`DeviceError`)."""
        _refuse_a_deadlock_at_the_end(program, self.config, self.memory_bytes)
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


def _refuse_a_deadlock_at_the_end(program: list[Instruction], config, memory_bytes) -> None:
    """Raise the checker's DEADLOCK when `program` deadlocks once every word is dispatched."""
    try:
        check_program(program, config, memory_bytes)
    except ProgramError as error:
        if error.code is ErrorCode.DEADLOCK and error.index == len(program):
            raise
