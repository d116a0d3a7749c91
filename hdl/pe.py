"""Processing elements of the systolic array: one int8 x int8 MAC with an int32 accumulator path.

Both PEs register their product before adding it (the multiplier is the critical path on FPGAs,
and DSP blocks have the register built in), so every result is one cycle later than with a
combinational MAC. Neither PE has flow control of its own: the array stalls all of them at once
with an enable (`amaranth.hdl.EnableInserter`), so they only ever see a whole pipeline advance.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class WeightStationaryPE(wiring.Component):
    """A weight-stationary PE: holds two weights (double-buffered) and passes activations right.

    Per cycle: ``a_out``/``bank_out`` register ``a_in``/``bank_in`` (activations move one column
    right), the product ``a_in * weight[bank_in]`` is registered, and ``psum_out`` registers
    ``psum_in + product`` (partial sums move one row down). ``weight_we[b]`` writes
    ``weight_data`` into weight bank b at the clock edge, while the other bank computes.

    Latency: ``a_out`` one cycle after ``a_in``; the activation's contribution appears in
    ``psum_out`` two cycles after ``a_in``, added to the ``psum_in`` of the cycle after ``a_in``.
    """

    a_in: In(signed(8))
    bank_in: In(1)
    psum_in: In(signed(32))
    weight_data: In(signed(8))
    weight_we: In(2)
    a_out: Out(signed(8))
    bank_out: Out(1)
    psum_out: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(signed(8), name=f"weight{bank}") for bank in range(2)]
        for bank, weight in enumerate(weights):
            with m.If(self.weight_we[bank]):
                m.d.sync += weight.eq(self.weight_data)
        product = Signal(signed(32))  # 32 bits: the add below then has equal operand widths
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.bank_out.eq(self.bank_in),
            product.eq(self.a_in * Mux(self.bank_in, weights[1], weights[0])),
            self.psum_out.eq(self.psum_in + product),
        ]
        return m


class OutputStationaryPE(wiring.Component):
    """An output-stationary PE: accumulates a_in * b_in, passing a right and b down.

    Per cycle: ``a_out``, ``b_out`` and ``last_out`` register their inputs, the product
    ``a_in * b_in`` is registered, and the accumulator adds it. When the registered product is
    the tile's last (``last_in`` of the previous cycle), ``result`` takes accumulator + product
    and the accumulator restarts from zero, so the next tile follows without a gap.

    Latency: ``result`` holds a tile's sum from two cycles after its last ``a_in``/``b_in``
    until two cycles after the next tile's last input.
    """

    a_in: In(signed(8))
    b_in: In(signed(8))
    last_in: In(1)
    a_out: Out(signed(8))
    b_out: Out(signed(8))
    last_out: Out(1)
    result: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(32))  # 32 bits: the add below then has equal operand widths
        product_last = Signal()
        accumulator = Signal(signed(32))
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.b_out.eq(self.b_in),
            self.last_out.eq(self.last_in),
            product.eq(self.a_in * self.b_in),
            product_last.eq(self.last_in),
        ]
        total = accumulator + product
        with m.If(product_last):
            m.d.sync += [self.result.eq(total), accumulator.eq(0)]
        with m.Else():
            m.d.sync += accumulator.eq(total)
        return m
