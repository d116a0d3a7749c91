"""Run a `StreamProgram` on its hardware unit in Amaranth's own simulator.

One async producer per input stream and one consumer on ``out``, all starting at cycle 0 (the
first clock edge after reset). Producers may insert idle cycles and the consumer may withhold
``ready``; both are drawn from one seeded generator per stream (consumer: ``seed``, input stream
i in `hdl.units` order: ``seed + 1 + i``), so a run is reproducible. The cycle count is the
index of the clock edge at which the last output beat transfers, plus one. A run in which no
stream transfers for far longer than any unit's latency raises instead of looping forever.
Slow (thousands of cycles per second): meant for small configurations and unit tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from hdl.units import get_unit, payload_words
from sim.stream_program import StreamProgram


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


def quiet_limit(flow: FlowControl, latency: int) -> int:
    """Cycles without any transfer after which a run counts as hung.

    A working unit is never quiet for longer than its pipeline `latency` plus runs of idle
    inputs and withheld ``ready``; the limit leaves a wide margin for both.
    """
    return 4 * (latency + 16) + 4 * (_streak(flow.idle) + _streak(flow.stall))


def _streak(probability: float) -> int:
    """A run of `probability` events longer than this has odds below e**-40."""
    return 0 if probability <= 0.0 else math.ceil(40.0 / -math.log(probability))


def unit_latency(config) -> int:
    """An upper bound of every unit's pipeline latency for `config` (the array's is longest)."""
    return 2 * config.rows + 2 * config.cols


def run_pysim(
    program: StreamProgram, flow: FlowControl = FlowControl(), vcd_path: str | None = None
) -> tuple[np.ndarray, int]:
    """Simulate `program` on its unit; returns (``out`` beats as uint32 words, cycles)."""
    unit = get_unit(program.UNIT)
    dut = unit.component(program.config)
    names = unit.streams(program.config)
    if set(program.inputs) != set(names):
        raise ValueError(f"program streams {sorted(program.inputs)} differ from {sorted(names)}")
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    collected: list[int] = []
    finish = {"cycle": 0}

    def producer(name: str, beats: np.ndarray, stream_seed: int, after: str | None):
        port = getattr(dut, name)
        rng = np.random.default_rng(stream_seed)
        values = [_words_to_int(row) for row in beats]

        async def process(ctx):
            if after is not None:  # an ordered program: wait for the previous stream's last beat
                previous, remaining = getattr(dut, after), program.inputs[after].shape[0]
                while remaining:
                    _, _, valid, ready = await ctx.tick().sample(previous.valid, previous.ready)
                    remaining -= bool(valid and ready)
            for value in values:
                while flow.idle and rng.random() < flow.idle:
                    await ctx.tick()
                ctx.set(port.payload.as_value(), value)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)

        return process

    limit = quiet_limit(flow, unit_latency(program.config))
    handshakes = [
        signal for name in names for signal in (getattr(dut, name).valid, getattr(dut, name).ready)
    ]

    async def consumer(ctx):
        rng = np.random.default_rng(flow.seed)
        cycle = quiet_since = 0
        while len(collected) < program.output_beats:
            if cycle - quiet_since > limit:
                raise RuntimeError(
                    f"no transfer on any stream for {limit} cycles at cycle {cycle}: the "
                    f"{unit.name} unit hangs after {len(collected)} of {program.output_beats} "
                    "output beats"
                )
            ready = not (flow.stall and rng.random() < flow.stall)
            ctx.set(dut.out.ready, ready)
            _, _, valid, payload, *flags = await ctx.tick().sample(
                dut.out.valid, dut.out.payload.as_value(), *handshakes
            )
            if valid and ready:
                collected.append(payload)
                finish["cycle"] = quiet_since = cycle
            elif any(flags[i] and flags[i + 1] for i in range(0, len(flags), 2)):
                quiet_since = cycle
            cycle += 1

    for index, name in enumerate(names):
        after = names[index - 1] if program.ORDERED and index > 0 else None
        process = producer(name, program.inputs[name], flow.seed + 1 + index, after)
        sim.add_testbench(process, background=True)
    sim.add_testbench(consumer)
    if vcd_path is None:
        sim.run()
    else:
        with sim.write_vcd(vcd_path):
            sim.run()
    words = payload_words(Shape.cast(dut.out.payload.shape()).width)
    output = np.array([_int_to_words(v, words) for v in collected], np.uint32).reshape(-1, words)
    return output, finish["cycle"] + 1
