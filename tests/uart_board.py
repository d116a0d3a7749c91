# amaranth: UnusedElaboratable=no
"""A serial port whose far end is a simulated design with UART pins (``rx`` in, ``tx`` out).

`SimulatedSerialPort` is a serial port (``write(bytes)``, ``read(n) -> bytes``, the part of
pyserial's ``Serial`` that `host.serial_transport.SerialTransport` uses) whose far end is the
simulated design: the host driver runs in a thread and talks to the port; the async testbench
(in the main thread) turns the bytes written into 8N1 bits on ``rx`` and decodes ``tx`` back
into bytes for ``read``. The simulator advances only while there is something on the line or
a ``read`` is waiting, so host-side Python time costs no simulated cycles, and a ``read`` that
sees nothing arrive for `SimulatedSerialPort.timeout_cycles` returns short, as a port timeout.
`SimulatedSerialPort.pause` holds the line idle between two writes (a gap inside a frame).
"""

import threading
from collections import deque

from amaranth.sim import Simulator

from hdl.board_top import BoardTop
from hdl.config import AccelConfig


def frame_levels(byte: int, divisor: int) -> list[int]:
    """The 8N1 line levels, one per clock cycle, of `byte`."""
    bits = [0, *((byte >> i) & 1 for i in range(8)), 1]
    return [bit for bit in bits for _ in range(divisor)]


class LineDecoder:
    """8N1 bytes from line levels sampled once per clock cycle (mid-bit sampling)."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        self.age = None  # cycles since the start bit's first low sample, None while idle
        self.value = 0

    @property
    def busy(self) -> bool:
        return self.age is not None

    def step(self, level: int) -> int | None:
        """Feed one cycle's level; the byte when its stop bit was sampled, else None."""
        d = self.divisor
        if self.age is None:
            if not level:
                self.age, self.value = 0, 0
            return None
        self.age += 1
        if (self.age - d // 2) % d or self.age < d // 2:
            return None
        bit = (self.age - d // 2) // d
        if bit == 0:
            assert level == 0, "start bit high at its middle"
        elif bit <= 8:
            self.value |= level << (bit - 1)
        else:
            assert level == 1, f"framing error: stop bit low after byte {self.value:#04x}"
            self.age = None
            return self.value
        return None


class SimulatedSerialPort:
    """A serial port wired to a simulated design's UART pins (module docstring)."""

    def __init__(self, divisor: int, timeout_cycles: int = 20_000):
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.cycles = 0
        self._cond = threading.Condition()
        self._to_board: deque[list[int]] = deque()  # line levels, a byte's or a pause's each
        self._from_board = bytearray()
        self._wanted = 0
        self._timed_out = False
        self._closed = False

    # Host side (pyserial's interface).
    def write(self, data: bytes) -> int:
        with self._cond:
            self._to_board.extend(frame_levels(byte, self.divisor) for byte in bytes(data))
            self._cond.notify_all()
        return len(data)

    def pause(self, cycles: int) -> None:
        """Hold the line idle for `cycles` after what was written so far."""
        with self._cond:
            self._to_board.append([1] * cycles)
            self._cond.notify_all()

    def read(self, count: int) -> bytes:
        with self._cond:
            self._wanted, self._timed_out = count, False
            self._cond.notify_all()
            while len(self._from_board) < count and not (self._timed_out or self._closed):
                self._cond.wait()
            self._wanted = 0
            data = bytes(self._from_board[:count])
            del self._from_board[:count]
            return data

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # Board side.
    async def testbench(self, ctx, dut) -> None:
        levels: deque[int] = deque()
        decoder = LineDecoder(self.divisor)
        waiting = 0
        try:
            ctx.set(dut.rx, 1)
            while True:
                with self._cond:
                    while not (
                        self._closed
                        or self._to_board
                        or levels
                        or decoder.busy
                        or self._wanted > len(self._from_board)
                    ):
                        self._cond.wait()
                    if self._closed:
                        return
                    if not levels and self._to_board:
                        levels.extend(self._to_board.popleft())
                    reading = self._wanted > len(self._from_board)
                ctx.set(dut.rx, levels.popleft() if levels else 1)
                await ctx.tick()
                self.cycles += 1
                byte = decoder.step(ctx.get(dut.tx))
                with self._cond:
                    if byte is not None:
                        self._from_board.append(byte)
                        waiting = 0
                        self._cond.notify_all()
                    elif reading and not levels and not decoder.busy:
                        waiting += 1
                        if waiting > self.timeout_cycles:
                            self._timed_out, waiting = True, 0
                            self._cond.notify_all()
        finally:
            self.close()


def run_port(dut, host, *, divisor: int, testbenches=(), **port_options):
    """Simulate `dut` (``rx`` / ``tx`` pins at `divisor` cycles per bit) while ``host(port)``
    runs in a thread against its serial port; host's return value (its exception is raised
    here). `testbenches` run beside the port's, in the background (``tb(ctx)``)."""
    port = SimulatedSerialPort(divisor, **port_options)
    outcome = {}

    def host_thread():
        try:
            outcome["value"] = host(port)
        except BaseException as error:  # handed to the main thread
            outcome["error"] = error
        finally:
            port.close()

    async def testbench(ctx):
        await port.testbench(ctx, dut)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    for background in testbenches:
        sim.add_testbench(background, background=True)
    thread = threading.Thread(target=host_thread, daemon=True)
    thread.start()
    try:
        sim.run()
    finally:
        port.close()
        thread.join(timeout=60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_board(config: AccelConfig, memory_bytes: int, host, *, divisor: int, **options):
    """`run_port` on ``BoardTop(config, memory_bytes, divisor)`` (``idle_bits`` from
    `options`, the rest to the port)."""
    board = {key: options.pop(key) for key in ("idle_bits",) if key in options}
    dut = BoardTop(config, memory_bytes, divisor, **board)
    return run_port(dut, host, divisor=divisor, **options)
