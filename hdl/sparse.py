"""The sparse engine: Y = W x X for a compressed sparse int8 W, multiplying only its nonzeros.

W (N x K, int8, mostly zeros) arrives row by row as a stream of its nonzeros and their column
indices; X (K x M, dense int8) arrives as blocks of C columns. Each cycle the engine takes one
``nonzeros`` beat holding up to G = P / C nonzeros (P = ``AccelConfig.sparse_lanes`` MACs, C =
``cols``) of one row of W, reads the G rows of X they select and adds G x C products to the C
int32 sums of that row. Zeros of W are never stored, sent or multiplied, so the cycles grow with
the number of nonzeros, not with N * K.

Ports (payload layouts below)

``acts``
    One block of X: beat k = X[k, jC:jC+C] (C int8, unused columns zero), k = 0..K-1, ``last``
    on k = K-1. Blocks go into one of two buffer banks of ``sparse_depth`` rows each, so the next
    block loads while the current one is used.
``nonzeros``
    The rows of W against the loaded block, in order: a row with n nonzeros is ceil(n / G) beats
    (an empty row one beat of zeros); each beat has G entries (int8 ``value``, column ``index``;
    unused entries have value 0), ``row_end`` on the row's final beat and ``last`` on the final
    beat of the matrix, which releases the block's bank.
``out``
    One beat per row of W: Y[n, jC:jC+C] as C int32 sums (two's complement, wrapping like the
    array's accumulators), ``last`` on the matrix's final row.
``error``
    Sticky (cleared by reset): a ``nonzeros`` index at or beyond the loaded block's K, or an
    ``acts`` block longer than ``sparse_depth`` (its extra beats are dropped).

Flow control and timing: the datapath (bank read, products, sums, output register) advances
only when ``advance = ~out.valid | out.ready``, so back-pressure freezes it and nothing is lost;
``nonzeros`` is ready when the datapath advances and its block is loaded; ``acts`` is ready while
its bank is free, independent of back-pressure. A ``nonzeros`` beat accepted in cycle t that ends
a row puts that row on ``out`` in cycle t + 3 (`LATENCY`). Without stalls a single pass
(one block, one matrix) takes K + sum_n max(1, ceil(nnz_n / G)) + 3 cycles from the first
``acts`` beat to the last output transfer; `sim.cycles.sparse_cycles` models whole programs.
"""

from amaranth.hdl import Cat, EnableInserter, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.config import AccelConfig
from hdl.systolic import activation_layout, output_layout

#: Cycles from accepting a row's final ``nonzeros`` beat to presenting that row on ``out``.
LATENCY = 3


def index_bits(config: AccelConfig) -> int:
    """Width of a column index: log2(``sparse_depth``)."""
    return (config.sparse_depth - 1).bit_length()


def nonzeros_layout(config: AccelConfig) -> data.StructLayout:
    """Payload of the ``nonzeros`` stream: G (value, index) entries, then ``row_end``, ``last``."""
    entry = data.StructLayout({"value": signed(8), "index": unsigned(index_bits(config))})
    return data.StructLayout(
        {
            "entries": data.ArrayLayout(entry, config.sparse_groups),
            "row_end": 1,
            "last": 1,
        }
    )


def nonzero_beat_bytes(config: AccelConfig) -> int:
    """Bytes of one packed ``nonzeros`` beat in main memory: its payload in whole 4-byte words."""
    bits = nonzeros_layout(config).size
    return 4 * ((bits + 31) // 32)


def product_widths(groups: int) -> list[int]:
    """Bit width of each of the G product registers of one column.

    Products are 16 bits, but each register is as wide as the adder that first consumes it, so
    that every adder in Verilog has equal operand widths (Yosys folds any explicit extension into
    the adder, and Verilator's lint then flags unequal operands). In the tree of `_adder_tree` the
    odd one out of a level is carried up and meets a sum of width 16 + level; with G = 1 the
    single product goes straight into the 32-bit accumulator add.
    """
    if groups == 1:
        return [32]
    widths = [16] * groups
    level = [(16, g) for g in range(groups)]  # (width, leaf carried unchanged or None)
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        width = max(node[0] for node in level)
        for pair in pairs:
            for node_width, leaf in pair:
                if len(pair) == 2 and leaf is not None and node_width < width:
                    widths[leaf] = width
        level = [(width + 1, None) if len(pair) == 2 else pair[0] for pair in pairs]
    return widths


def _adder_tree(values: list):
    """Sum of `values` as a balanced tree of two-input adders, depth ceil(log2(len(values))).

    Pairs are added level by level; an odd one out is carried up unchanged (see
    `product_widths` for the register widths that keep every adder's operands equal).
    """
    while len(values) > 1:
        pairs = [values[i : i + 2] for i in range(0, len(values), 2)]
        values = [pair[0] + pair[1] if len(pair) == 2 else pair[0] for pair in pairs]
    return values[0]


def _sign_extend(value, width: int):
    """Signed `value` sign-extended to `width` bits by an explicit concatenation."""
    return Cat(value, value[-1].replicate(width - len(value))).as_signed()


class SparseEngine(wiring.Component):
    """G x C int8 MACs that multiply only the nonzeros of W; see the module docstring.

    Parameters
    ----------
    config:
        Supplies ``cols`` (C), ``sparse_lanes`` (P = G * C) and ``sparse_depth`` (rows of X per
        bank, the largest K of one pass).
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        config.require_sparse_engine("SparseEngine")
        self.config = config
        super().__init__(
            {
                "acts": In(stream.Signature(activation_layout(config.cols))),
                "nonzeros": In(stream.Signature(nonzeros_layout(config))),
                "out": Out(stream.Signature(output_layout(config.cols))),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        config = self.config
        cols, groups, depth = config.cols, config.sparse_groups, config.sparse_depth
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)

        # Two banks of `depth` rows of C int8 activations; G read ports, one per nonzero lane.
        buffer = memory.Memory(shape=unsigned(8 * cols), depth=2 * depth, init=[])
        m.submodules.buffer = buffer
        write = buffer.write_port()
        reads = [buffer.read_port() for _ in range(groups)]

        # Bank state: LOADED flags, the number of rows each bank holds, the two bank pointers.
        loaded = [Signal(name=f"bank{b}_loaded") for b in range(2)]
        rows_held = [Signal(range(depth + 1), name=f"bank{b}_rows") for b in range(2)]
        load_bank, use_bank = Signal(), Signal()
        load_row = Signal(range(depth + 1))

        m.d.comb += self.acts.ready.eq(~Mux(load_bank, loaded[1], loaded[0]))
        act_take = self.acts.valid & self.acts.ready
        overlong = load_row == depth
        m.d.comb += [
            write.addr.eq(Cat(load_row[: index_bits(config)], load_bank)),
            write.data.eq(self.acts.payload.data.as_value()),
            write.en.eq(act_take & ~overlong),
        ]
        with m.If(act_take):
            with m.If(self.acts.payload.last):
                m.d.sync += load_row.eq(0)
                m.d.sync += load_bank.eq(~load_bank)
                for b, selected in enumerate((~load_bank, load_bank)):
                    with m.If(selected):
                        m.d.sync += [
                            loaded[b].eq(1),
                            rows_held[b].eq(Mux(overlong, depth, load_row + 1)),
                        ]
            with m.Elif(~overlong):
                m.d.sync += load_row.eq(load_row + 1)
            with m.If(overlong):
                m.d.sync += self.error.eq(1)

        nonzeros = self.nonzeros
        use_loaded = Mux(use_bank, loaded[1], loaded[0])
        m.d.comb += nonzeros.ready.eq(advance & use_loaded)
        take = nonzeros.valid & nonzeros.ready
        entries = nonzeros.payload.entries
        held = Mux(use_bank, rows_held[1], rows_held[0])
        for g, port in enumerate(reads):
            m.d.comb += [port.addr.eq(Cat(entries[g].index, use_bank)), port.en.eq(advance)]
            # index >= held, with equal widths: index < depth always, so only held < depth counts.
            beyond = (held != depth) & (entries[g].index >= held[: index_bits(config)])
            with m.If(take & beyond):
                m.d.sync += self.error.eq(1)
        with m.If(take & nonzeros.payload.last):
            m.d.sync += use_bank.eq(~use_bank)
            for b, selected in enumerate((~use_bank, use_bank)):
                with m.If(selected):
                    m.d.sync += loaded[b].eq(0)

        core = Module()
        self._datapath(core, take, [port.data for port in reads])
        m.submodules.core = EnableInserter(advance)(core)
        return m

    def _datapath(self, m: Module, take, activation_rows: list) -> None:
        """Products and sums; every register here advances with ``advance``."""
        cols, groups = self.config.cols, self.config.sparse_groups
        payload = self.nonzeros.payload
        # Stage 1: the beat's values and flags, beside the bank rows being read for it.
        valid1, row_end1, last1 = Signal(), Signal(), Signal()
        values1 = [Signal(signed(8), name=f"value{g}") for g in range(groups)]
        m.d.sync += [valid1.eq(take), row_end1.eq(payload.row_end), last1.eq(payload.last)]
        m.d.sync += [values1[g].eq(payload.entries[g].value) for g in range(groups)]

        # Stage 2: G x C products (16 bits of value; see `product_widths` for the registers).
        valid2, row_end2, last2 = Signal(), Signal(), Signal()
        widths = product_widths(groups)
        products = [
            [Signal(signed(widths[g]), name=f"product{g}_{c}") for c in range(cols)]
            for g in range(groups)
        ]
        m.d.sync += [valid2.eq(valid1), row_end2.eq(row_end1), last2.eq(last1)]
        for g in range(groups):
            row = activation_rows[g]
            for c in range(cols):
                x = row[8 * c : 8 * c + 8].as_signed()
                m.d.sync += products[g][c].eq(values1[g] * x)

        # Stage 3: the row's running sums; a finished row goes to the output register.
        fresh = Signal(init=1)  # the next beat starts a new row
        sums = [Signal(signed(32), name=f"sum{c}") for c in range(cols)]
        out_valid = Signal()
        m.d.comb += self.out.valid.eq(out_valid)
        m.d.sync += out_valid.eq(valid2 & row_end2)
        with m.If(valid2):
            m.d.sync += fresh.eq(row_end2)
            with m.If(row_end2):
                m.d.sync += self.out.payload.last.eq(last2)
        for c in range(cols):
            column = _adder_tree([products[g][c] for g in range(groups)])
            if len(column) < 32:
                column = _sign_extend(column, 32)
            total = Signal(signed(32), name=f"total{c}")
            m.d.comb += total.eq(Mux(fresh, 0, sums[c]) + column)
            with m.If(valid2):
                m.d.sync += sums[c].eq(total)
                with m.If(row_end2):
                    m.d.sync += self.out.payload.data[c].eq(total)
