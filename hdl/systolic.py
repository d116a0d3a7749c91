"""The R x C systolic int8 array, weight- or output-stationary, with skew and deskew inside.

Users send and receive plain row vectors over `amaranth.lib.stream` ports (valid/ready); the
diagonal input skew and output deskew are inside. All state, PEs included, advances only when
the output can move (``advance = ~out.valid | out.ready``): back-pressure freezes the whole array,
so nothing is lost or duplicated, and an idle input cycle enters the array as a bubble of zeros.

Weight-stationary (``AccelConfig.dataflow == "ws"``)
    ``weights``: R beats per tile, beat r = row r of an R x C weight tile (K-tile x N-tile).
    ``acts``: one activation row (R int8 values, the K-tile of one row of A) per beat, ``last`` on
    the tile's final row. ``out``: one row of C int32 partial sums per activation row, ``last``
    on the tile's final row. Weights are double-buffered: tile i+1 loads into the other bank
    while tile i computes; a bank is reloaded once its tile's last row has passed every PE.
    Latency: an activation row accepted in cycle t is presented on ``out`` in cycle t + R + C + 1.

Output-stationary (``"os"``)
    ``operands``: K beats per tile, beat k = column k of an R-row A tile (``a``) and row k of a
    C-column B tile (``b``), ``last`` on k = K-1. ``out``: the R x C int32 tile, one row per beat,
    rows 0..R-1, ``last`` on row R-1. Each PE keeps its accumulator and restarts it at a tile's
    end; finished sums move to a per-column output chain while the next tile computes. A new tile
    may end (its ``last`` beat) R cycles after the previous one ended at the earliest: with K < R
    ``operands.ready`` stays low for a ``last`` beat that comes too early (ready depends on the
    payload's ``last`` flag).
    Latency: row r of a tile whose last beat is accepted in cycle t is presented in cycle
    t + R + C + 2 + r.

Partial tiles are the user's padding: rows/columns beyond M, N or K are sent as zeros and the
corresponding outputs dropped (see `sim.array_program`). Cycle counts of whole GEMMs follow
closed forms in `sim.cycles` and docs/systolic-array.md.
"""

from amaranth.hdl import Cat, Const, EnableInserter, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.config import AccelConfig, Dataflow
from hdl.pe import OutputStationaryPE, WeightStationaryPE


def output_layout(cols: int) -> data.StructLayout:
    """Payload of the ``out`` stream: C int32 values and the tile's ``last`` flag."""
    return data.StructLayout({"data": data.ArrayLayout(signed(32), cols), "last": 1})


def activation_layout(rows: int) -> data.StructLayout:
    """Payload of the weight-stationary ``acts`` stream."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), rows), "last": 1})


def weight_layout(cols: int) -> data.ArrayLayout:
    """Payload of the weight-stationary ``weights`` stream: one weight row."""
    return data.ArrayLayout(signed(8), cols)


def operand_layout(rows: int, cols: int) -> data.StructLayout:
    """Payload of the output-stationary ``operands`` stream."""
    return data.StructLayout(
        {
            "a": data.ArrayLayout(signed(8), rows),
            "b": data.ArrayLayout(signed(8), cols),
            "last": 1,
        }
    )


def _or_zero(condition, value):
    """``value`` when ``condition``, else zero."""
    return Mux(condition, value, 0)


def _delayed(m: Module, signal, cycles: int, name: str):
    """`signal` through `cycles` sync registers (the signal itself for 0)."""
    for stage in range(cycles):
        register = Signal.like(signal, name=f"{name}_d{stage}")
        m.d.sync += register.eq(signal)
        signal = register
    return signal


class SystolicArray(wiring.Component):
    """R x C int8 systolic array with int32 accumulation; ports depend on the dataflow.

    Parameters
    ----------
    config:
        Supplies ``rows`` (R), ``cols`` (C) and ``dataflow``; see the module docstring for the
        ports, flow control and exact latencies.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        rows, cols = config.rows, config.cols
        members = {"out": Out(stream.Signature(output_layout(cols)))}
        if config.dataflow is Dataflow.WS:
            members["weights"] = In(stream.Signature(weight_layout(cols)))
            members["acts"] = In(stream.Signature(activation_layout(rows)))
        else:
            members["operands"] = In(stream.Signature(operand_layout(rows, cols)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        core = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)
        if self.config.dataflow is Dataflow.WS:
            self._weight_stationary(core, advance)
        else:
            self._output_stationary(core, advance)
        m.submodules.core = EnableInserter(advance)(core)
        return m

    def _weight_stationary(self, m: Module, advance: Signal) -> None:
        rows, cols = self.config.rows, self.config.cols
        # Bank b is FREE when neither flag is set, LOADED, or DRAINING (its last row in flight).
        loaded = [Signal(name=f"bank{b}_loaded") for b in range(2)]
        draining = [Signal(name=f"bank{b}_draining") for b in range(2)]
        load_bank, act_bank = Signal(), Signal()
        load_row = Signal(rows, init=1)  # one-hot: the weight row the next beat writes

        load_free = Mux(load_bank, ~loaded[1] & ~draining[1], ~loaded[0] & ~draining[0])
        m.d.comb += [
            self.weights.ready.eq(advance & load_free),
            self.acts.ready.eq(advance & Mux(act_bank, loaded[1], loaded[0])),
        ]
        weight_load = self.weights.valid & self.weights.ready
        act_take = self.acts.valid & self.acts.ready
        act_last = act_take & self.acts.payload.last

        # Input register: a bubble (no transfer) enters as zeros.
        a_in = [Signal(signed(8), name=f"a_in{r}") for r in range(rows)]
        bank_in = Signal()
        for r in range(rows):
            m.d.sync += a_in[r].eq(_or_zero(act_take, self.acts.payload.data[r]))
        m.d.sync += bank_in.eq(act_bank)

        # Token line: (valid, last, bank) of each accepted row, aligned with its output.
        depth = rows + cols
        token_valid = [Signal(name=f"tok_valid{p}") for p in range(depth + 1)]
        token_last = [Signal(name=f"tok_last{p}") for p in range(depth + 1)]
        token_bank = [Signal(name=f"tok_bank{p}") for p in range(depth + 1)]
        m.d.sync += [
            token_valid[0].eq(act_take),
            token_last[0].eq(act_last),
            token_bank[0].eq(act_bank),
        ]
        for p in range(1, depth + 1):
            m.d.sync += [
                token_valid[p].eq(token_valid[p - 1]),
                token_last[p].eq(token_last[p - 1]),
                token_bank[p].eq(token_bank[p - 1]),
            ]
        # The last row of a tile reaches the last PE's a_in while its token is at depth - 2; the
        # PE reads its weight in the next cycle, whose edge is the first a reload can write at.
        drained = token_valid[depth - 2] & token_last[depth - 2]

        tile_loaded = weight_load & load_row[rows - 1]
        for b, selected in enumerate((~load_bank, load_bank)):
            with m.If(tile_loaded & selected):
                m.d.sync += loaded[b].eq(1)
        for b, selected in enumerate((~act_bank, act_bank)):
            with m.If(act_last & selected):
                m.d.sync += [loaded[b].eq(0), draining[b].eq(1)]
        for b, selected in enumerate((~token_bank[depth - 2], token_bank[depth - 2])):
            with m.If(drained & selected):
                m.d.sync += draining[b].eq(0)
        with m.If(weight_load):
            m.d.sync += load_row.eq(load_row.rotate_left(1))
            with m.If(load_row[rows - 1]):
                m.d.sync += load_bank.eq(~load_bank)
        with m.If(act_last):
            m.d.sync += act_bank.eq(~act_bank)

        pes = [[WeightStationaryPE() for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            write_row = Signal(2, name=f"weight_we{r}")
            m.d.comb += write_row.eq(
                Cat(weight_load & load_row[r] & ~load_bank, weight_load & load_row[r] & load_bank)
            )
            a_left = _delayed(m, a_in[r], r, f"skew_a{r}")
            bank_left = _delayed(m, bank_in, r, f"skew_bank{r}")
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.weight_data.eq(self.weights.payload[c]),
                    pe.weight_we.eq(write_row),
                    pe.a_in.eq(a_left if c == 0 else pes[r][c - 1].a_out),
                    pe.bank_in.eq(bank_left if c == 0 else pes[r][c - 1].bank_out),
                    pe.psum_in.eq(0 if r == 0 else pes[r - 1][c].psum_out),
                ]
        for c in range(cols):
            bottom = pes[rows - 1][c].psum_out
            m.d.comb += self.out.payload.data[c].eq(_delayed(m, bottom, cols - 1 - c, f"deskew{c}"))
        m.d.comb += [
            self.out.valid.eq(token_valid[depth]),
            self.out.payload.last.eq(token_last[depth]),
        ]

    def _output_stationary(self, m: Module, advance: Signal) -> None:
        rows, cols = self.config.rows, self.config.cols
        operands = self.operands

        # A tile's last beat may enter only R cycles after the previous tile's last beat: a PE
        # keeps its result until the next tile's last product, and the output chain needs R
        # cycles to empty (this also keeps the output tokens of two tiles apart).
        since_last = Signal(range(rows + 1), init=rows)
        m.d.comb += operands.ready.eq(advance & (~operands.payload.last | (since_last >= rows)))
        take = operands.valid & operands.ready
        take_last = take & operands.payload.last
        with m.If(take_last):
            m.d.sync += since_last.eq(1)
        with m.Elif(since_last < rows):
            m.d.sync += since_last.eq(since_last + 1)

        a_in = [Signal(signed(8), name=f"a_in{r}") for r in range(rows)]
        b_in = [Signal(signed(8), name=f"b_in{c}") for c in range(cols)]
        last_in = Signal()
        for r in range(rows):
            m.d.sync += a_in[r].eq(_or_zero(take, operands.payload.a[r]))
        for c in range(cols):
            m.d.sync += b_in[c].eq(_or_zero(take, operands.payload.b[c]))
        m.d.sync += last_in.eq(take_last)

        pes = [[OutputStationaryPE() for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            a_left = _delayed(m, a_in[r], r, f"skew_a{r}")
            last_left = _delayed(m, last_in, r, f"skew_last{r}")
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.a_in.eq(a_left if c == 0 else pes[r][c - 1].a_out),
                    pe.last_in.eq(last_left if c == 0 else pes[r][c - 1].last_out),
                ]
        for c in range(cols):
            b_top = _delayed(m, b_in[c], c, f"skew_b{c}")
            for r in range(rows):
                m.d.comb += pes[r][c].b_in.eq(b_top if r == 0 else pes[r - 1][c].b_out)

        # Per column, finished sums load in parallel into a chain that shifts toward row 0.
        for c in range(cols):
            load = Signal(name=f"chain_load{c}")
            m.d.sync += load.eq(pes[rows - 1][c].last_out)
            chain = [Signal(signed(32), name=f"chain{c}_{r}") for r in range(rows)]
            for r in range(rows):
                with m.If(load):
                    m.d.sync += chain[r].eq(pes[r][c].result)
                with m.Else():
                    m.d.sync += chain[r].eq(chain[r + 1] if r + 1 < rows else 0)
            m.d.comb += self.out.payload.data[c].eq(
                _delayed(m, chain[0], cols - 1 - c, f"deskew{c}")
            )

        # Token line from a tile's last beat: rows 0..R-1 are presented at depths R+C+1+r.
        first = rows + cols + 1
        depth = first + rows - 1
        token = [Signal(name=f"tok{p}") for p in range(depth + 1)]
        m.d.sync += token[0].eq(take_last)
        for p in range(1, depth + 1):
            m.d.sync += token[p].eq(token[p - 1])
        valid = Const(0)
        for p in range(first, depth + 1):
            valid = valid | token[p]
        m.d.comb += [self.out.valid.eq(valid), self.out.payload.last.eq(token[depth])]
