"""Processing elements of the systolic array: one int8 x int8 MAC with an int32 accumulator path.

Both PEs multiply the operands they have registered (``a_out``, and ``b_out`` or the weight),
so every result is one cycle later than with a combinational MAC; the multiply and the add
behind it fit one DSP block (an iCE40 SB_MAC16 holds the weight-stationary PE's whole
multiply-add, output register included). Neither PE has flow control of its own: the array
stalls all of them at once with an enable (`amaranth.hdl.EnableInserter`), so they only ever see
a whole pipeline advance.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _widened(m: Module, product):
    """The 16-bit `product` as a 32-bit operand of the add it goes into, so that the add has
    operands of equal width in Verilog (Amaranth writes a sign extension as a ``$signed``
    16-bit operand of a 33-bit add, which Verilator flags as WIDTHEXPAND). The upper half is an
    arithmetic shift by a constant, which Amaranth does not see as a sign extension and Yosys
    does (it then maps the multiply and the add to one DSP block)."""
    narrow = Signal(signed(16), name="product")
    m.d.comb += narrow.eq(product)
    return Cat(narrow, narrow >> Const(15, 4)).as_signed()


class WeightStationaryPE(wiring.Component):
    """A weight-stationary PE: holds two weights (double-buffered) and passes activations right.

    Per cycle: ``a_out``/``bank_out`` register ``a_in``/``bank_in`` (activations move one column
    right), and ``psum_out`` registers ``psum_in + a_out * weight[bank_out]`` (partial sums move
    one row down). ``weight_we[b]`` writes ``weight_data`` into weight bank b at the clock edge,
    while the other bank computes.

    Latency: ``a_out`` one cycle after ``a_in``; the activation's contribution appears in
    ``psum_out`` two cycles after ``a_in``, added to the ``psum_in`` of the cycle after ``a_in``
    and multiplied by the weight its bank holds in that cycle: a bank must not be written at the
    clock edge that ends the cycle of its last ``a_in`` (the array frees a bank later than that).

    ``psum_out`` is not reset (Yosys moves an output register with a reset into an iCE40 DSP block
    only for an accumulator): after a reset it holds its old value until the first edge, like
    any partial sum no row is aligned with (the array's token line, which is reset, never
    presents one).
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
        product = _widened(m, self.a_out * Mux(self.bank_out, weights[1], weights[0]))
        psum = Signal(signed(32), reset_less=True)
        m.d.comb += self.psum_out.eq(psum)
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.bank_out.eq(self.bank_in),
            psum.eq(self.psum_in + product),
        ]
        return m


class OutputStationaryPE(wiring.Component):
    """An output-stationary PE: accumulates a_in * b_in, passing a right and b down.

    Per cycle: ``a_out``, ``b_out`` and ``last_out`` register their inputs, and the accumulator
    adds the product ``a_out * b_out``. When that product is the tile's last (``last_out``),
    ``result`` takes accumulator + product and the accumulator restarts from zero, so the next
    tile follows without a gap.

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
        product = _widened(m, self.a_out * self.b_out)
        accumulator = Signal(signed(32))
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.b_out.eq(self.b_in),
            self.last_out.eq(self.last_in),
        ]
        total = accumulator + product
        with m.If(self.last_out):
            m.d.sync += [self.result.eq(total), accumulator.eq(0)]
        with m.Else():
            m.d.sync += accumulator.eq(total)
        return m
