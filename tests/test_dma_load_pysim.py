# amaranth: UnusedElaboratable=no
"""The load DMA in Amaranth's simulator: strided rows at any alignment, exact bytes, zero fill."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.dma_load import LoadDma
from sim.drivers.memory_model import MemoryModel

MEMORY_BYTES = 4096


def random_commands(rng, count: int, row_bytes: int, spad_rows: int) -> list[dict]:
    commands = []
    for _ in range(count):
        rows = int(rng.integers(1, 6))
        width = int(rng.integers(1, row_bytes + 1))
        stride = int(rng.integers(0, 3 * row_bytes))
        top = MEMORY_BYTES - (rows - 1) * stride - width
        commands.append(
            {
                "dram_addr": int(rng.integers(0, top)),
                "dram_stride": stride,
                "rows": rows,
                "spad_row": int(rng.integers(0, spad_rows - rows + 1)),
                "width": width,
            }
        )
    return commands


def expected_writes(memory: np.ndarray, commands: list[dict], row_bytes: int):
    writes = []
    for c in commands:
        for r in range(c["rows"]):
            start = c["dram_addr"] + r * c["dram_stride"]
            row = np.zeros(row_bytes, np.uint8)
            row[: c["width"]] = memory[start : start + c["width"]]
            writes.append((c["spad_row"] + r, bytes(row)))
    return writes


def run_dma(
    bus, row_bytes, commands, *, latency=0, stall=0.0, idle=0.0, seed=0, outstanding=8, **widths
):
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, MEMORY_BYTES, dtype=np.uint8)
    dut = LoadDma(bus, row_bytes, 64, outstanding=outstanding, **widths)
    model = MemoryModel(memory.copy(), bus, latency, stall, seed + 1)
    writes, dones, finish = [], [], {}

    async def testbench(ctx):
        pending = list(commands)
        cycle = 0
        expected_rows = sum(c["rows"] for c in commands)
        while len(writes) < expected_rows:
            assert cycle < 20_000, "the DMA hangs"
            model.step(ctx, dut, cycle)
            offer = bool(pending) and not (idle and rng.random() < idle)
            ctx.set(dut.cmd.valid, offer)
            if offer:
                for name, value in pending[0].items():
                    ctx.set(getattr(dut.cmd.payload, name), value)
            write_ready = not (stall and rng.random() < stall)
            ctx.set(dut.write.ready, write_ready)
            memory_port = model.watch(dut)
            _, _, *values = await ctx.tick().sample(
                *memory_port,
                dut.cmd.ready,
                dut.write.valid,
                dut.write.payload.row,
                dut.write.payload.data.as_value(),
                dut.done,
            )
            model.edge(values[: len(memory_port)])
            cmd_ready, write_valid, row, data, done = values[len(memory_port) :]
            if offer and cmd_ready:
                pending.pop(0)
            if write_valid and write_ready:
                writes.append((row, data.to_bytes(row_bytes, "little")))
                finish["cycle"] = cycle
            dones.append(done)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert writes == expected_writes(memory, commands, row_bytes)
    assert sum(dones) == len(commands)
    return finish["cycle"] + 1, model


@pytest.mark.parametrize(("bus", "row_bytes"), [(1, 4), (4, 4), (4, 7), (16, 8), (8, 32)])
def test_random_commands_exact_bytes(bus, row_bytes):
    rng = np.random.default_rng(bus * 100 + row_bytes)
    commands = random_commands(rng, 12, row_bytes, 64)
    run_dma(bus, row_bytes, commands, seed=bus)


@pytest.mark.parametrize("bus", [1, 4])
def test_narrow_addresses_and_row_counts_reach_their_limits(bus):
    """A DMA as wide as the 4 KiB memory (12 address bits) and 8-row commands: the largest
    stride, the last byte and the longest command still load exactly."""
    row_bytes = 4
    commands = [
        {"dram_addr": 0, "dram_stride": MEMORY_BYTES - 4, "rows": 2, "spad_row": 0, "width": 4},
        {"dram_addr": MEMORY_BYTES - 3, "dram_stride": 0, "rows": 1, "spad_row": 63, "width": 3},
        {"dram_addr": 2047, "dram_stride": 255, "rows": 8, "spad_row": 56, "width": 4},
    ]
    run_dma(bus, row_bytes, commands, seed=5, address_bits=12, max_rows=8)


@pytest.mark.parametrize(
    ("latency", "stall", "idle"), [(5, 0.0, 0.0), (0, 0.5, 0.3), (12, 0.4, 0.5)]
)
def test_latency_and_back_pressure_lose_nothing(latency, stall, idle):
    rng = np.random.default_rng(latency)
    commands = random_commands(rng, 10, 8, 64)
    run_dma(4, 8, commands, latency=latency, stall=stall, idle=idle, seed=latency)


def test_requests_cover_each_row_with_aligned_bursts():
    # A 4-byte row at address 6 on a 4-byte bus spans words 1 and 2.
    command = {"dram_addr": 6, "dram_stride": 10, "rows": 2, "spad_row": 3, "width": 4}
    _, model = run_dma(4, 4, [command])
    assert model.requests == [(4, 2, 0), (16, 1, 0)]


def test_outstanding_requests_hide_latency():
    """64 one-word rows with latency 8 and 16 rows in flight: one row per cycle after the fill."""
    command = {"dram_addr": 0, "dram_stride": 4, "rows": 64, "spad_row": 0, "width": 4}
    cycles, _ = run_dma(4, 4, [command], latency=8, outstanding=16)
    assert cycles == 64 + 8 + 3  # command register, request, latency, row register


@pytest.mark.parametrize(("bus", "stall"), [(4, 0.0), (4, 0.4), (1, 0.3), (8, 0.2)])
def test_narrow_row_after_a_wide_one_is_zero_filled(bus, stall):
    """Rows are assembled in the output register in place, word by word: a row narrower than
    the one before must still come out with zeros past its width, at every alignment, also
    when a row waits on back-pressure while the next one's words are due."""
    row_bytes = 16
    commands = []
    for i, width in enumerate([16, 1, 13, 3, 16, 5, 16, 2]):
        address = 8 * i + i % 4  # every offset within a word
        commands.append(
            {
                "dram_addr": address,
                "dram_stride": MEMORY_BYTES - width - address,  # 2nd row ends at the last byte
                "rows": 2,
                "spad_row": 2 * i,
                "width": width,
            }
        )
    run_dma(bus, row_bytes, commands, latency=3, stall=stall, seed=11)
