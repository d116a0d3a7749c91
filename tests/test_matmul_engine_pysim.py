# amaranth: UnusedElaboratable=no
"""The MATMUL engine with real scratchpads and accumulator memory, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.sim import Simulator

from hdl.accumulator import AccumulatorMemory
from hdl.config import AccelConfig
from hdl.matmul_engine import QUEUE_DEPTH, MatmulEngine, _ShiftQueue
from hdl.scratchpad import Scratchpad

ACT_ROWS, WGT_ROWS, ACC_ROWS = 64, 32, 32


class Rig(wiring.Component):
    """Engine + activation and weight scratchpads + accumulator memory, wired as in the top."""

    def __init__(self, config: AccelConfig):
        self.engine = MatmulEngine(config, ACT_ROWS, WGT_ROWS, ACC_ROWS)
        self.act = Scratchpad(config.rows, ACT_ROWS)
        self.wgt = Scratchpad(config.cols, WGT_ROWS)
        self.acc = AccumulatorMemory(config.cols, ACC_ROWS)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.act = self.engine, self.act
        m.submodules.wgt, m.submodules.acc = self.wgt, self.acc
        wiring.connect(m, self.engine.act_req, self.act.read_req)
        wiring.connect(m, self.act.read_data, self.engine.act_data)
        wiring.connect(m, self.engine.wgt_req, self.wgt.read_req)
        wiring.connect(m, self.wgt.read_data, self.engine.wgt_data)
        wiring.connect(m, self.engine.acc_write, self.acc.write)
        return m


def model(config, act, wgt, commands) -> np.ndarray:
    """Accumulator contents after `commands` (docs/isa.md MATMUL semantics)."""
    r = config.rows
    acc = np.zeros((ACC_ROWS, config.cols), np.int64)
    for c in commands:
        if config.dataflow.value == "ws":
            tile = (
                act[c["act_row"] : c["act_row"] + c["rows"]] @ wgt[c["wgt_row"] : c["wgt_row"] + r]
            )
        else:
            a = act[c["act_row"] : c["act_row"] + c["rows"]].T  # R x K
            tile = a @ wgt[c["wgt_row"] : c["wgt_row"] + c["rows"]]
        rows = slice(c["acc_row"], c["acc_row"] + tile.shape[0])
        acc[rows] = tile + (acc[rows] if c["accumulate"] else 0)
    return (acc + 2**31) % 2**32 - 2**31


def random_commands(rng, config, count: int) -> list[dict]:
    r = config.rows
    ws = config.dataflow.value == "ws"
    # First the longest command the memories allow (``rows`` at its widest value).
    longest = min(ACT_ROWS, ACC_ROWS if ws else WGT_ROWS)
    commands = [{"act_row": 0, "wgt_row": 0, "rows": longest, "acc_row": 0, "accumulate": 0}]
    for _ in range(count - 1):
        rows = int(rng.integers(1, 12))
        out_rows = rows if ws else r
        commands.append(
            {
                "act_row": int(rng.integers(0, ACT_ROWS - rows + 1)),
                "wgt_row": int(rng.integers(0, WGT_ROWS - (r if ws else rows) + 1)),
                "rows": rows,
                "acc_row": int(rng.integers(0, 4)) * 2,  # overlapping rows: accumulation chains
                "accumulate": int(rng.integers(0, 2)),
            }
        )
        del out_rows
    return commands


async def fill_scratchpads(ctx, rig, act, wgt):
    """Write the activation and weight rows into the rig's scratchpads, a row per cycle."""
    for pad, rows in ((rig.act, act), (rig.wgt, wgt)):
        for index, row in enumerate(rows):
            ctx.set(pad.write.valid, 1)
            ctx.set(pad.write.payload.row, index)
            ctx.set(
                pad.write.payload.data.as_value(),
                int.from_bytes(row.astype(np.int8).tobytes(), "little"),
            )
            await ctx.tick()
        ctx.set(pad.write.valid, 0)


async def read_accumulators(ctx, rig, config):
    """Every accumulator row of the rig, as int32 [ACC_ROWS, C], a row per cycle."""
    ctx.set(rig.acc.read_data.ready, 1)
    rows = []
    for index in range(ACC_ROWS):
        ctx.set(rig.acc.read_req.valid, 1)
        ctx.set(rig.acc.read_req.payload, index)
        await ctx.tick()
        ctx.set(rig.acc.read_req.valid, 0)
        value = ctx.get(rig.acc.read_data.payload.as_value())
        rows.append([((value >> (32 * c)) & 0xFFFFFFFF) for c in range(config.cols)])
    return np.array(rows, np.uint32).view(np.int32)


def run(config, act, wgt, commands):
    rig = Rig(config)
    result = {}

    async def testbench(ctx):
        await fill_scratchpads(ctx, rig, act, wgt)
        start = 0
        done = 0
        cycle = 0
        pending = list(commands)
        while done < len(commands):
            assert cycle < 10_000, "the engine hangs"
            ctx.set(rig.engine.cmd.valid, bool(pending))
            if pending:
                for name, value in pending[0].items():
                    ctx.set(getattr(rig.engine.cmd.payload, name), value)
            _, _, ready, pulse = await ctx.tick().sample(rig.engine.cmd.ready, rig.engine.done)
            if pending and ready:
                pending.pop(0)
            done += pulse
            cycle += 1
        result["cycles"] = cycle - start
        ctx.set(rig.engine.cmd.valid, 0)
        for _ in range(3):
            await ctx.tick()
        result["acc"] = await read_accumulators(ctx, rig, config)

    sim = Simulator(rig)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (3, 2)])
def test_random_commands_match_the_model(dataflow, rows, cols):
    config = AccelConfig(rows=rows, cols=cols, dataflow=dataflow)
    rng = np.random.default_rng(rows * 10 + cols)
    act = rng.integers(-128, 128, (ACT_ROWS, rows))
    wgt = rng.integers(-128, 128, (WGT_ROWS, cols))
    act[0], wgt[0] = -128, -128
    commands = random_commands(rng, config, 10)
    result = run(config, act, wgt, commands)
    np.testing.assert_array_equal(result["acc"], model(config, act, wgt, commands))


def test_back_to_back_commands_keep_the_array_busy():
    """Weight-stationary, M >= 2R + C - 1: the next tile's weights load during the current tile
    and the readers start the next command without a gap, so each further command of M rows
    adds exactly M cycles."""
    config = AccelConfig(rows=3, cols=2, dataflow="ws")
    rng = np.random.default_rng(5)
    act = rng.integers(-128, 128, (ACT_ROWS, 3))
    wgt = rng.integers(-128, 128, (WGT_ROWS, 2))
    cycles = {}
    for count in (1, 5):
        commands = [
            {
                "act_row": 10 * i,
                "wgt_row": 3 * i,
                "rows": 10,
                "acc_row": 0,
                "accumulate": int(i > 0),
            }
            for i in range(count)
        ]
        result = run(config, act, wgt, commands)
        np.testing.assert_array_equal(result["acc"], model(config, act, wgt, commands))
        cycles[count] = result["cycles"]
    assert cycles[5] - cycles[1] == 4 * 10


class _QueuePair(wiring.Component):
    """The engine's shift-register queue and Amaranth's SyncFIFOBuffered, fed the same."""

    def __init__(self, width, depth):
        self.new = _ShiftQueue(width, depth)
        self.ref = fifo.SyncFIFOBuffered(width=width, depth=depth)
        self.w_data, self.w_en, self.r_en = Signal(width), Signal(), Signal()
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.new, m.submodules.ref = self.new, self.ref
        for queue in (self.new, self.ref):
            m.d.comb += [
                queue.w_data.eq(self.w_data),
                queue.w_en.eq(self.w_en),
                queue.r_en.eq(self.r_en),
            ]
        return m


@pytest.mark.parametrize("depth", [3, QUEUE_DEPTH, 5])
def test_shift_queue_is_cycle_exact_with_sync_fifo_buffered(depth):
    """Random writes and reads (also while full or empty): the same ``w_rdy`` and ``r_rdy`` in
    every cycle and the same head entry whenever it is readable."""
    rng = np.random.default_rng(depth)
    dut = _QueuePair(8, depth)

    async def testbench(ctx):
        for cycle in range(3000):
            phase = (cycle // 200) % 3  # writes mostly, balanced, reads mostly
            ctx.set(dut.w_data, int(rng.integers(0, 256)))
            ctx.set(dut.w_en, bool(rng.random() < (0.8, 0.5, 0.2)[phase]))
            ctx.set(dut.r_en, bool(rng.random() < (0.2, 0.5, 0.8)[phase]))
            new, ref = dut.new, dut.ref
            assert ctx.get(new.w_rdy) == ctx.get(ref.w_rdy), f"w_rdy, cycle {cycle}"
            assert ctx.get(new.r_rdy) == ctx.get(ref.r_rdy), f"r_rdy, cycle {cycle}"
            if ctx.get(ref.r_rdy):
                assert ctx.get(new.r_data) == ctx.get(ref.r_data), f"r_data, cycle {cycle}"
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


class StallRig(Rig):
    """`Rig` with the activation requests and data, the weight data and the accumulator writes
    each passing through a gate the testbench opens and closes (``gates``)."""

    def __init__(self, config: AccelConfig):
        super().__init__(config)
        self.gates = Signal(4)

    def elaborate(self, platform):
        m = Module()
        engine = self.engine
        m.submodules.engine, m.submodules.act = engine, self.act
        m.submodules.wgt, m.submodules.acc = self.wgt, self.acc
        pairs = [
            (engine.act_req, self.act.read_req),
            (self.act.read_data, engine.act_data),
            (self.wgt.read_data, engine.wgt_data),
            (engine.acc_write, self.acc.write),
        ]
        for gate, (source, sink) in zip(self.gates, pairs, strict=True):
            m.d.comb += [
                sink.valid.eq(source.valid & gate),
                sink.payload.eq(source.payload),
                source.ready.eq(sink.ready & gate),
            ]
        wiring.connect(m, engine.wgt_req, self.wgt.read_req)
        return m


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("stall", [0.2, 0.6])
def test_stalls_keep_results_and_the_command_limit(dataflow, stall):
    """Random back-pressure everywhere and gaps between commands (many of one or two rows):
    the results match the model, and ``cmd.ready`` is high exactly while fewer than
    `QUEUE_DEPTH` commands are taken and not done."""
    config = AccelConfig(rows=2, cols=3, dataflow=dataflow)
    rng = np.random.default_rng(int(stall * 10) + (dataflow == "os"))
    act = rng.integers(-128, 128, (ACT_ROWS, config.rows))
    wgt = rng.integers(-128, 128, (WGT_ROWS, config.cols))
    commands = random_commands(rng, config, 30)
    for command in commands[1::2]:
        command["rows"] = min(command["rows"], int(rng.integers(1, 3)))
    rig = StallRig(config)
    engine = rig.engine

    async def testbench(ctx):
        await fill_scratchpads(ctx, rig, act, wgt)
        pending, taken, done = list(commands), 0, 0
        for cycle in range(20_000):
            if done == len(commands):
                break
            ctx.set(rig.gates, int(sum(int(rng.random() >= stall) << g for g in range(4))))
            offer = bool(pending) and rng.random() < 0.6
            ctx.set(engine.cmd.valid, offer)
            if pending:
                for name, value in pending[0].items():
                    ctx.set(getattr(engine.cmd.payload, name), value)
            ready = ctx.get(engine.cmd.ready)
            assert ready == (taken - done < QUEUE_DEPTH), f"cycle {cycle}"
            pulse = ctx.get(engine.done)
            await ctx.tick()
            if offer and ready:
                pending.pop(0)
                taken += 1
            done += pulse
        assert done == len(commands), "the engine hangs"
        ctx.set(engine.cmd.valid, 0)
        ctx.set(rig.gates, 0b1111)
        for _ in range(3):
            await ctx.tick()
        words = await read_accumulators(ctx, rig, config)
        np.testing.assert_array_equal(words, model(config, act, wgt, commands))

    sim = Simulator(rig)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
