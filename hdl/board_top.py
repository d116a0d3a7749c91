"""The accelerator on a board: on-chip memory, a host bridge and a UART, two pins to the host.

`BoardTop(config, memory_bytes, divisor)` holds

- `hdl.top.Accelerator` (config),
- `hdl.onchip_memory.OnchipMemory` of ``memory_bytes`` bytes on its ``mem`` port,
- `hdl.bridge.HostBridge` (the byte protocol of docs/bridge.md) on the memory's host port and
  the accelerator's ``cmd``, status and counters,
- `hdl.uart.UartRx` / `hdl.uart.UartTx` (8N1, ``divisor`` clocks per bit) between the bridge
  and the ``rx`` / ``tx`` pins.

``rx`` is the line from the host (idles high), ``tx`` the line to it. The host side is
`host.serial_transport.SerialTransport`; `hdl.boards.BoardDesign` puts the pins on a board.

Timing: the bridge and the accelerator meet only through registers, so that the accelerator's
instruction checks (a multiply and a compare of a command's address range) and the bridge's
state machine do not form one combinational path. Commands pass a 2-word FIFO
(``SyncFIFOBuffered``, registered both ways; ready does not depend on the accelerator), and
``idle``, ``error`` and ``error_index`` reach the bridge one cycle late. ``idle`` is reported
only when the accelerator is idle and that FIFO is empty, so a command still in it is never
missed. ``counters`` go straight to the bridge, which samples one at a time into a register
(a registered copy of all eleven would cost 528 flip-flops). Each command takes one more cycle
to reach the accelerator than on its bare ``cmd`` port, at the same throughput.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from hdl.bridge import HostBridge
from hdl.config import AccelConfig
from hdl.isa import WORD_BITS
from hdl.onchip_memory import OnchipMemory, check_size
from hdl.top import Accelerator
from hdl.uart import UartRx, UartTx, check_divisor

__all__ = ["BoardTop"]


class BoardTop(wiring.Component):
    """Accelerator + on-chip memory + host bridge + UART (module docstring).

    Parameters
    ----------
    config : AccelConfig
        The accelerator; ``config.mem_bytes`` should equal `memory_bytes` so that the
        accelerator's DRAM_RANGE check matches the memory.
    memory_bytes : int
        Bytes of on-chip main memory (a power of two).
    divisor : int
        Clock cycles per UART bit (at least 2).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, config: AccelConfig, memory_bytes: int, divisor: int):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.memory_bytes = memory_bytes
        self.divisor = check_divisor(divisor)
        check_size(memory_bytes, config.bus_bytes)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = accel = Accelerator(self.config)
        m.submodules.memory = memory = OnchipMemory(self.memory_bytes, self.config.bus_bytes)
        m.submodules.bridge = bridge = HostBridge()
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)

        wiring.connect(m, accel.mem, memory.bus)
        wiring.connect(m, bridge.mem, memory.host)
        m.submodules.commands = commands = fifo.SyncFIFOBuffered(width=WORD_BITS, depth=2)
        m.d.comb += [
            commands.w_data.eq(bridge.cmd.payload),
            commands.w_en.eq(bridge.cmd.valid),
            bridge.cmd.ready.eq(commands.w_rdy),
            accel.cmd.payload.eq(commands.r_data),
            accel.cmd.valid.eq(commands.r_rdy),
            commands.r_en.eq(accel.cmd.ready),
        ]
        wiring.connect(m, uart_rx.stream, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.stream)
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
        ]
        m.d.sync += [
            bridge.idle.eq(accel.idle & (commands.level == 0)),
            bridge.error.eq(accel.error),
            bridge.error_index.eq(accel.error_index),
        ]
        m.d.comb += bridge.counters.eq(accel.counters)
        return m
