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
4. q2 = rhe(p >> d2), d2 = max(bitlen(p) - 24, 0); the net shift shift - d1 - d2, clamped to a
   5-bit right shift (0 for net < 0, 31 for net >= 32);
5. magnitude min(rhe(q2 >> right), 256) (net < 0 saturates any nonzero q2, as q2 << -net would);
   sign, + zy, clamp.

Each step ends in a register; ``out`` is the step-5 register. rhe is a right shift rounding half
to even (guard bit, sticky bits, quotient lsb); each shifter computes only the bits its rounding
keeps (24 in steps 2 and 4, 8 in step 5, where any bit above them saturates) plus the guard,
sticky and (step 5) high bits (`_shift_window`).

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


def _shift_window(value, amount, width: int):
    """The bits of ``value >> amount`` that a rounding needs, for a variable `amount`.

    Returns (quotient, guard, sticky, high): quotient = (value >> amount)[:width], guard =
    value[amount - 1] (0 for amount 0), sticky = value[: amount - 1].any() and high =
    (value >> amount)[width:].any() (a shift by len(value) + 1 or more gives all 0).

    A logarithmic shifter, largest stage first, of value with a 0 below it (so the bit that ends
    at the bottom is the guard bit). Each stage computes only the positions that can still reach
    the window (guard + quotient) through the stages left: a stage that shifts by 2**k ORs the
    2**k bits it drops below the window into the sticky bit, and one that does not shift ORs the
    bits it leaves above the window's reach into the high bit.
    """
    current = Cat(Const(0, 1), value)
    reach = width + 1 + (1 << len(amount)) - 1  # positions that can end in the window
    sticky, high = Const(0, 1), current[reach:].any()
    current = current[:reach]
    for stage in reversed(range(len(amount))):
        step, enable = 1 << stage, amount[stage]
        reach -= step
        sticky = sticky | (enable & current[:step].any())
        high = high | (~enable & current[reach:].any())
        shifted = Cat(current[step:], Const(0, max(0, reach + step - len(current))))
        current = Mux(enable, shifted[:reach], current[:reach])
    return current[1:], current[0], sticky, high


def _round_to_mantissa(m: Module, value, rounded: Signal, dropped: Signal) -> None:
    """Drive rounded = rhe(value >> dropped), dropped = max(bitlen(value) - 24, 0).

    A priority chain over the top bits finds dropped; the quotient then has at most 24 bits, so
    a `_shift_window` 24 bits wide and one incrementer round it (the result may be 2**24).
    """
    m.d.comb += dropped.eq(0)
    for drop in range(1, len(value) - MANTISSA_BITS + 1):  # later assignments take priority
        with m.If(value[MANTISSA_BITS - 1 + drop]):
            m.d.comb += dropped.eq(drop)
    amount = dropped[: (len(value) - MANTISSA_BITS).bit_length()]
    quotient, guard, sticky, _ = _shift_window(value, amount, MANTISSA_BITS)
    m.d.comb += rounded.eq(quotient + (guard & (sticky | quotient[0])))


def _right_shift(m: Module, net, right: Signal) -> None:
    """Drive right = the 5-bit shift amount of stage 5 for the net shift of stage 4.

    net >= 32 shifts by 31 (by 25 or more, any q2 <= 2**24 rounds to 0). net < 0 means
    d1 + d2 >= 1, so q2 is 0 or at least 2**23 (a rounding that dropped bits leaves 24
    significant ones, and a q1 >= 2**23 times a nonzero m24 stays >= 2**23): it shifts by 0,
    and then any nonzero q2 saturates like any quotient of 256 or more.
    """
    with m.If(net[-1]):
        m.d.comb += right.eq(0)
    with m.Elif(net[5:].any()):
        m.d.comb += right.eq(31)
    with m.Else():
        m.d.comb += right.eq(net[:5])


def _output(m: Module, mantissa, right, negative, zero_point, relu, result: Signal) -> None:
    """Drive the int8 result: y = zy -+ min(rhe(mantissa >> right), 256), clamped to [lo, 127]
    with lo = zy under ReLU, else -128.

    A magnitude of 256 or more clamps for every zero point (zy + 256 > 127, zy - 256 < -128),
    so the shifter keeps 8 quotient bits and flags any bit above them. Unclamped, zy -+ (q + r)
    (q the quotient, r the rounding increment) is one 10-bit adder: zy + (q ^ -n) + (r ^ n) for
    the sign n. Under ReLU a negative sign gives zy whatever the magnitude (zy - |y| <= zy).
    """
    limit = SATURATED.bit_length() - 1  # quotient bits of an unsaturated magnitude
    width = limit + 2  # zy -+ 256 fits; q is zero-extended by 2 bits, then inverted for n
    quotient, guard, sticky, high = _shift_window(mantissa, right, limit)
    increment = guard & (sticky | quotient[0])
    name = result.name
    # One adder: the carry in r ^ n is added below the lsb of both operands.
    carry = increment ^ negative
    flipped, zero = Signal(width + 1, name=f"{name}_flipped"), Signal(width + 1, name=f"{name}_zy")
    value = Signal(signed(width), name=f"{name}_y")
    m.d.comb += [
        flipped.eq(Cat(carry, (quotient ^ negative.replicate(limit)), negative.replicate(2))),
        zero.eq(Cat(carry, zero_point, zero_point[-1].replicate(width - len(zero_point)))),
        value.eq((flipped + zero)[1:]),
    ]
    # Clamped: a saturated magnitude, or a value outside int8 (its top 3 bits not all equal).
    top = value[limit - 1 :]
    clamped = high | (top.any() & ~top.all())
    below = Mux(high, negative, value[-1])
    with m.If(relu & negative):
        m.d.comb += result.eq(zero_point)
    with m.Elif(clamped):
        m.d.comb += result.eq(Mux(below, -128, 127))
    with m.Else():
        m.d.comb += result.eq(value[:8])


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
        shapes = {
            "bias": signed(32),
            "mantissa": MANTISSA_BITS,
            "shift": 6,
            "zero_point": signed(8),
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
        # |s| = (s ^ -sign) + sign: one incrementer (sign is its carry in, added below the
        # lsb), no negation and choice.
        sign = total[-1]
        flipped = Signal(34, name=f"s1_flipped{lane}")
        m.d.comb += flipped.eq(Cat(sign, total.as_unsigned() ^ sign.replicate(33)))
        m.d.sync += [
            negative[0].eq(sign),
            magnitude.eq((flipped + Cat(sign, Const(0, 33)))[1:]),
        ]
        for stage in range(1, LATENCY - 1):
            m.d.sync += negative[stage].eq(negative[stage - 1])

        # Stage 2: round |s| to 24 significant bits (q1 <= 2**24, d1 <= 9).
        q1, d1 = register(MANTISSA_BITS + 1, 2, "q1"), register(6, 2, "d1")
        rounded, dropped = Signal.like(q1, name=f"q1_{lane}"), Signal.like(d1, name=f"d1_{lane}")
        _round_to_mantissa(m, magnitude, rounded, dropped)
        m.d.sync += [q1.eq(rounded), d1.eq(dropped)]

        # Stage 3: the exact product, registered (q1 * m24 < 2**48). Not reset, so that Yosys
        # can put the register's low half into the output register of the DSP block that
        # computes it (ice40_dsp moves no register with a reset there); a row's product is
        # always its own, whatever the register held before.
        product = Signal(2 * MANTISSA_BITS, name=f"s3_product{lane}", reset_less=True)
        d1_delayed = register(6, 3, "d1")  # 6 bits like shift: equal operand widths below
        m.d.sync += [product.eq(q1 * params["mantissa"]), d1_delayed.eq(d1)]

        # Stage 4: round the product to 24 significant bits; stage 5's right shift from the net
        # shift = shift - d1 - d2.
        q2, right = register(MANTISSA_BITS + 1, 4, "q2"), register(5, 4, "right")
        rounded = Signal.like(q2, name=f"q2_{lane}")
        dropped = Signal(6, name=f"d2_{lane}")
        _round_to_mantissa(m, product, rounded, dropped)
        net, amount = Signal(signed(8), name=f"net{lane}"), Signal(5, name=f"right{lane}")
        m.d.comb += net.eq(params["shift"] - d1_delayed - dropped)
        _right_shift(m, net, amount)
        m.d.sync += [q2.eq(rounded), right.eq(amount)]

        # Stage 5 (`result` is its input): scale, round, saturate, sign, zero point, clamp.
        _output(m, q2, right, negative[-1], params["zero_point"], params["relu"], result)
