"""Run an `ArrayProgram` on the systolic array in Amaranth's own simulator.

One async producer per input stream and one consumer on ``out``, all starting at cycle 0 (the
first clock edge after reset). Producers may insert idle cycles and the consumer may withhold
``ready``; both are drawn from one seeded generator per stream, so a run is reproducible. The
cycle count is the index of the clock edge at which the last output beat transfers, plus one.
Slow (thousands of cycles per second): meant for small arrays and unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from hdl.systolic import SystolicArray
from sim.array_program import ArrayProgram, out_words


@dataclass(frozen=True)
class FlowControl:
    """Random flow control: P(idle input cycle) and P(output not ready), drawn per cycle."""

    idle: float = 0.0
    stall: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("idle", "stall"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} probability must be in [0, 1), not {value!r}")


def _words_to_int(row: np.ndarray) -> int:
    return int.from_bytes(np.asarray(row, "<u4").tobytes(), "little")


def _int_to_words(value: int, words: int) -> np.ndarray:
    return np.frombuffer(value.to_bytes(4 * words, "little"), "<u4")


def run_pysim(
    program: ArrayProgram, flow: FlowControl = FlowControl(), vcd_path: str | None = None
) -> tuple[np.ndarray, int]:
    """Simulate `program`; returns (``out`` beats as uint32 words, cycles)."""
    dut = SystolicArray(program.config)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    collected: list[int] = []
    finish = {"cycle": 0}

    def producer(name: str, beats: np.ndarray, stream_seed: int):
        port = getattr(dut, name)
        rng = np.random.default_rng(stream_seed)
        values = [_words_to_int(row) for row in beats]

        async def process(ctx):
            for value in values:
                while flow.idle and rng.random() < flow.idle:
                    await ctx.tick()
                ctx.set(port.payload.as_value(), value)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)

        return process

    # A hang (no output for far longer than any tile can take) is an error, not an endless loop.
    slowdown = 1.0 / ((1.0 - flow.idle) * (1.0 - flow.stall))
    config = program.config
    quiet_limit = int(1000 + 4 * slowdown * (program.m + program.k + 2 * config.rows + config.cols))

    async def consumer(ctx):
        rng = np.random.default_rng(flow.seed)
        cycle = 0
        while len(collected) < program.output_beats:
            if cycle - finish["cycle"] > quiet_limit:
                raise RuntimeError(
                    f"no output for {quiet_limit} cycles at cycle {cycle}: the array hangs after "
                    f"{len(collected)} of {program.output_beats} output beats"
                )
            ready = not (flow.stall and rng.random() < flow.stall)
            ctx.set(dut.out.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(
                dut.out.valid, dut.out.payload.as_value()
            )
            if valid and ready:
                collected.append(payload)
                finish["cycle"] = cycle
            cycle += 1

    for index, (name, beats) in enumerate(program.inputs.items()):
        sim.add_testbench(producer(name, beats, flow.seed + 1 + index), background=True)
    sim.add_testbench(consumer)
    if vcd_path is None:
        sim.run()
    else:
        with sim.write_vcd(vcd_path):
            sim.run()
    words = out_words(program.config.cols)
    output = np.array([_int_to_words(v, words) for v in collected], np.uint32).reshape(-1, words)
    return output, finish["cycle"] + 1
