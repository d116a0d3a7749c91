# amaranth: UnusedElaboratable=no
"""Two load DMAs and a store DMA sharing one memory port through the arbiter."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from test_dma_load_pysim import expected_writes
from test_dma_load_pysim import random_commands as load_commands

from hdl.dma_load import LoadDma
from hdl.dma_store import StoreDma
from hdl.mem_arbiter import MemoryArbiter
from sim.drivers.memory_model import MemoryModel

BUS, ROW = 4, 8
MEMORY_BYTES = 4096  # loads read [0, 4096); stores write [4096, 8192)


class Rig(wiring.Component):
    def __init__(self):
        self.loads = [LoadDma(BUS, ROW, 64, outstanding=4) for _ in range(2)]
        self.store = StoreDma(BUS, ROW)
        # Burst lengths as narrow as these masters need: a 3-word row is the longest.
        longest = max(dma.max_beats for dma in [*self.loads, self.store])
        self.arbiter = MemoryArbiter(BUS, 3, outstanding=4, max_beats=longest)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter, m.submodules.store = self.arbiter, self.store
        for i, load in enumerate(self.loads):
            m.submodules[f"load{i}"] = load
            port = getattr(self.arbiter, f"m{i}")
            wiring.connect(m, load.req, port.req)
            wiring.connect(m, port.rdata, load.rdata)
        port = self.arbiter.m2
        wiring.connect(m, self.store.req, port.req)
        wiring.connect(m, self.store.wdata, port.wdata)
        return m


def store_commands(rng, count):
    commands = []
    for i in range(count):
        width = int(rng.integers(1, ROW + 1))
        commands.append(
            {
                "dram_addr": MEMORY_BYTES + 64 * i + int(rng.integers(0, 9)),
                "dram_stride": 16,
                "rows": 3,
                "width": width,
            }
        )
    return commands


@pytest.mark.parametrize(("latency", "stall"), [(0, 0.0), (6, 0.4)])
def test_concurrent_masters_get_their_own_data(latency, stall):
    rng = np.random.default_rng(latency)
    memory = rng.integers(0, 256, 2 * MEMORY_BYTES, dtype=np.uint8)
    loads = [load_commands(rng, 6, ROW, 64) for _ in range(2)]
    stores = store_commands(rng, 4)
    rows = [rng.integers(0, 256, ROW, dtype=np.uint8) for c in stores for _ in range(c["rows"])]
    expected_memory = memory.copy()
    index = 0
    for c in stores:
        for r in range(c["rows"]):
            start = c["dram_addr"] + r * c["dram_stride"]
            expected_memory[start : start + c["width"]] = rows[index][: c["width"]]
            index += 1
    rig = Rig()
    model = MemoryModel(memory.copy(), BUS, latency, stall, latency + 1)
    got = [[], []]
    port = rig.arbiter.mem

    async def testbench(ctx):
        pending = [list(loads[0]), list(loads[1])]
        store_pending, data = list(stores), list(rows)
        dones = 0
        want = [sum(c["rows"] for c in cmds) for cmds in loads]
        cycle = 0
        while dones < len(stores) or any(len(g) < w for g, w in zip(got, want, strict=True)):
            assert cycle < 20_000, "hang"
            model.step(ctx, port, cycle)
            for load, queue in zip(rig.loads, pending, strict=True):
                ctx.set(load.cmd.valid, bool(queue))
                if queue:
                    for name, value in queue[0].items():
                        ctx.set(getattr(load.cmd.payload, name), value)
                ctx.set(load.write.ready, 1)
            store = rig.store
            ctx.set(store.cmd.valid, bool(store_pending))
            if store_pending:
                for name, value in store_pending[0].items():
                    ctx.set(getattr(store.cmd.payload, name), value)
            ctx.set(store.data.valid, bool(data))
            if data:
                ctx.set(store.data.payload.as_value(), int.from_bytes(data[0].tobytes(), "little"))
            memory_port = model.watch(port)
            signals = [*memory_port, store.cmd.ready, store.data.ready, store.done]
            for load in rig.loads:
                signals += [
                    load.cmd.ready,
                    load.write.valid,
                    load.write.payload.row,
                    load.write.payload.data.as_value(),
                ]
            _, _, *values = await ctx.tick().sample(*signals)
            model.edge(values[: len(memory_port)])
            store_cmd_ready, data_ready, done, *loads_seen = values[len(memory_port) :]
            for i in range(2):
                cmd_ready, valid, row, value = loads_seen[4 * i : 4 * i + 4]
                if pending[i] and cmd_ready:
                    pending[i].pop(0)
                if valid:
                    got[i].append((row, value.to_bytes(ROW, "little")))
            if store_pending and store_cmd_ready:
                store_pending.pop(0)
            if data and data_ready:
                data.pop(0)
            dones += done
            cycle += 1

    sim = Simulator(rig)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for i in range(2):
        assert got[i] == expected_writes(memory, loads[i], ROW)
    np.testing.assert_array_equal(model.memory, expected_memory)
    owners = {addr < MEMORY_BYTES for addr, _, _ in model.requests}
    assert owners == {True, False}


@pytest.mark.parametrize("max_beats", [0, 65536])
def test_max_beats_is_checked(max_beats):
    with pytest.raises(ValueError, match=rf"^max_beats must be in \[1, 65535\], not {max_beats}$"):
        MemoryArbiter(BUS, 2, max_beats=max_beats)
