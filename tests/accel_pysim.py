"""Run a program on `hdl.top.Accelerator` in Amaranth's simulator (small configs; test helper)."""

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator
from memory_model import MemoryModel

from hdl.isa import ErrorCode
from hdl.top import Accelerator
from hdl.top_ports import COUNTERS


@dataclass
class PysimRun:
    """What a run left: memory, cycles to idle, error status and counters."""

    memory: np.ndarray
    cycles: int
    error: ErrorCode
    error_index: int
    counters: dict


def run_accelerator(config, memory, words, *, latency=0, stall=0.0, seed=0, max_cycles=20_000):
    """Feed `words` (uint32 [n, 4]) on ``cmd``, serve ``mem`` from `memory` (a copy is
    modified), and run until every word is taken and ``idle`` is high, or an error stops it."""
    dut = Accelerator(config)
    model = MemoryModel(np.array(memory, np.uint8), config.bus_bytes, latency, stall, seed)
    values = [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in words]
    result = {}
    port = dut.mem

    async def testbench(ctx):
        sent = 0
        cycle = 0
        while True:
            assert cycle < max_cycles, f"no idle after {cycle} cycles, {sent} words taken"
            model.step(ctx, port, cycle)
            offer = sent < len(values)
            ctx.set(dut.cmd.valid, offer)
            if offer:
                ctx.set(dut.cmd.payload, values[sent])
            memory_port = model.watch(port)
            _, _, *sampled = await ctx.tick().sample(
                *memory_port, dut.cmd.ready, dut.idle, dut.error
            )
            model.edge(sampled[: len(memory_port)])
            cmd_ready, idle, error = sampled[len(memory_port) :]
            if offer and cmd_ready:
                sent += 1
            cycle += 1
            stopped = error != ErrorCode.NONE
            if (
                idle
                and not offer
                and not (cmd_ready and offer)
                and (sent == len(values) or stopped)
            ):
                break
            if idle and stopped:
                break
        result["cycles"] = cycle
        result["error"] = ErrorCode(ctx.get(dut.error))
        result["error_index"] = ctx.get(dut.error_index)
        result["counters"] = {name: ctx.get(getattr(dut.counters, name)) for name in COUNTERS}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return PysimRun(
        model.memory, result["cycles"], result["error"], result["error_index"], result["counters"]
    )
