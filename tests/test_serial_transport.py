"""`host.serial_transport.SerialTransport`'s counter arithmetic against a scripted port:
differences modulo ``2 ** counter_bits`` across a wrap, and the wall-time check that refuses a
run long enough for a counter to have wrapped; a silent port's error. (The protocol itself runs
against the RTL in tests/test_board_uart.py and tests/test_link_faults.py.)"""

import struct

import pytest

from hdl.bridge import Status
from hdl.config import AccelConfig
from hdl.crc import crc16
from hdl.isa import ErrorCode, Instruction, Op, ProgramError
from hdl.top_ports import COUNTERS
from host.device import DeviceError
from host.serial_transport import SerialProtocolError, SerialTransport

CONFIG = AccelConfig(rows=2, cols=2, bus_bytes=1, mem_bytes=1024, counter_bits=16, clock_mhz=12)
PROGRAM = [Instruction(Op.FENCE), Instruction(Op.FENCE)]


class ScriptedPort:
    """Answers each frame written with the next of the given answers (its CRC appended, run on
    from the frame's bytes but its CRC), whatever the frame."""

    def __init__(self, answers: list[bytes]):
        self.answers = list(answers)
        self.out = bytearray()
        self.written = 0  # bytes written

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.answers:
            answer = self.answers.pop(0)
            self.out += answer + crc16(answer, crc16(data[:-2])).to_bytes(2, "little")
        return len(data)

    def read(self, count: int) -> bytes:
        data = bytes(self.out[:count])
        del self.out[:count]
        return data


def counters_answer(values: dict[str, int]) -> bytes:
    return bytes([Status.OK]) + b"".join(values[name].to_bytes(6, "little") for name in COUNTERS)


def execute_answers(before: dict, after: dict, code=ErrorCode.NONE, index=0) -> list[bytes]:
    taken = before["instructions"]
    pushed = [bytes([Status.OK, (taken + 1 + i) & 0xFF]) for i in range(len(PROGRAM))]
    status = struct.pack("<BBI", Status.OK, code.value, index)
    return [counters_answer(before), *pushed, status, counters_answer(after)]


class Clock:
    """Seconds that advance by `step` per reading."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_counter_differences_are_taken_modulo_the_counter_width():
    before = {name: 0xFFF0 for name in COUNTERS}
    after = {name: 0x0010 + i for i, name in enumerate(COUNTERS)}
    port = ScriptedPort(execute_answers(before, after))
    run = SerialTransport(port, CONFIG, 1024, clock=Clock(1e-4)).execute(PROGRAM)
    assert run.counters == {name: 0x20 + i for i, name in enumerate(COUNTERS)}
    assert run.cycles == 0x20
    assert not port.answers and not port.out


def test_an_error_index_is_counted_within_the_program_across_a_wrap():
    before = {name: 0 for name in COUNTERS} | {"instructions": 0xFFFF}
    port = ScriptedPort(execute_answers(before, before, ErrorCode.BAD_FIELD, index=0))
    with pytest.raises(DeviceError, match=r"BAD_FIELD at instruction 1 of 2"):
        SerialTransport(port, CONFIG, 1024, clock=Clock(1e-4)).execute(PROGRAM)


def test_a_run_long_enough_for_a_counter_to_wrap_is_refused():
    # 2**16 / (12 MHz x 4 MACs per cycle) = 1.37 ms: two clock readings 1 ms apart are fine,
    # 1.5 ms apart are not.
    counters = {name: 0 for name in COUNTERS}
    port = ScriptedPort(execute_answers(counters, counters))
    SerialTransport(port, CONFIG, 1024, clock=Clock(1e-3)).execute(PROGRAM)
    port = ScriptedPort(execute_answers(counters, counters))
    with pytest.raises(SerialProtocolError, match=r"16-bit counters.*ambiguous"):
        SerialTransport(port, CONFIG, 1024, clock=Clock(1.5e-3)).execute(PROGRAM)
    wide = AccelConfig(rows=2, cols=2, mem_bytes=1024, clock_mhz=12)  # 48 bits: 68 days
    port = ScriptedPort(execute_answers(counters, counters))
    assert SerialTransport(port, wide, 1024, clock=Clock(3600.0)).execute(PROGRAM).cycles == 0


def test_a_program_that_deadlocks_at_its_end_is_refused_before_a_word_is_sent():
    """The board would wait for more words; a deadlock behind a FENCE, or a bad word, is the
    board's to report."""
    stuck = Instruction(
        Op.MATMUL, act_row=0, wgt_row=0, rows=1, acc_row=0, accumulate=0, pop_prev=True
    )
    port = ScriptedPort([])
    transport = SerialTransport(port, CONFIG, 1024, clock=Clock(1e-4))
    with pytest.raises(ProgramError, match=r"^instruction 1: deadlock: every word") as caught:
        transport.execute([stuck])
    assert (caught.value.code, caught.value.stuck) == (ErrorCode.DEADLOCK, 0)
    assert port.written == 0  # nothing was sent
    counters = {name: 0 for name in COUNTERS}
    port = ScriptedPort(execute_answers(counters, counters, ErrorCode.DEADLOCK, index=1))
    with pytest.raises(DeviceError, match=r"DEADLOCK at instruction 1 of 2"):
        SerialTransport(port, CONFIG, 1024, clock=Clock(1e-4)).execute(
            [stuck, Instruction(Op.FENCE)]
        )


def test_a_silent_board_gives_a_protocol_error_naming_each_try():
    port = ScriptedPort([])
    transport = SerialTransport(port, CONFIG, 1024, retries=2)
    with pytest.raises(
        SerialProtocolError,
        match=r"^STATUS: no good answer in 3 tries: try 1: expected 1 bytes \(the status byte\)"
        r", got 0: ; try 2: .*; try 3: .*$",
    ):
        transport.status()
    assert transport.retried == 2
