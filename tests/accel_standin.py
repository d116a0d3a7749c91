"""A tiny stand-in for the accelerator top, to test the native accelerator harness with.

`StandIn` has the real top's ports (`hdl.top_ports.accelerator_signature`) and drives the real
memory port protocol, but runs a made-up command set (`STANDIN_OPS`), not docs/isa.md. Build
words with `copy_word`, `write_word`, `orphan_word`, `word`. Its timing, which the harness tests
derive their exact cycle counts from (the memory always accepts requests):

- A command is accepted in a cycle where the request side is idle (and no error, no WAIT, task
  queue not full); the cycle after, the data side sees its task.
- COPY takes the request side three cycles: accept, read request, write request. WRITE takes
  three too (accept, a cycle without request, write request), so that its word, offered as soon
  as its task is the head one, can come before its request. ORPHAN takes two (accept, read
  request); NOP and a bad opcode one.
- The data side runs the tasks in order with no gap between them: COPY passes each read word
  straight on as a write word (``rdata`` to ``wdata`` combinationally, all strobes set).
- ``idle`` is high when the request side is idle and the task queue is empty (and no WAIT).
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO

from hdl.config import AccelConfig
from hdl.isa import ErrorCode
from hdl.top_ports import accelerator_signature

#: The stand-in's opcodes (bits [0, 4) of a word); other nonzero values are BAD_OPCODE.
STANDIN_OPS = {"NOP": 0, "COPY": 1, "WRITE": 2, "WAIT": 3, "ORPHAN": 4}

#: Tasks queued between the request side and the data side.
TASK_DEPTH = 4

#: Widest bus the WRITE word's strobe field holds (bits [64, 128)).
MAX_BUS_BYTES = 64


def word(value: int) -> list[int]:
    """A 128-bit word as the four uint32 of `hdl.isa.encode_program` (least significant first)."""
    return [(value >> (32 * i)) & 0xFFFF_FFFF for i in range(4)]


def copy_word(src: int, dst: int, beats: int) -> list[int]:
    """COPY: read `beats` bus words from byte address `src`, write them to `dst`.

    Fields: ``src`` [8, 40), ``dst`` [40, 72), ``beats`` [72, 88).
    """
    return word(STANDIN_OPS["COPY"] | src << 8 | dst << 40 | beats << 72)


def orphan_word(src: int, beats: int) -> list[int]:
    """ORPHAN: a read burst whose data is never taken (a deliberate protocol bug); COPY's fields."""
    return word(STANDIN_OPS["ORPHAN"] | src << 8 | beats << 72)


def write_word(addr: int, value: int, strobe: int) -> list[int]:
    """WRITE: one bus word to `addr`, byte i = (`value` + i) mod 256, bytes enabled by `strobe`.

    Fields: ``addr`` [8, 40), ``value`` [40, 48), ``strobe`` [64, 128).
    """
    return word(STANDIN_OPS["WRITE"] | addr << 8 | value << 40 | strobe << 64)


class StandIn(wiring.Component):
    """Stand-in accelerator: NOP, COPY, WRITE, WAIT, ORPHAN over the real ports (module docstring).

    COPY issues a read burst and then a write burst of ``beats`` words; WRITE one write burst of
    one word with the given strobes; WAIT is accepted and never finishes (the stand-in stops
    accepting and never reports ``idle`` again: a hang); ORPHAN issues a read burst and ignores
    its data, reporting ``idle`` with the burst outstanding (a protocol bug on purpose, two
    request-side cycles); any other nonzero opcode sets ``error``
    to BAD_OPCODE with the word's index, after which no command is accepted. Counters: ``cycles``,
    ``instructions`` (accepted words), ``bytes_read`` and ``bytes_written`` (bus words moved
    times B, strobes ignored); the others stay 0.

    Parameters
    ----------
    config:
        Only ``bus_bytes`` (B, at most `MAX_BUS_BYTES`) matters.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        if config.bus_bytes > MAX_BUS_BYTES:
            raise ValueError(
                f"the stand-in supports bus_bytes up to {MAX_BUS_BYTES}, not {config.bus_bytes!r}"
            )
        self.config = config
        super().__init__(accelerator_signature(config))

    def elaborate(self, platform):
        m = Module()
        bus = self.config.bus_bytes
        task_layout = data.StructLayout(
            {"write": 1, "beats": 16, "value": 8, "strobe": unsigned(bus)}
        )
        m.submodules.tasks = tasks = SyncFIFO(width=task_layout.size, depth=TASK_DEPTH)
        head = data.View(task_layout, tasks.r_data)
        new = data.View(task_layout, tasks.w_data)

        counters = self.counters
        m.d.sync += counters.cycles.eq(counters.cycles + 1)

        # ---- request side: accept a word, then issue its bursts ----
        command = self.cmd.payload
        op = command[0:4]
        src, dst = Signal(32), Signal(32)
        beats = Signal(16)
        stuck = Signal()
        m.d.comb += [
            new.write.eq(op == STANDIN_OPS["WRITE"]),
            new.beats.eq(command[72:88]),
            new.value.eq(command[40:48]),
            new.strobe.eq(command[64 : 64 + bus]),
        ]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq((self.error == ErrorCode.NONE) & ~stuck & tasks.w_rdy)
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += counters.instructions.eq(counters.instructions + 1)
                    with m.Switch(op):
                        with m.Case(STANDIN_OPS["NOP"]):
                            pass
                        with m.Case(STANDIN_OPS["COPY"]):
                            m.d.comb += tasks.w_en.eq(1)
                            m.d.sync += [
                                src.eq(command[8:40]),
                                dst.eq(command[40:72]),
                                beats.eq(command[72:88]),
                            ]
                            m.next = "READ"
                        with m.Case(STANDIN_OPS["WRITE"]):
                            m.d.comb += [tasks.w_en.eq(1), new.beats.eq(1)]
                            m.d.sync += [dst.eq(command[8:40]), beats.eq(1)]
                            m.next = "DELAY"
                        with m.Case(STANDIN_OPS["WAIT"]):
                            m.d.sync += stuck.eq(1)
                        with m.Case(STANDIN_OPS["ORPHAN"]):
                            m.d.sync += [src.eq(command[8:40]), beats.eq(command[72:88])]
                            m.next = "ORPHAN"
                        with m.Default():
                            m.d.sync += [
                                self.error.eq(ErrorCode.BAD_OPCODE),
                                self.error_index.eq(counters.instructions),
                            ]
                m.d.comb += self.idle.eq(~tasks.r_rdy & ~stuck)
            for state, after in (("READ", "WRITE"), ("ORPHAN", "IDLE")):
                with m.State(state):
                    m.d.comb += [
                        self.mem.req.valid.eq(1),
                        self.mem.req.payload.addr.eq(src),
                        self.mem.req.payload.beats.eq(beats),
                    ]
                    with m.If(self.mem.req.ready):
                        m.next = after
            with m.State("DELAY"):  # WRITE's word is offered before its request
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [
                    self.mem.req.valid.eq(1),
                    self.mem.req.payload.addr.eq(dst),
                    self.mem.req.payload.beats.eq(beats),
                    self.mem.req.payload.write.eq(1),
                ]
                with m.If(self.mem.req.ready):
                    m.next = "IDLE"

        # ---- data side: the queue's head task moves its words ----
        done = Signal(16)  # words of the head task already moved
        rdata, wdata = self.mem.rdata, self.mem.wdata
        pattern = [(head.value + i)[:8] for i in range(bus)]
        with m.If(tasks.r_rdy & head.write):
            m.d.comb += [
                wdata.valid.eq(1),
                wdata.payload.data.eq(Cat(*pattern)),
                wdata.payload.strobe.eq(head.strobe),
            ]
        with m.Elif(tasks.r_rdy):
            m.d.comb += [
                wdata.valid.eq(rdata.valid),
                wdata.payload.data.eq(rdata.payload),
                wdata.payload.strobe.eq(-1),
                rdata.ready.eq(wdata.ready),
            ]
        with m.If(wdata.valid & wdata.ready):
            m.d.sync += counters.bytes_written.eq(counters.bytes_written + bus)
            with m.If(~head.write):
                m.d.sync += counters.bytes_read.eq(counters.bytes_read + bus)
            with m.If(done + 1 == head.beats):
                m.d.comb += tasks.r_en.eq(1)
                m.d.sync += done.eq(0)
            with m.Else():
                m.d.sync += done.eq(done + 1)
        return m
