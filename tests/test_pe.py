"""Processing elements in Amaranth's simulator, against a cycle-level Python model."""

import numpy as np
from amaranth.sim import Simulator

from hdl.pe import OutputStationaryPE, WeightStationaryPE


def wrap32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_weight_stationary_pe_against_model():
    rng = np.random.default_rng(0)
    dut = WeightStationaryPE()
    cycles = 300
    a = rng.integers(-128, 128, cycles)
    a[:4] = [-128, 127, -128, 127]
    bank = rng.integers(0, 2, cycles)
    psum = rng.integers(-(2**31), 2**31, cycles)
    write = rng.integers(0, 4, cycles)  # bit b: write bank b this cycle
    data = rng.integers(-128, 128, cycles)

    async def testbench(ctx):
        weights = [0, 0]
        a_out = bank_out = 0
        for t in range(cycles):
            ctx.set(dut.a_in, int(a[t]))
            ctx.set(dut.bank_in, int(bank[t]))
            ctx.set(dut.psum_in, int(psum[t]))
            ctx.set(dut.weight_we, int(write[t]))
            ctx.set(dut.weight_data, int(data[t]))
            await ctx.tick()
            # Model of the edge: the registered activation times its bank's weight before this
            # edge's write (the weight of the cycle after the activation's a_in).
            psum_out = wrap32(int(psum[t]) + a_out * weights[bank_out])
            a_out, bank_out = int(a[t]), int(bank[t])
            for b in range(2):
                if write[t] >> b & 1:
                    weights[b] = int(data[t])
            assert ctx.get(dut.a_out) == a[t]
            assert ctx.get(dut.bank_out) == bank[t]
            assert ctx.get(dut.psum_out) == psum_out, f"cycle {t}"

    run(dut, testbench)


def test_output_stationary_pe_accumulates_and_restarts_per_tile():
    rng = np.random.default_rng(1)
    dut = OutputStationaryPE()
    cycles = 400
    a = rng.integers(-128, 128, cycles)
    b = rng.integers(-128, 128, cycles)
    a[:8], b[:8] = -128, -128  # largest products first
    last = rng.random(cycles) < 0.15

    async def testbench(ctx):
        product, product_last, accumulator, result = 0, False, 0, 0
        for t in range(cycles):
            ctx.set(dut.a_in, int(a[t]))
            ctx.set(dut.b_in, int(b[t]))
            ctx.set(dut.last_in, bool(last[t]))
            await ctx.tick()
            total = wrap32(accumulator + product)
            if product_last:
                result, accumulator = total, 0
            else:
                accumulator = total
            product, product_last = int(a[t]) * int(b[t]), bool(last[t])
            assert ctx.get(dut.a_out) == a[t] and ctx.get(dut.b_out) == b[t]
            assert ctx.get(dut.last_out) == last[t]
            assert ctx.get(dut.result) == result, f"cycle {t}"

    run(dut, testbench)
