"""Requantizer: C int32 accumulators + bias -> int8, bit-exact with torch's float32 math.

Per lane c, with s = acc[c] + bias[c] computed exactly (33 bits), the output is
`sim.golden.requant.requantize_int` applied to s with that lane's parameters (M = m24 * 2**-shift,
output zero point zy, fused ReLU): round |s| to 24 significant bits (ties to even), multiply
exactly by m24, round the product to 24 significant bits (ties to even), shift right by ``shift``
(ties to even), restore the sign, add zy, clamp to [lo, 127] with lo = zy under ReLU, else -128.
For s inside int32 this equals `sim.golden.requant.requantize_float` (torch's arithmetic); an s
outside int32 gets the same math on its 33-bit value and sets the sticky ``overflow`` flag.

Datapath (mantissa and exponent kept apart; rounding to 24 bits commutes with scaling by powers
of two, so the result equals the golden procedure exactly):

1. sign and magnitude of s = acc + bias;
2. q1 = rhe(|s| >> d1), d1 = max(bitlen(|s|) - 24, 0) (so q1 <= 2**24, d1 <= 9);
3. p = q1 * m24, registered (a DSP multiplier with its output register);
4. q2 = rhe(p >> d2), d2 = max(bitlen(p) - 24, 0), net = shift - d1 - d2;
5. magnitude rhe(q2 >> net) (net > 0) or q2 << -net, saturated at 256; sign, + zy, clamp.

Each step ends in a register; ``out`` is the step-5 register. rhe is a right shift rounding half
to even (guard bit, sticky bits, quotient lsb).

Lanes: L = ``config.requant_lanes`` pipelines (a divisor of C) serve the C columns in
K = C / L chunks: chunk k (columns kL .. kL + L - 1) enters in the k-th cycle of the row, each
stage uses its own chunk's parameters, and stage 5 writes the chunk's columns of the ``out``
register. The row is taken from ``acc`` (ready) with its last chunk; the producer holds it
meanwhile, as a stream must. The default L takes a row in at most 3 cycles, the store DMA's
fastest row (`hdl.config.AccelConfig.requant_lanes`).

Flow control: every pipeline register (and ``overflow``) advances only when
``advance = ~out.valid | out.ready``, so back-pressure freezes the pipeline and nothing is lost
or duplicated; ``out.valid`` is the last chunk's stage-5 flag. A chunk enters when ``advance``
is high and ``acc.valid`` too, the row's first chunk only while ``params.valid`` is low, and
``acc.ready`` is that condition in the row's last chunk. With ``out.ready`` held high a row is
accepted every K cycles. Latency: a row accepted on ``acc`` in cycle t (its last chunk) is
presented on ``out`` in cycle t + `LATENCY` (5), ``last`` passing through with it.

Parameters are per-column registers written one column ("lane" in the beat) per ``params``
beat. While ``params.valid`` is high no new row starts, and a params beat is accepted only when
no row is part-way in or inside the pipeline, so it takes effect for exactly the rows accepted
after it. A beat naming a lane
>= C is accepted, dropped, and sets the sticky ``bad_param`` flag. After reset every lane has
bias 0, m24 0, shift 0, zy 0, no ReLU: every output is 0 until the lane is configured.
"""

from amaranth.hdl import Cat, Const, EnableInserter, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.config import AccelConfig
from hdl.systolic import output_layout

#: Cycles from a vector's acceptance on ``acc`` to its presentation on ``out``.
LATENCY = 5
#: Significant bits kept by both roundings (the float32 mantissa).
MANTISSA_BITS = 24
#: A magnitude saturated here gives the clamped result for every zero point.
SATURATED = 256


def requant_param_layout(cols: int) -> data.StructLayout:
    """Payload of the ``params`` stream: one lane's parameters per beat."""
    return data.StructLayout(
        {
            "lane": unsigned(max(1, (cols - 1).bit_length())),
            "bias": signed(32),
            "mantissa": unsigned(MANTISSA_BITS),
            "shift": unsigned(6),
            "zero_point": signed(8),
            "relu": 1,
        }
    )


def requant_input_layout(cols: int) -> data.StructLayout:
    """Payload of the ``acc`` stream: the systolic array's output (C int32 values, ``last``)."""
    return output_layout(cols)


def requant_output_layout(cols: int) -> data.StructLayout:
    """Payload of the ``out`` stream: C int8 values and ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), cols), "last": 1})


def _shift_half_even(value, amount):
    """``value >> amount`` rounded half to even (one bit wider than the quotient).

    A logarithmic shifter with a sticky bit, for a variable `amount` (a shift by len(value) + 1
    or more gives 0): value is shifted with a 0 below it, so that the bit at the bottom ends as
    the guard bit value[amount - 1] (0 for amount 0); each stage that shifts by 2**k ORs the 2**k
    bits it drops into the sticky bit (value[: amount - 1] in all); one incrementer rounds.
    """
    current = Cat(Const(0, 1), value)
    sticky = Const(0, 1)
    for stage, enable in enumerate(amount):
        step = min(1 << stage, len(current))
        sticky = sticky | (enable & current[:step].any())
        current = Mux(enable, Cat(current[step:], Const(0, step)), current)
    quotient, guard = current[1:], current[0]
    return quotient + (guard & (sticky | quotient[0]))


def _round_to_mantissa(m: Module, value, rounded: Signal, dropped: Signal) -> None:
    """Drive rounded = rhe(value >> dropped), dropped = max(bitlen(value) - 24, 0)."""
    m.d.comb += dropped.eq(0)
    for drop in range(1, len(value) - MANTISSA_BITS + 1):  # later assignments take priority
        with m.If(value[MANTISSA_BITS - 1 + drop]):
            m.d.comb += dropped.eq(drop)
    m.d.comb += rounded.eq(
        _shift_half_even(value, dropped[: (len(value) - MANTISSA_BITS).bit_length()])
    )


def _scale_saturated(m: Module, mantissa: Signal, net: Signal, magnitude: Signal) -> None:
    """Drive magnitude = min(rhe(mantissa * 2**-net), 256) for the q2 and net of stage 4.

    net >= 0: a rounding right shift (by 25 or more, any mantissa <= 2**24 rounds to 0, so
    net >= 32 shifts by 31). net < 0 means d1 + d2 >= 1, so q2 is 0 or at least 2**23 (a
    rounding that dropped bits leaves 24 significant ones, and a q1 >= 2**23 times a nonzero m24
    stays >= 2**23): any nonzero q2 saturates.
    """
    limit = SATURATED.bit_length() - 1  # bits of an unsaturated magnitude
    right_amount = Signal(5, name=f"{magnitude.name}_right")
    m.d.comb += right_amount.eq(Mux(net[5:].any(), 31, net[:5]))
    right = Signal(len(mantissa) + 1, name=f"{magnitude.name}_rounded")
    m.d.comb += right.eq(_shift_half_even(mantissa, right_amount))
    with m.If(net[-1]):
        m.d.comb += magnitude.eq(Mux(mantissa.any(), SATURATED, 0))
    with m.Else():
        m.d.comb += magnitude.eq(Mux(right[limit:].any(), SATURATED, right[:limit]))


class Requantizer(wiring.Component):
    """Pipelined per-lane requantizer of C int32 accumulators to int8 (see the module docstring).

    Parameters
    ----------
    config:
        Supplies the lane count C = ``config.cols``.

    Attributes
    ----------
    params: In(stream of `requant_param_layout`)
        One lane's bias, m24, shift, zero point and ReLU flag per beat.
    acc: In(stream of `requant_input_layout`)
        C int32 accumulators and ``last`` per beat.
    out: Out(stream of `requant_output_layout`)
        C int8 results and ``last``, `LATENCY` cycles after the ``acc`` beat.
    overflow: Out(1)
        Sticky: some acc + bias fell outside int32 (that output is saturated as for the exact
        33-bit sum). Cleared only by reset.
    bad_param: Out(1)
        Sticky: a params beat named a lane >= C (the beat was dropped). Cleared only by reset.

    Raises
    ------
    TypeError
        ``config`` is not an `AccelConfig`.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        cols = config.cols
        super().__init__(
            {
                "params": In(stream.Signature(requant_param_layout(cols))),
                "acc": In(stream.Signature(requant_input_layout(cols))),
                "out": Out(stream.Signature(requant_output_layout(cols))),
                "overflow": Out(1),
                "bad_param": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        core = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)
        columns = self._load_params(m)
        lanes, chunks = self.config.requant_lanes, self.config.requant_chunks

        valid = [Signal(name=f"valid{stage}") for stage in range(1, LATENCY + 1)]
        last = [Signal(name=f"last{stage}") for stage in range(1, LATENCY + 1)]
        # The chunk of the row on ``acc`` taken next, and each stage's chunk, one-hot (selects
        # without comparators; bit k is chunk k, a constant 1 when K = 1).
        chunk = Signal(chunks, init=1)
        index = [Signal(chunks, name=f"chunk{stage}") for stage in range(1, LATENCY + 1)]
        started = ~chunk[0]  # a row is part-way in: finish it before any params beat
        final = chunk[-1]
        take = self.acc.valid & advance & (~self.params.valid | started)
        m.d.comb += [
            self.acc.ready.eq(advance & (~self.params.valid | started) & final),
            self.params.ready.eq(~Cat(*valid).any() & ~started),  # empty: advance is high too
            self.out.valid.eq(valid[-1] & index[-1][-1]),
            self.out.payload.last.eq(last[-1]),
        ]
        with m.If(take):
            m.d.sync += chunk.eq(chunk.rotate_left(1))
        core.d.sync += [
            valid[0].eq(take),
            last[0].eq(self.acc.payload.last),
            index[0].eq(chunk),
        ]
        for stage in range(1, LATENCY):
            core.d.sync += [
                valid[stage].eq(valid[stage - 1]),
                last[stage].eq(last[stage - 1]),
                index[stage].eq(index[stage - 1]),
            ]

        def select(options, which):
            """options[k] for the one-hot chunk `which` (bit k set)."""
            chosen = options[0]
            for k in range(1, chunks):
                chosen = Mux(which[k], options[k], chosen)
            return chosen

        def pick(lane: int, name: str, which):
            """Lane `lane`'s parameter `name` for the chunk `which` (its column's)."""
            return select([columns[k * lanes + lane][name] for k in range(chunks)], which)

        for lane in range(lanes):
            # Stage 1 adds the bias of the chunk taken; each later step uses its own stage's.
            row = self.acc.payload.data
            value = select([row[k * lanes + lane] for k in range(chunks)], chunk)
            total = Signal(signed(33), name=f"sum{lane}")
            core.d.comb += total.eq(value + pick(lane, "bias", chunk))
            with core.If(take & (total[32] != total[31])):
                core.d.sync += self.overflow.eq(1)
            params = {
                "mantissa": pick(lane, "mantissa", index[1]),
                "shift": pick(lane, "shift", index[2]),
                "zero_point": pick(lane, "zero_point", index[3]),
                "relu": pick(lane, "relu", index[3]),
            }
            result = Signal(signed(8), name=f"result{lane}")
            self._lane(core, lane, params, total, result)
            for k in range(chunks):  # stage 5: the chunk's columns of the output row
                with core.If(index[3][k]):
                    core.d.sync += self.out.payload.data[k * lanes + lane].eq(result)
        m.submodules.core = EnableInserter(advance)(core)
        return m

    def _load_params(self, m: Module) -> list[dict[str, Signal]]:
        """Per-column parameter registers (a beat's ``lane`` is the column), written by accepted
        ``params`` beats."""
        cols = self.config.cols
        beat = self.params.payload
        load = self.params.valid & self.params.ready
        # The zero point is kept sign-extended to 11 bits, the width of stage 5's arithmetic.
        shapes = {
            "bias": signed(32),
            "mantissa": MANTISSA_BITS,
            "shift": 6,
            "zero_point": signed(11),
            "relu": 1,
        }
        lanes = [
            {name: Signal(shape, name=f"{name}{lane}") for name, shape in shapes.items()}
            for lane in range(cols)
        ]
        # One-hot lane select; bit C flags a lane number >= C. Every case assigns it, so the
        # generated case statement is complete.
        select = Signal(cols + 1)
        with m.Switch(beat.lane):
            for lane in range(cols):
                with m.Case(lane):
                    m.d.comb += select.eq(1 << lane)
            with m.Default():
                m.d.comb += select.eq(1 << cols)
        for lane, registers in enumerate(lanes):
            with m.If(load & select[lane]):
                m.d.sync += [register.eq(beat[name]) for name, register in registers.items()]
        with m.If(load & select[cols]):
            m.d.sync += self.bad_param.eq(1)
        return lanes

    @staticmethod
    def _lane(m: Module, lane: int, params: dict[str, Signal], total: Signal, result) -> None:
        """The five pipeline stages of one lane, from the exact sum to the int8 result."""

        def register(shape, stage: int, what: str) -> Signal:
            return Signal(shape, name=f"s{stage}_{what}{lane}")

        # Stage 1: sign and magnitude (|s| <= 2**32).
        negative = [register(1, stage, "negative") for stage in range(1, LATENCY)]
        magnitude = register(33, 1, "magnitude")
        m.d.sync += [negative[0].eq(total[-1]), magnitude.eq(Mux(total[-1], -total, total))]
        for stage in range(1, LATENCY - 1):
            m.d.sync += negative[stage].eq(negative[stage - 1])

        # Stage 2: round |s| to 24 significant bits (q1 <= 2**24, d1 <= 9).
        q1, d1 = register(MANTISSA_BITS + 1, 2, "q1"), register(6, 2, "d1")
        rounded, dropped = Signal.like(q1, name=f"q1_{lane}"), Signal.like(d1, name=f"d1_{lane}")
        _round_to_mantissa(m, magnitude, rounded, dropped)
        m.d.sync += [q1.eq(rounded), d1.eq(dropped)]

        # Stage 3: the exact product, registered (q1 * m24 < 2**48).
        product = register(2 * MANTISSA_BITS, 3, "product")
        d1_delayed = register(6, 3, "d1")  # 6 bits like shift: equal operand widths below
        m.d.sync += [product.eq(q1 * params["mantissa"]), d1_delayed.eq(d1)]

        # Stage 4: round the product to 24 significant bits; net shift = shift - d1 - d2.
        q2, net = register(MANTISSA_BITS + 1, 4, "q2"), register(signed(8), 4, "net")
        rounded = Signal.like(q2, name=f"q2_{lane}")
        dropped = Signal(6, name=f"d2_{lane}")
        _round_to_mantissa(m, product, rounded, dropped)
        m.d.sync += [q2.eq(rounded), net.eq(params["shift"] - d1_delayed - dropped)]

        # Stage 5 (`result` is its input): scale, saturate, sign, zero point, clamp. Every
        # operand is an 11-bit signal (zy +- 256 fits), so each add and compare has equal
        # operand widths.
        scaled = Signal(signed(11), name=f"scaled{lane}")
        _scale_saturated(m, q2, net, scaled)
        zero_point = params["zero_point"]
        value = Mux(negative[-1], zero_point - scaled, zero_point + scaled)[:11].as_signed()
        low = Signal(signed(11), name=f"low{lane}")
        m.d.comb += low.eq(Mux(params["relu"], zero_point, -128))
        with m.If(~value[-1] & value[7:].any()):  # value > 127
            m.d.comb += result.eq(127)
        with m.Elif(value < low):
            m.d.comb += result.eq(low)
        with m.Else():
            m.d.comb += result.eq(value)
