"""The accelerator on a board: on-chip memory, a host bridge and a UART, two pins to the host.

`BoardTop(config, memory_bytes, divisor, idle_bits)` holds

- `hdl.top.Accelerator` (config),
- `hdl.onchip_memory.OnchipMemory` of ``memory_bytes`` bytes on its ``mem`` port,
- `hdl.bridge.HostBridge` (the byte protocol of docs/bridge.md) on the memory's host port and
  the accelerator's ``cmd``, status and counters; a frame that stops for ``idle_bits`` bit times
  is cut short,
- `hdl.uart.UartRx` / `hdl.uart.UartTx` (8N1, ``divisor`` clocks per bit) between the bridge
  and the ``rx`` / ``tx`` pins.

``rx`` is the line from the host (idles high), ``tx`` the line to it. The host side is
`host.serial_transport.SerialTransport`; `hdl.boards.BoardDesign` puts the pins on a board.

Timing: the bridge's instruction word goes straight to the accelerator's ``cmd``: the word is
a register in the bridge, which holds it until it is taken, and the accelerator checks it
there (``checks_in_place``: the address-check product, then the error code, each registered)
and takes it as it dispatches, so no long path crosses and the word is not copied;
``cmd.ready`` comes from the dispatcher's registers. ``idle`` reaches the bridge one cycle
late: it is low in the cycle after the bridge offers a word, so the word being taken is never
missed. ``error`` and ``error_index`` (registers that change only when a word is taken or an
instruction fails) and ``counters`` go straight to the bridge, which samples one counter at a
time into a register (a registered copy of all eleven would cost 11 x counter_bits
flip-flops).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.bridge import HostBridge
from hdl.config import AccelConfig, address_bits
from hdl.onchip_memory import OnchipMemory, check_size
from hdl.top import Accelerator, longest_burst
from hdl.uart import FRAME_BITS, UartRx, UartTx, check_divisor

__all__ = ["IDLE_BITS", "BoardTop"]

#: Default bit times of silence that end a frame (`BoardTop`'s ``idle_bits``).
IDLE_BITS = 1024


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
    idle_bits : int
        Bit times with no byte received after which the bridge ends a frame early or stops
        discarding after an error (`hdl.bridge.HostBridge`'s ``idle_cycles`` is
        ``idle_bits * divisor``), at least 20. The default, 1024, is 8.9 ms at 115200 baud:
        longer than the gaps a USB serial adapter leaves inside one write, shorter than a
        host's port timeout.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(
        self, config: AccelConfig, memory_bytes: int, divisor: int, idle_bits: int = IDLE_BITS
    ):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.memory_bytes = memory_bytes
        self.divisor = check_divisor(divisor)
        if isinstance(idle_bits, bool) or not isinstance(idle_bits, int):
            raise TypeError(f"idle_bits must be an int, not {idle_bits!r}")
        if idle_bits < 2 * FRAME_BITS:
            raise ValueError(f"idle_bits must be at least {2 * FRAME_BITS}, not {idle_bits}")
        self.idle_bits = idle_bits
        check_size(memory_bytes, config.bus_bytes)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        # The UART brings a word per ~160 bit times: the dispatcher checks it on ``cmd``.
        m.submodules.accel = accel = Accelerator(self.config, checks_in_place=True)
        m.submodules.memory = memory = OnchipMemory(
            self.memory_bytes, self.config.bus_bytes, max_beats=longest_burst(self.config)
        )
        m.submodules.bridge = bridge = HostBridge(
            address_bits(self.memory_bytes), self.idle_bits * self.divisor
        )
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)

        wiring.connect(m, accel.mem, memory.bus)
        wiring.connect(m, bridge.mem, memory.host)
        wiring.connect(m, bridge.cmd, accel.cmd)
        # PUSH frames carry no end-of-program mark: a deadlock behind a FENCE or a full queue
        # still ends in DEADLOCK, one at the program's end waits (the host checks programs first).
        m.d.comb += accel.cmd_last.eq(0)
        wiring.connect(m, uart_rx.stream, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.stream)
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
        ]
        m.d.sync += bridge.idle.eq(accel.idle & ~bridge.cmd.valid)
        m.d.comb += [
            bridge.error.eq(accel.error),
            bridge.error_index.eq(accel.error_index),
            bridge.counters.eq(accel.counters),
        ]
        return m
