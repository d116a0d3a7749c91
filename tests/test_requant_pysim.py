# amaranth: UnusedElaboratable=no
"""Requantizer in Amaranth's simulator: bit-exact with the golden, exact cycles, flow control."""

from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hdl.config import AccelConfig
from hdl.requant import (
    LATENCY,
    Requantizer,
    _shift_window,
    requant_input_layout,
    requant_output_layout,
    requant_param_layout,
)
from sim.golden.requant import (
    MANTISSA_BITS,
    RequantParams,
    decompose_multiplier,
    requantize_float,
    requantize_int,
    round_to_significant_bits,
    shift_right_half_even,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class Lane:
    """One lane's parameters as a ``params`` beat carries them (the reset state by default)."""

    bias: int = 0
    mantissa: int = 0
    shift: int = 0
    zero_point: int = 0
    relu: bool = False

    @classmethod
    def from_multiplier(cls, multiplier: float, bias=0, zero_point=0, relu=False) -> "Lane":
        m24, shift = decompose_multiplier(np.array([multiplier], np.float32))
        return cls(int(bias), int(m24[0]), int(shift[0]), int(zero_point), bool(relu))

    def beat(self, lane: int) -> dict:
        return {
            "lane": lane,
            "bias": self.bias,
            "mantissa": self.mantissa,
            "shift": self.shift,
            "zero_point": self.zero_point,
            "relu": self.relu,
        }


def reference(sums: np.ndarray, lane: Lane) -> np.ndarray:
    """The golden's integer steps on exact (possibly 33-bit) sums, int64 in, int64 out."""
    magnitude = round_to_significant_bits(np.abs(sums), MANTISSA_BITS)
    product = round_to_significant_bits(magnitude * lane.mantissa, MANTISSA_BITS)
    rounded = shift_right_half_even(product, np.full_like(product, lane.shift))
    low = lane.zero_point if lane.relu else -128
    return np.clip(np.where(sums < 0, -rounded, rounded) + lane.zero_point, low, 127)


def golden(sums: np.ndarray, lane: Lane) -> np.ndarray:
    """`requantize_float` of in-range sums [V] for a configured lane (equal to `requantize_int`)."""
    multiplier = np.float32(np.ldexp(float(lane.mantissa), -lane.shift))
    params = RequantParams(np.array([multiplier], np.float32), lane.zero_point, lane.relu)
    column = sums.astype(np.int32).reshape(-1, 1)
    as_float, as_int = requantize_float(column, params), requantize_int(column, params)
    np.testing.assert_array_equal(as_int, as_float)
    return as_float.ravel().astype(np.int64)


@dataclass
class Program:
    """The producer's beats in order: ``("params", lane, Lane)`` or ``("acc", values, last)``."""

    cols: int
    items: list = field(default_factory=list)

    def configure(self, lanes: list[Lane]) -> None:
        self.items += [("params", c, lane) for c, lane in enumerate(lanes)]

    def send(self, acc: np.ndarray, last: np.ndarray | None = None) -> None:
        last = np.zeros(len(acc), bool) if last is None else last
        self.items += [
            ("acc", [int(v) for v in row], bool(f)) for row, f in zip(acc, last, strict=True)
        ]

    def expected(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(out data [V, C], last [V], overflow) from the items, parameters applied in order.

        Every sum goes through `reference`; in-range sums of configured lanes also through the
        golden itself, which must agree.
        """
        state = [Lane() for _ in range(self.cols)]
        sums, lasts, lane_of = [], [], []
        for kind, first, second in self.items:
            if kind == "params":
                if first < self.cols:
                    state[first] = second
                continue
            sums.append([a + state[c].bias for c, a in enumerate(first)])
            lasts.append(second)
            lane_of.append(list(state))
        sums = np.array(sums, np.int64).reshape(-1, self.cols)
        data = np.zeros(sums.shape, np.int64)
        for v, lanes in enumerate(lane_of):
            for c, lane in enumerate(lanes):
                data[v, c] = reference(sums[v, c : c + 1], lane)[0]
                if INT32_MIN <= sums[v, c] <= INT32_MAX and lane.mantissa:
                    assert golden(sums[v, c : c + 1], lane)[0] == data[v, c], (v, c)
        in_range = (sums >= INT32_MIN) & (sums <= INT32_MAX)
        return data, np.array(lasts, bool), bool((~in_range).any())


@dataclass
class Trace:
    """A simulation's observations; cycle t is the clock period ending at edge t (from 0)."""

    data: np.ndarray  # out beats [V, C]
    last: np.ndarray  # out beats' last flags [V]
    accepted: list[int]  # cycle in which each acc beat transferred
    presented: list[int]  # cycle in which each out beat transferred
    overflow: list[int]  # the sticky flags in every cycle
    bad_param: list[int]


def simulate(program: Program, idle=0.0, stall=0.0, seed=0, lanes=None) -> Trace:
    """Run `program` through a `Requantizer` of `lanes` lanes (default: one per column) with
    random idle input and output stall cycles."""
    cols = program.cols
    config = AccelConfig(rows=1, cols=cols, requant_lanes=lanes or cols)
    dut = Requantizer(config)
    beats = sum(kind == "acc" for kind, _, _ in program.items)
    trace = Trace(np.zeros((0, cols), np.int64), np.zeros(0, bool), [], [], [], [])
    outputs = []
    cycles = 4 * config.requant_chunks * (len(program.items) + LATENCY)
    limit = 50 + cycles / ((1 - idle) * (1 - stall))

    async def producer(ctx):
        rng = np.random.default_rng(seed)
        cycle = 0
        for kind, first, second in program.items:
            while idle and rng.random() < idle:
                await ctx.tick()
                cycle += 1
            if kind == "params":
                port, payload = dut.params, second.beat(first)
            else:
                port, payload = dut.acc, {"data": first, "last": second}
            ctx.set(port.payload, payload)
            ctx.set(port.valid, 1)
            ready = False
            while not ready:
                _, _, ready = await ctx.tick().sample(port.ready)
                cycle += 1
            ctx.set(port.valid, 0)
            if kind == "acc":
                trace.accepted.append(cycle - 1)

    async def consumer(ctx):
        rng = np.random.default_rng(seed + 1)
        cycle = 0
        while len(outputs) < beats:
            assert cycle < limit, f"only {len(outputs)} of {beats} outputs after {cycle} cycles"
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.out.ready, ready)
            _, _, valid, payload, overflow, bad_param = await ctx.tick().sample(
                dut.out.valid, dut.out.payload, dut.overflow, dut.bad_param
            )
            trace.overflow.append(overflow)
            trace.bad_param.append(bad_param)
            if valid and ready:
                outputs.append(([int(x) for x in payload.data], bool(payload.last)))
                trace.presented.append(cycle)
            cycle += 1
        ctx.set(dut.out.ready, 1)  # nothing more may come out
        for _ in range(LATENCY + 2):
            _, _, valid = await ctx.tick().sample(dut.out.valid)
            assert not valid, "an extra output beat"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    trace.data = np.array([data for data, _ in outputs], np.int64).reshape(-1, cols)
    trace.last = np.array([last for _, last in outputs], bool)
    return trace


def check(program: Program, trace: Trace) -> None:
    """Every output exact, in order, with its ``last`` flag; both sticky flags as expected."""
    data, last, overflow = program.expected()
    np.testing.assert_array_equal(trace.data, data)
    np.testing.assert_array_equal(trace.last, last)
    assert trace.overflow[-1] == overflow
    bad_lane = any(kind == "params" and lane >= program.cols for kind, lane, _ in program.items)
    assert trace.bad_param[-1] == bad_lane


def sums_near(rng, count: int, octave: int) -> np.ndarray:
    """Target sums [count]: a mix of +-2**octave-scaled values, all of int32 and the edges."""
    edges = [0, 1, -1, INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1]
    edges += [sign * (2**p + d) for sign in (1, -1) for p in (24, 25, 30) for d in (-1, 0, 1, 2)]
    kind = rng.random(count)
    scaled = rng.integers(-(2**octave), 2**octave + 1, count)
    full = rng.integers(INT32_MIN, INT32_MAX, count, endpoint=True)
    return np.where(kind < 0.6, scaled, np.where(kind < 0.8, full, rng.choice(edges, count)))


def random_segment(rng, program: Program, count: int) -> None:
    """New random parameters for every lane, then `count` vectors aimed at them."""
    lanes, columns = [], []
    for _ in range(program.cols):
        octave = int(rng.integers(0, 32))
        if rng.random() < 0.75:  # outputs mostly inside int8 for sums near 2**octave
            shift = int(np.clip(octave + 17 + rng.integers(-2, 3), 0, 63))
            bias = int(rng.integers(-(2**octave), 2**octave + 1))
        else:  # any multiplier, any bias
            shift = int(rng.integers(0, 64))
            bias = int(rng.choice([0, rng.integers(INT32_MIN, INT32_MAX, endpoint=True)]))
        multiplier = np.ldexp(float(rng.integers(2**23, 2**24)), -shift)
        zero_point, relu = int(rng.integers(-128, 128)), bool(rng.random() < 0.5)
        lane = Lane.from_multiplier(multiplier, bias, zero_point, relu)
        if lane.shift and rng.random() < 0.15:  # a mantissa below 2**23 works the same way
            drop = int(rng.integers(1, min(lane.shift, 23) + 1))
            lane = replace(lane, mantissa=lane.mantissa >> drop, shift=lane.shift - drop)
        lanes.append(lane)
        target = sums_near(rng, count, octave)
        acc = target - bias  # hits the target sum exactly where that acc is an int32
        columns.append(np.where((acc >= INT32_MIN) & (acc <= INT32_MAX), acc, target))
    program.configure(lanes)
    program.send(np.stack(columns, axis=1), rng.random(count) < 0.2)


@pytest.mark.parametrize(("cols", "segments", "count"), [(1, 8, 60), (3, 6, 60), (4, 8, 70)])
def test_random_sums_match_the_golden(cols, segments, count):
    rng = np.random.default_rng(cols)
    program = Program(cols)
    for _ in range(segments):
        random_segment(rng, program, count)
    check(program, simulate(program))


def test_exact_ties_round_half_to_even():
    """Sums s and multipliers M with s * M = k + 0.5 exactly: the result is the even neighbour."""
    rng = np.random.default_rng(7)
    cols, count = 4, 40
    program = Program(cols)
    ties = []  # (vector, lane, 2 * s * M) of every tie
    for segment in range(4):
        lanes, columns = [], []
        for c in range(cols):
            # M = u * 2**b * 2**-shift with u odd, and s = +-v * 2**a with v odd, u * v < 512:
            # s * M = +-u * v / 2 when shift = a + b + 1.
            u = 1 if c == 0 else int(rng.integers(0, 2**8)) * 2 + 1
            b = MANTISSA_BITS - u.bit_length()
            v = rng.integers(0, (512 // u - 1) // 2 + 1, count) * 2 + 1
            a = int(rng.integers(0, 32 - 9))
            sign = rng.choice([-1, 1], count)
            bias, zero_point = int(rng.integers(-1000, 1001)), int(rng.integers(-60, 61))
            lanes.append(Lane(bias, u << b, a + b + 1, zero_point, bool(rng.random() < 0.5)))
            columns.append(sign * (v << a) - bias)
            ties += [(segment * count + i, c, int(sign[i] * u * v[i])) for i in range(count)]
        program.configure(lanes)
        program.send(np.stack(columns, axis=1))
    trace = simulate(program)
    check(program, trace)
    lanes = [item[2] for item in program.items if item[0] == "params"]
    for vector, c, twice in ties:
        lane = lanes[(vector // count) * cols + c]
        half_even = (twice - 1) // 2 + ((twice - 1) // 2) % 2  # the even one of the two
        low = lane.zero_point if lane.relu else -128
        assert trace.data[vector, c] == np.clip(half_even + lane.zero_point, low, 127)


def double_rounding_column(rng, count: int, second: bool) -> tuple[Lane, np.ndarray]:
    """A lane and `count` sums where one 24-bit rounding lands exactly on a final tie.

    Each sum times M lies just off k + 1/2; the first (``second=False``) or the second rounding
    moves it onto k + 1/2, which then rounds to the even neighbour, so rounding the exact value
    once would give the other one. Results are k or k + 1 for k in [64, 126] (inside int8 for the
    zero points -1 and 0), negated for negative sums.
    """
    d1 = int(rng.integers(2, 7))
    mantissa = int(rng.integers(3 << 22, 2**24)) if second else 2**23
    net = 17  # a tie (2k + 1) * 2**(net - 1) is then a 24-bit mantissa
    lane = Lane(0, mantissa, net + d1 + (24 if second else 23), int(rng.integers(-1, 1)))
    sums = []
    while len(sums) < count:
        k = int(rng.integers(64, 127))
        tie = (2 * k + 1) << (net - 1)
        if not second:  # |s| rounds to tie << d1: up to it for odd k, down for even k
            offset = int(rng.integers(1, 2 ** (d1 - 1)))
            sums.append((tie << d1) + (offset if k % 2 == 0 else -offset))
            continue
        # |s| = q1 << d1 exactly; the product q1 * m24 rounds onto tie << 24 from just off it.
        low = (tie << 24) + 1 if k % 2 == 0 else ((tie - 1) << 24) + 2**23 + 1
        high = low + 2**23 - 2
        q1 = -(-low // mantissa)
        if q1 < 2**24 and q1 * mantissa <= high:  # q1 < 2**24: the first rounding is exact
            sums.append(q1 << d1)
    return lane, np.array(sums, np.int64) * rng.choice([-1, 1], count)


@pytest.mark.parametrize(
    ("width", "amount_bits", "window"), [(7, 4, 3), (7, 4, 7), (9, 3, 9), (9, 3, 2), (5, 2, 1)]
)
def test_the_window_shifter_is_exact_for_every_value_and_amount(width, amount_bits, window):
    """Every value of a small `_shift_window` against Python's shifts: the quotient's low
    `window` bits, the guard and sticky bits, and the high bit (quotient bits above the window),
    amounts past the width included (7 bits by 0..15) and amounts narrower than the value (9
    bits by 0..7); rounding the window from them equals the golden's shift_right_half_even
    wherever the quotient fits the window."""
    value, amount = Signal(width), Signal(amount_bits)
    quotient, guard, sticky, high = Signal(window), Signal(), Signal(), Signal()
    m = Module()
    parts = _shift_window(value, amount, window)
    m.d.comb += [quotient.eq(parts[0]), guard.eq(parts[1]), sticky.eq(parts[2]), high.eq(parts[3])]
    got = {}

    async def testbench(ctx):
        for shift in range(1 << amount_bits):
            ctx.set(amount, shift)
            for v in range(1 << width):
                ctx.set(value, v)
                got[shift, v] = tuple(ctx.get(s) for s in (quotient, guard, sticky, high))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    for (shift, v), (q, g, s, h) in got.items():
        exact = v >> shift
        below = v & ((1 << shift) - 1)  # the bits shifted out
        expected = (
            exact & ((1 << window) - 1),
            (v >> (shift - 1)) & 1 if shift else 0,
            int(shift > 1 and below & ((1 << (shift - 1)) - 1) != 0),
            int(exact >> window != 0),
        )
        assert (q, g, s, h) == expected, (shift, v)
        if not h:
            rounded = q + (g & (s | q & 1))
            assert rounded == shift_right_half_even(np.array([v]), np.array([shift]))[0]


def test_saturation_clamps_and_ties_at_every_final_shift():
    """Magnitudes at the edges of stage 5's saturation and of the int8 clamps, and exact ties,
    for every final shift e in 0..24: sums +-(s0 + delta) with s0 * M = t for t in 0, 1, 2,
    127, 128, 255, 256, 383 and delta in {0, +-1, +-2**(e - 1)}, zero points -128, -1, 0 and
    127 with and without ReLU. M = 2**-e with m24 = 1 (p = q1: stage 5 shifts by e while
    s < 2**24, so the ties of small t sit at each of its amounts) and M = 3 * 2**-(e + 2) with
    m24 = 3 * 2**22 (both 24-bit roundings act)."""
    rng = np.random.default_rng(13)
    cols = 4
    settings = [(-128, False), (-1, True), (0, False), (127, True), (127, False), (-128, True)]
    lanes, columns = [], []
    for e in range(25):
        for mantissa, shift, scale in ((1, e, 1 << e), (3 << 22, e + 24, 4 << e)):
            zero_point, relu = settings[int(rng.integers(len(settings)))]
            half = (1 << e) >> 1
            sums = [
                sign * ((t * scale) // (1 if mantissa == 1 else 3) + delta)
                for t in (0, 1, 2, 127, 128, 255, 256, 383)
                for delta in (0, 1, -1, half, -half)
                for sign in (1, -1)
            ]
            sums = np.array(sums, np.int64)
            sums = sums[(sums >= INT32_MIN) & (sums <= INT32_MAX)]  # acc = s: bias 0
            if len(sums):
                lanes.append(Lane(0, mantissa, shift, zero_point, relu))
                columns.append(sums)
    program = Program(cols)
    for first in range(0, len(lanes), cols):
        group = range(first, min(first + cols, len(lanes)))
        group = [group[i % len(group)] for i in range(cols)]  # the last row repeats lanes
        count = max(len(columns[i]) for i in group)  # shorter columns repeat their sums
        program.configure([lanes[i] for i in group])
        program.send(np.stack([np.resize(columns[i], count) for i in group], axis=1))
    trace = simulate(program)
    check(program, trace)
    assert {-128, 127} <= set(np.unique(trace.data))


def test_each_rounding_to_24_bits_matters():
    rng = np.random.default_rng(9)
    count = 60
    program = Program(4)
    for _ in range(2):
        columns = [double_rounding_column(rng, count, second) for second in (0, 0, 1, 1)]
        program.configure([lane for lane, _ in columns])
        program.send(np.stack([sums for _, sums in columns], axis=1))
        for lane, sums in columns:  # rounding the exact product once gives the other neighbour
            exact = np.abs(sums) * lane.mantissa
            once = shift_right_half_even(exact, np.full_like(exact, lane.shift))
            assert np.all(once != np.abs(golden(sums, lane) - lane.zero_point))
    check(program, simulate(program))


@pytest.mark.parametrize(("idle", "stall"), [(0.5, 0.0), (0.0, 0.5), (0.3, 0.4), (0.7, 0.7)])
def test_idle_gaps_and_back_pressure_lose_nothing(idle, stall):
    rng = np.random.default_rng(11)
    program = Program(3)
    for _ in range(3):
        random_segment(rng, program, 40)
    trace = simulate(program, idle, stall, seed=int(100 * idle + 10 * stall))
    check(program, trace)
    assert len(trace.presented) == 120


def test_latency_and_one_vector_per_cycle():
    rng = np.random.default_rng(3)
    cols, count = 4, 64
    program = Program(cols)
    random_segment(rng, program, count)
    trace = simulate(program)
    check(program, trace)
    # C params beats in cycles 0..C-1, then one vector per cycle, each L cycles later on out.
    np.testing.assert_array_equal(trace.accepted, np.arange(cols, cols + count))
    np.testing.assert_array_equal(trace.presented, np.array(trace.accepted) + LATENCY)
    assert trace.presented[-1] + 1 - trace.accepted[0] == count + LATENCY


@pytest.mark.parametrize(("cols", "lanes"), [(4, 1), (4, 2), (3, 1), (6, 2), (6, 3)])
def test_fewer_lanes_than_columns_match_the_golden(cols, lanes):
    rng = np.random.default_rng(10 * cols + lanes)
    program = Program(cols)
    for _ in range(3):
        random_segment(rng, program, 30)
    program.items.insert(cols + 7, ("params", cols - 1, Lane.from_multiplier(2.0**-9, 3, -4)))
    check(program, simulate(program, lanes=lanes))


@pytest.mark.parametrize(("idle", "stall"), [(0.5, 0.0), (0.0, 0.5), (0.6, 0.6)])
def test_fewer_lanes_under_idle_gaps_and_back_pressure(idle, stall):
    rng = np.random.default_rng(21)
    program = Program(4)
    for _ in range(3):
        random_segment(rng, program, 25)
    check(program, simulate(program, idle, stall, seed=int(10 * idle + stall), lanes=1))


@pytest.mark.parametrize(("cols", "lanes"), [(4, 1), (4, 2), (6, 3)])
def test_fewer_lanes_take_a_row_every_cols_over_lanes_cycles(cols, lanes):
    rng = np.random.default_rng(4)
    count, chunks = 20, cols // lanes
    program = Program(cols)
    random_segment(rng, program, count)
    trace = simulate(program, lanes=lanes)
    check(program, trace)
    # A row is taken with its last chunk; the row leaves when that chunk leaves stage 5.
    first = cols + chunks - 1
    np.testing.assert_array_equal(trace.accepted, first + chunks * np.arange(count))
    np.testing.assert_array_equal(trace.presented, np.array(trace.accepted) + LATENCY)


def test_a_params_beat_waits_for_a_row_part_way_in():
    """Cycle by cycle, 1 lane for 3 columns, ``acc.valid`` and ``out.ready`` high: a params
    beat raised after a row's first chunk lets the row finish with the old parameters, then
    holds the next row until the pipeline is empty and the beat is in."""
    dut = Requantizer(AccelConfig(rows=1, cols=3, requant_lanes=1))
    cycles = 20
    log = {"acc": [], "params": [], "out": []}

    async def testbench(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.acc.valid, 1)
        ctx.set(dut.acc.payload, {"data": [10, 20, 30], "last": 0})
        ctx.set(dut.params.payload, Lane.from_multiplier(1.0, zero_point=5).beat(1))
        for cycle in range(cycles):
            params_valid = cycle >= 1 and not log["params"]
            ctx.set(dut.params.valid, params_valid)
            _, _, acc_ready, params_ready, valid, payload = await ctx.tick().sample(
                dut.acc.ready, dut.params.ready, dut.out.valid, dut.out.payload
            )
            log["acc"] += [cycle] if acc_ready else []
            log["params"] += [cycle] if params_valid and params_ready else []
            log["out"] += [(cycle, [int(x) for x in payload.data])] if valid else []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # Row 0: chunks in cycles 0-2 (taken with the last), out 5 cycles later, lane 1 still reset.
    # The beat goes in once the pipeline is empty; row 1 follows, lane 1 now 20 + 5.
    assert log["params"] == [2 + LATENCY + 1]
    resumed = 2 + LATENCY + 4  # row 1 taken; then a row every 3 cycles
    assert log["acc"] == [2, resumed, resumed + 3, resumed + 6]
    assert log["out"] == [
        (2 + LATENCY, [0, 0, 0]),
        (resumed + LATENCY, [0, 25, 0]),
        (resumed + 3 + LATENCY, [0, 25, 0]),
    ]


def test_params_take_effect_for_exactly_the_vectors_after_them():
    rng = np.random.default_rng(5)
    program = Program(3)
    old = [
        Lane.from_multiplier(2.0**-8, 17, zero_point, relu)
        for zero_point, relu in [(-20, False), (0, False), (30, True)]
    ]
    program.configure(old)
    acc = rng.integers(-(2**15), 2**15, (30, 3))
    program.send(acc)
    program.items.append(("params", 1, Lane.from_multiplier(0.75 * 2.0**-10, -5, 90)))
    program.send(acc)
    trace = simulate(program)
    check(program, trace)
    before, after = trace.data[:30], trace.data[30:]
    np.testing.assert_array_equal(after[:, [0, 2]], before[:, [0, 2]])
    assert np.all(after[:, 1] != before[:, 1])
    # The params beat waits for the pipeline to empty: L + 1 cycles without a vector.
    assert trace.accepted[30] - trace.accepted[29] == LATENCY + 2


def test_a_params_beat_blocks_acc_and_waits_for_an_empty_pipeline():
    """Cycle by cycle, with ``acc.valid`` and ``out.ready`` high throughout."""
    dut = Requantizer(AccelConfig(rows=1, cols=2, requant_lanes=2))
    raised = 3  # params.valid rises in this cycle, while vectors 0..2 are in flight
    cycles = raised + 2 * LATENCY + 4
    log = {"acc": [], "params": [], "out": []}

    async def testbench(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.acc.valid, 1)
        ctx.set(dut.params.payload, Lane.from_multiplier(1.0, zero_point=5).beat(1))
        for cycle in range(cycles):
            params_valid = cycle >= raised and not log["params"]
            ctx.set(dut.params.valid, params_valid)
            _, _, acc_ready, params_ready, valid, payload = await ctx.tick().sample(
                dut.acc.ready, dut.params.ready, dut.out.valid, dut.out.payload
            )
            assert acc_ready == (not params_valid), cycle
            log["acc"] += [cycle] if acc_ready else []
            log["params"] += [cycle] if params_valid and params_ready else []
            log["out"] += [(cycle, int(payload.data[1]))] if valid else []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # Vector 2 leaves in cycle 2 + L; the beat is accepted in the next cycle, when the pipeline
    # is empty, and the vectors after it (lane 1 was reset: 0 before, zero point 5 after) follow.
    resumed = raised + LATENCY + 1
    assert log["params"] == [raised + LATENCY]
    assert log["acc"] == [0, 1, 2, *range(resumed, cycles)]
    expected = [(t + LATENCY, 0 if t < raised else 5) for t in log["acc"]]
    assert log["out"] == [(t, value) for t, value in expected if t < cycles]


def test_reset_parameters_give_zeros():
    program = Program(3)
    program.send(np.array([[INT32_MIN, INT32_MAX, 12345]] * 4))
    program.configure([Lane(), Lane.from_multiplier(1.0), Lane()])
    program.send(np.array([[INT32_MIN, -100, 12345]]))
    trace = simulate(program)
    check(program, trace)
    np.testing.assert_array_equal(trace.data, [[0, 0, 0]] * 4 + [[0, -100, 0]])


def test_overflow_is_set_by_sums_beyond_int32_only():
    bias = [INT32_MAX, INT32_MIN, -5]
    lanes = [Lane.from_multiplier(2.0**-26, b, zero_point=-3) for b in bias]
    program = Program(3)
    program.configure(lanes)
    edge = np.array([[0, 0, INT32_MIN + 5], [INT32_MIN, INT32_MAX, INT32_MAX], [-1, 1, 0]])
    program.send(edge)  # sums at both int32 edges, no overflow
    trace = simulate(program)
    check(program, trace)
    assert not any(trace.overflow)

    # (2**31 - 1) + (2**31 - 1) = 2**32 - 2 rounds to 2**32; times 2**-26 is 64 (unsaturated).
    program.send(np.array([[INT32_MAX, 0, 0], [0, -1, INT32_MIN], [1, 2, 3]]))
    trace = simulate(program)
    check(program, trace)
    np.testing.assert_array_equal(trace.data[3:5, :2], [[61, -35], [29, -35]])
    first = trace.accepted[3]
    assert trace.overflow[first] == 0 and all(trace.overflow[first + 1 :])


def test_overflow_needs_a_transfer():
    """An overflowing payload sets nothing until it transfers; then the flag rises at once."""
    dut = Requantizer(AccelConfig(rows=1, cols=1))

    async def testbench(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.params.payload, Lane(bias=1).beat(0))
        ctx.set(dut.params.valid, 1)
        await ctx.tick()
        ctx.set(dut.params.valid, 0)
        ctx.set(dut.acc.payload, {"data": [INT32_MAX], "last": 0})  # 2**31 with the bias
        for _ in range(3):
            await ctx.tick()
            assert not ctx.get(dut.overflow)
        ctx.set(dut.acc.valid, 1)
        await ctx.tick()
        assert ctx.get(dut.overflow)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("cols", [1, 3])
def test_a_params_beat_for_a_missing_lane_is_dropped(cols):
    rng = np.random.default_rng(cols)
    program = Program(cols)
    random_segment(rng, program, 10)
    program.items.append(("params", cols, Lane.from_multiplier(1.0, 7, 7)))
    program.send(rng.integers(-1000, 1000, (10, cols)))
    trace = simulate(program)
    check(program, trace)  # the model ignores the beat too
    first = trace.accepted[10]
    assert not any(trace.bad_param[:first]) and all(trace.bad_param[first:])


def test_payload_layouts():
    offsets = {name: (f.offset, f.width) for name, f in requant_param_layout(3)}
    assert offsets == {
        "lane": (0, 2),
        "bias": (2, 32),
        "mantissa": (34, 24),
        "shift": (58, 6),
        "zero_point": (64, 8),
        "relu": (72, 1),
    }
    assert requant_param_layout(1)["lane"].width == 1
    assert requant_input_layout(4).size == 4 * 32 + 1
    assert requant_output_layout(4).size == 4 * 8 + 1


def test_constructor_refuses_a_non_config():
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not <class 'dict'>$"):
        Requantizer({"cols": 4})
