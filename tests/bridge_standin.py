"""`hdl.bridge.HostBridge` with its UART and memory in front of a stand-in accelerator, the RTL
twin of `sim.bridge_model.BridgeModel` (whose docstring defines the stand-in): faults run
through both must end alike (tests/test_link_faults.py). Far fewer cycles to simulate than
`hdl.board_top.BoardTop`, whose accelerator the stand-in replaces."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.bridge import HostBridge
from hdl.config import address_bits
from hdl.onchip_memory import OnchipMemory
from hdl.uart import UartRx, UartTx
from sim.bridge_model import STOP_BYTE, STOP_CODE


class BridgeStandIn(wiring.Component):
    """UART pins ``rx`` / ``tx``; ``bridge`` is the `HostBridge` (its ``cmd`` to watch).

    Parameters
    ----------
    memory_bytes, divisor, idle_bits : as `hdl.board_top.BoardTop`'s.
    before : int
        Words the stand-in has taken at reset (its ``instructions`` counter's start).
    hold : int
        Cycles the stand-in is busy (``cmd.ready`` and ``idle`` low) after each word it takes.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(
        self, memory_bytes: int, divisor: int, idle_bits: int, before: int = 0, hold: int = 0
    ):
        self.memory_bytes, self.divisor = memory_bytes, divisor
        self.before, self.hold = before, hold
        self.bridge = HostBridge(address_bits(memory_bytes), idle_bits * divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.memory = memory = OnchipMemory(self.memory_bytes, 1)
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)
        wiring.connect(m, bridge.mem, memory.host)
        wiring.connect(m, uart_rx.stream, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.stream)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]

        taken = Signal(32, init=self.before)
        error = Signal(4)
        error_index = Signal(32)
        busy = Signal(range(self.hold + 1))  # cycles still busy
        m.d.comb += [
            bridge.cmd.ready.eq(busy == 0),
            bridge.idle.eq(busy == 0),
            bridge.error.eq(error),
            bridge.error_index.eq(error_index),
            bridge.counters.instructions.eq(taken),
        ]
        with m.If(bridge.cmd.valid & bridge.cmd.ready):
            m.d.sync += [taken.eq(taken + 1), busy.eq(self.hold)]
            with m.If(bridge.cmd.payload[:8] == STOP_BYTE):
                m.d.sync += [error.eq(STOP_CODE.value), error_index.eq(taken)]
        with m.Elif(busy != 0):
            m.d.sync += busy.eq(busy - 1)
        return m
