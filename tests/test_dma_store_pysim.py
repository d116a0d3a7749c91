# amaranth: UnusedElaboratable=no
"""The store DMA in Amaranth's simulator: rows at any alignment, nothing around them touched."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.dma_store import StoreDma
from sim.drivers.memory_model import MemoryModel

MEMORY_BYTES = 2048


def random_commands(rng, count: int, row_bytes: int) -> list[dict]:
    commands = []
    for _ in range(count):
        rows = int(rng.integers(1, 5))
        width = int(rng.integers(1, row_bytes + 1))
        stride = int(rng.integers(width, 3 * row_bytes + 1))  # rows do not overlap
        top = MEMORY_BYTES - (rows - 1) * stride - width
        commands.append(
            {
                "dram_addr": int(rng.integers(0, top)),
                "dram_stride": stride,
                "rows": rows,
                "width": width,
            }
        )
    return commands


def run_dma(bus, row_bytes, commands, *, latency=0, stall=0.0, idle=0.0, seed=0, **widths):
    rng = np.random.default_rng(seed)
    before = rng.integers(0, 256, MEMORY_BYTES, dtype=np.uint8)
    rows = [
        rng.integers(0, 256, row_bytes, dtype=np.uint8) for c in commands for _ in range(c["rows"])
    ]
    expected = before.copy()
    index = 0
    for c in commands:
        for r in range(c["rows"]):
            start = c["dram_addr"] + r * c["dram_stride"]
            expected[start : start + c["width"]] = rows[index][: c["width"]]
            index += 1
    dut = StoreDma(bus, row_bytes, **widths)
    model = MemoryModel(before.copy(), bus, latency, stall, seed + 1)
    finish = {"dones": 0}

    async def testbench(ctx):
        pending, data = list(commands), list(rows)
        cycle = 0
        while finish["dones"] < len(commands):
            assert cycle < 20_000, "the DMA hangs"
            model.step(ctx, dut, cycle)
            offer = bool(pending) and not (idle and rng.random() < idle)
            ctx.set(dut.cmd.valid, offer)
            if offer:
                for name, value in pending[0].items():
                    ctx.set(getattr(dut.cmd.payload, name), value)
            give = bool(data) and not (idle and rng.random() < idle)
            ctx.set(dut.data.valid, give)
            if give:
                ctx.set(dut.data.payload.as_value(), int.from_bytes(data[0].tobytes(), "little"))
            memory_port = model.watch(dut)
            _, _, *values = await ctx.tick().sample(
                *memory_port, dut.cmd.ready, dut.data.ready, dut.done
            )
            model.edge(values[: len(memory_port)])
            cmd_ready, data_ready, done = values[len(memory_port) :]
            if offer and cmd_ready:
                pending.pop(0)
            if give and data_ready:
                data.pop(0)
            finish["dones"] += done
            finish["cycle"] = cycle
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    np.testing.assert_array_equal(model.memory, expected)
    assert not model.writes  # every burst got all its words
    return finish["cycle"] + 1, model


@pytest.mark.parametrize(("bus", "row_bytes"), [(1, 4), (4, 4), (4, 7), (16, 8), (8, 32)])
def test_random_rows_exact_bytes_and_nothing_else(bus, row_bytes):
    rng = np.random.default_rng(bus * 10 + row_bytes)
    run_dma(bus, row_bytes, random_commands(rng, 10, row_bytes), seed=bus)


@pytest.mark.parametrize("bus", [1, 4])
def test_narrow_addresses_and_row_counts_reach_their_limits(bus):
    """A DMA as wide as the 2 KiB memory (11 address bits) and 8-row commands: the largest
    stride, the last byte and the longest command still store exactly."""
    commands = [
        {"dram_addr": 0, "dram_stride": MEMORY_BYTES - 4, "rows": 2, "width": 4},
        {"dram_addr": MEMORY_BYTES - 3, "dram_stride": 0, "rows": 1, "width": 3},
        {"dram_addr": 1023, "dram_stride": 127, "rows": 8, "width": 4},
    ]
    run_dma(bus, 4, commands, seed=5, address_bits=11, max_rows=8)


@pytest.mark.parametrize(
    ("latency", "stall", "idle"), [(3, 0.5, 0.0), (0, 0.3, 0.5), (9, 0.6, 0.6)]
)
def test_back_pressure_and_idle_inputs_lose_nothing(latency, stall, idle):
    rng = np.random.default_rng(latency + 50)
    run_dma(4, 8, random_commands(rng, 8, 8), latency=latency, stall=stall, idle=idle, seed=latency)


def test_bursts_and_strobes_cover_each_row():
    # 4 bytes at address 6 on a 4-byte bus: words 1 and 2, bytes 2-3 and 0-1 enabled.
    command = {"dram_addr": 6, "dram_stride": 10, "rows": 2, "width": 4}
    _, model = run_dma(4, 4, [command])
    assert model.requests == [(4, 2, 1), (16, 1, 1)]


def test_one_word_rows_stream_one_per_cycle():
    command = {"dram_addr": 0, "dram_stride": 4, "rows": 64, "width": 4}
    cycles, _ = run_dma(4, 4, [command])
    assert cycles == 64 + 2  # command register, row register, then one row per cycle
