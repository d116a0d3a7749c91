# amaranth: UnusedElaboratable=no
"""Scratchpad and accumulator memory in Amaranth's simulator, against cycle-level models."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from test_gen import lint_messages

from hdl.accumulator import AccumulatorMemory
from hdl.scratchpad import Scratchpad

CYCLES = 600


def pack(values, bits: int) -> int:
    return sum((int(v) & ((1 << bits) - 1)) << (bits * i) for i, v in enumerate(values))


def unpack(value: int, count: int, bits: int, signed: bool) -> list[int]:
    items = [(value >> (bits * i)) & ((1 << bits) - 1) for i in range(count)]
    return [v - (1 << bits) if signed and v >> (bits - 1) else v for v in items]


def run_memory(dut, rows: int, width: int, bits: int, signed: bool, accumulate: bool, seed: int):
    """Random writes every cycle (p = 0.6), random reads (p = 0.5) with random back-pressure.

    The model applies a write accepted in cycle t at the end of cycle t + `delay` and answers a
    read accepted in cycle t with the state at the end of cycle t: the read ports are
    transparent, so a read of a row in the cycle it is written gets the new value. Few rows, so
    such collisions are frequent (`collisions` counts them).
    """
    rng = np.random.default_rng(seed)
    delay = 1 if accumulate else 0
    low, high = (-(2**31), 2**31) if signed else (0, 256)
    state = np.zeros((rows, width), np.int64)
    commits: dict[int, list] = {}
    expected: list[list[int]] = []
    got: list[list[int]] = []

    collisions = 0

    async def testbench(ctx):
        nonlocal collisions
        for cycle in range(CYCLES + 10):
            active = cycle < CYCLES
            write = active and rng.random() < 0.6
            row = int(rng.integers(0, rows))
            values = rng.integers(low, high, width)
            add = bool(rng.integers(0, 2)) if accumulate else False
            ctx.set(dut.write.valid, write)
            ctx.set(dut.write.payload.row, row)
            ctx.set(dut.write.payload.data.as_value(), pack(values, bits))
            if accumulate:
                ctx.set(dut.write.payload.accumulate, add)
            read = active and rng.random() < 0.5
            read_row = int(rng.integers(0, rows))
            ctx.set(dut.read_req.valid, read)
            ctx.set(dut.read_req.payload, read_row)
            ready = rng.random() < 0.7
            ctx.set(dut.read_data.ready, ready)
            _, _, req_ready, out_valid, out_data = await ctx.tick().sample(
                dut.read_req.ready, dut.read_data.valid, dut.read_data.payload.as_value()
            )
            if out_valid and ready:
                got.append(unpack(out_data, width, bits, signed))
            if write:
                commits.setdefault(cycle + delay, []).append((row, values, add))
            written = set()
            for row_, values_, add_ in commits.pop(cycle, []):
                total = state[row_] * add_ + values_
                state[row_] = (total + 2**31) % 2**32 - 2**31 if signed else total
                written.add(row_)
            if read and req_ready:
                expected.append([int(v) for v in state[read_row]])
                collisions += read_row in written
        ctx.set(dut.read_req.valid, 0)
        for _ in range(5):
            _, _, out_valid, out_data = await ctx.tick().sample(
                dut.read_data.valid, dut.read_data.payload.as_value()
            )
            ctx.set(dut.read_data.ready, 1)
            if out_valid:
                got.append(unpack(out_data, width, bits, signed))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(expected) > CYCLES // 4
    assert collisions > CYCLES // 100
    assert got[: len(expected)] == expected


@pytest.mark.parametrize(("row_bytes", "rows"), [(1, 2), (4, 8), (3, 5)])
def test_scratchpad_against_model(row_bytes, rows):
    run_memory(Scratchpad(row_bytes, rows), rows, row_bytes, 8, False, False, rows)


@pytest.mark.parametrize(("cols", "rows"), [(1, 2), (3, 4), (4, 2)])
def test_accumulator_against_model(cols, rows):
    """Few rows, so back-to-back accumulation into one row (the forwarded case) is frequent."""
    run_memory(AccumulatorMemory(cols, rows), rows, cols, 32, True, True, cols)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Scratchpad(0, 4), ValueError, r"^row_bytes must be in \[1, 4096\], not 0$"),
        (lambda: Scratchpad(4, 1), ValueError, r"^rows must be in \[2, 16777216\], not 1$"),
        (lambda: Scratchpad(4, 2.0), TypeError, r"^rows must be an int, not 2\.0$"),
        (lambda: AccumulatorMemory(257, 4), ValueError, r"^cols must be in \[1, 256\], not 257$"),
    ],
)
def test_constructors_refuse_bad_sizes(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Scratchpad(16, 100),
        lambda: AccumulatorMemory(4, 64),
        lambda: AccumulatorMemory(1, 2),
    ],
)
def test_verilog_is_lint_clean_without_waivers(tmp_path, make):
    path = tmp_path / "memory.v"
    path.write_text(verilog.convert(make(), name="memory", emit_src=False))
    assert lint_messages(path) == []
