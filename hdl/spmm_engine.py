"""The SPMM engine: one sparse-engine pass from main memory and the weight scratchpad.

Each ``cmd`` beat is one SPMM instruction's fields (docs/isa.md): the X block is weight-scratchpad
rows ``x_row`` .. ``x_row + k - 1`` (C int8 each), read through ``x_req``/``x_data`` into the
`hdl.sparse.SparseEngine`'s ``acts`` stream; ``nz_beats`` packed ``nonzeros`` beats are read
from main memory at ``nz_addr`` by an embedded `hdl.dma_load.LoadDma` (one beat per
`hdl.sparse.nonzero_beat_bytes` record, over ``req``/``rdata``); output row n of the engine goes to
accumulator row ``acc_row + n`` (``acc_write``), added or overwriting. ``done`` pulses when the
pass's last row (the engine's ``last``) has been written.

``macs`` is the number of useful multiply-accumulates the engine starts this cycle: C times the
nonzero values of the ``nonzeros`` beat it takes (padding entries are zeros).

The cache (``nz_cache``, `hdl.isa.NzCache`): ``config.sparse_cache_beats`` entries of one beat
each (block RAM). A FILL pass writes every beat it takes from memory to entry i (its position in
the pass); a REPLAY pass reads entries 0 .. ``nz_beats`` - 1 instead of memory, through a read
port and a 3-entry FIFO that keeps one beat a cycle under back-pressure (a read is issued while
the FIFO's beats plus the read in flight are fewer than 3; the first beat is ready 2 cycles
after the command). The checks keep ``nz_beats`` of a FILL or REPLAY within the cache.

A pass takes exactly ``nz_beats`` beats: the engine sees ``last`` (and ``row_end``) on beat
``nz_beats - 1`` and on no other, whatever the beats in memory hold, so a malformed stream
neither hangs the engine nor leaves beats for the next pass.

Errors (sticky until reset, for the controller to report): ``format_error`` when the sparse
engine flags its input (an index at or past k) or a beat's ``last`` disagrees with its position
(set before beat ``nz_beats - 1``, or clear on it) or the final beat lacks ``row_end``;
``range_error`` when an output row would fall past the accumulator memory (that row is
dropped). The pass always completes (every beat is taken, every row in range written), so
nothing hangs; after a format error the rows from the offending beat's row on hold garbage.
One command runs at a time; ``cmd.ready`` is high when the engine is idle.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.accumulator import accumulator_write_layout
from hdl.config import AccelConfig
from hdl.dma_load import LoadDma
from hdl.isa import DRAM_ADDRESS_BITS, ROWS_BITS, NzCache
from hdl.memport import request_layout
from hdl.scratchpad import row_index_bits
from hdl.sparse import SparseEngine, nonzero_beat_bytes, nonzeros_layout

#: ``nonzeros`` beats (read bursts) the engine's reader keeps in flight.
NONZERO_READS = 32

#: Beats of the FIFO between the cache's read port and the engine.
REPLAY_FIFO = 3


def spmm_command_layout(wgt_rows: int, acc_rows: int) -> data.StructLayout:
    """Payload of ``cmd``: the SPMM fields with row indices as wide as the memories need."""
    return data.StructLayout(
        {
            "nz_addr": DRAM_ADDRESS_BITS,
            "nz_beats": 20,
            "x_row": row_index_bits(wgt_rows),
            "k": ROWS_BITS,
            "acc_row": row_index_bits(acc_rows),
            "accumulate": 1,
            "nz_cache": 2,
        }
    )


class SpmmEngine(wiring.Component):
    """SPMM instructions through the sparse engine; see the module docstring.

    Parameters
    ----------
    config: the sparse engine (cols, sparse_lanes, sparse_depth) and bus width.
    wgt_rows, acc_rows: rows of the weight scratchpad and the accumulator memory.
    """

    def __init__(self, config: AccelConfig, wgt_rows: int, acc_rows: int):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        config.require_sparse_engine("SpmmEngine")
        self.config, self.wgt_rows, self.acc_rows = config, wgt_rows, acc_rows
        cols = config.cols
        super().__init__(
            {
                "cmd": In(stream.Signature(spmm_command_layout(wgt_rows, acc_rows))),
                "x_req": Out(stream.Signature(unsigned(row_index_bits(wgt_rows)))),
                "x_data": In(stream.Signature(data.ArrayLayout(unsigned(8), cols))),
                "req": Out(stream.Signature(request_layout())),
                "rdata": In(stream.Signature(unsigned(8 * config.bus_bytes))),
                "acc_write": Out(stream.Signature(accumulator_write_layout(cols, acc_rows))),
                "done": Out(1),
                "busy": Out(1),
                "macs": Out(range(config.sparse_lanes + 1)),
                "format_error": Out(1),
                "range_error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        config = self.config
        beat_bytes = nonzero_beat_bytes(config)
        m.submodules.sparse = sparse = SparseEngine(config)
        m.submodules.reader = reader = LoadDma(
            config.bus_bytes,
            beat_bytes,
            2,
            outstanding=NONZERO_READS,
            address_bits=config.address_bits,  # checked: nonzeros lie below mem_bytes
        )
        wiring.connect(m, reader.req, wiring.flipped(self.req))
        wiring.connect(m, wiring.flipped(self.rdata), reader.rdata)

        busy = Signal()
        command = Signal(spmm_command_layout(self.wgt_rows, self.acc_rows))
        m.d.comb += [self.cmd.ready.eq(~busy), self.busy.eq(busy)]
        start = self.cmd.valid & self.cmd.ready
        reader_pending = Signal()
        x_left = Signal(ROWS_BITS + 1)
        x_row = Signal.like(self.x_req.payload)
        replay = command.nz_cache == NzCache.REPLAY
        with m.If(start):
            m.d.sync += [
                busy.eq(1),
                command.eq(self.cmd.payload),
                reader_pending.eq(self.cmd.payload.nz_cache != NzCache.REPLAY),
                x_left.eq(self.cmd.payload.k),
                x_row.eq(self.cmd.payload.x_row),
            ]

        # The nonzeros: nz_beats records of beat_bytes from nz_addr, straight into the engine.
        dma = reader.cmd.payload
        m.d.comb += [
            reader.cmd.valid.eq(reader_pending),
            dma.dram_addr.eq(command.nz_addr),
            dma.dram_stride.eq(beat_bytes),
            dma.rows.eq(command.nz_beats),
            dma.spad_row.eq(0),
            dma.width.eq(beat_bytes),
        ]
        with m.If(reader.cmd.valid & reader.cmd.ready):
            m.d.sync += reader_pending.eq(0)
        # The pass is nz_beats beats whatever their flags say: the final one ends the row and the
        # matrix (so a stream without `last`, or with it too early, neither hangs the engine nor
        # leaves beats behind), and a beat whose `last` disagrees, or a final beat without
        # `row_end`, is a format error.
        layout = nonzeros_layout(config)
        cache, replayed = self._replay(m, start, command.nz_beats, layout.size)
        incoming = Signal(layout.size)
        m.d.comb += incoming.eq(
            Mux(replay, replayed.r_data, reader.write.payload.data.as_value()[: layout.size])
        )
        beat = data.View(layout, incoming)
        beats_taken = Signal(len(command.nz_beats))
        final = beats_taken == command.nz_beats - 1
        taken = sparse.nonzeros.valid & sparse.nonzeros.ready
        stream_error = Signal()
        m.d.comb += [
            sparse.nonzeros.valid.eq(Mux(replay, replayed.r_rdy, reader.write.valid)),
            sparse.nonzeros.payload.entries.eq(beat.entries),
            sparse.nonzeros.payload.row_end.eq(beat.row_end | final),
            sparse.nonzeros.payload.last.eq(final),
            reader.write.ready.eq(sparse.nonzeros.ready & ~replay),
            replayed.r_en.eq(sparse.nonzeros.ready & replay),
        ]
        fill = cache.write_port()
        m.d.comb += [
            fill.addr.eq(beats_taken[: len(fill.addr)]),  # the checks bound nz_beats by the cache
            fill.data.eq(incoming),
            fill.en.eq(taken & (command.nz_cache == NzCache.FILL)),
        ]
        with m.If(taken):
            m.d.sync += beats_taken.eq(Mux(final, 0, beats_taken + 1))
            with m.If((beat.last != final) | (final & ~beat.row_end)):
                m.d.sync += stream_error.eq(1)

        nonzero = sum(beat.entries[g].value != 0 for g in range(config.sparse_groups))
        m.d.comb += self.macs.eq(Mux(taken, nonzero * config.cols, 0))

        # The X block: k weight-scratchpad rows, `last` on the final one.
        m.d.comb += [self.x_req.valid.eq(busy & (x_left != 0)), self.x_req.payload.eq(x_row)]
        with m.If(self.x_req.valid & self.x_req.ready):
            m.d.sync += [x_row.eq(x_row + 1), x_left.eq(x_left - 1)]
        x_sent = Signal(ROWS_BITS)
        x_last = x_sent == command.k - 1
        m.d.comb += [
            sparse.acts.valid.eq(self.x_data.valid),
            sparse.acts.payload.data.eq(self.x_data.payload),
            sparse.acts.payload.last.eq(x_last),
            self.x_data.ready.eq(sparse.acts.ready),
        ]
        with m.If(sparse.acts.valid & sparse.acts.ready):
            m.d.sync += x_sent.eq(x_sent + 1)
            with m.If(x_last):
                m.d.sync += x_sent.eq(0)

        # Output rows to the accumulator memory; a row past its end is dropped and flagged.
        row = Signal(ROWS_BITS + 1)
        target = command.acc_row + row
        inside = target < self.acc_rows
        write = self.acc_write
        m.d.comb += [
            write.valid.eq(sparse.out.valid & inside),
            write.payload.row.eq(target),
            write.payload.data.eq(sparse.out.payload.data),
            write.payload.accumulate.eq(command.accumulate),
            sparse.out.ready.eq(write.ready | ~inside),
        ]
        with m.If(sparse.out.valid & sparse.out.ready):
            m.d.sync += row.eq(row + 1)
            with m.If(~inside):
                m.d.sync += self.range_error.eq(1)
            with m.If(sparse.out.payload.last):
                m.d.sync += [row.eq(0), busy.eq(0)]
                m.d.comb += self.done.eq(1)
        m.d.comb += self.format_error.eq(sparse.error | stream_error)
        return m

    def _replay(self, m: Module, start, beats, width: int) -> tuple[Memory, SyncFIFO]:
        """The cache and the reader of a REPLAY pass: from `start`, `beats` entries from 0 up,
        one read a cycle while the FIFO has room for it; returns the cache and the FIFO the
        beats leave by."""
        depth = self.config.sparse_cache_beats
        m.submodules.cache = cache = Memory(shape=width, depth=depth, init=[])
        m.submodules.replay_fifo = fifo = SyncFIFO(width=width, depth=REPLAY_FIFO)
        read = cache.read_port()
        left = Signal.like(beats)
        address = Signal(range(depth))
        in_flight = Signal()
        issue = (left != 0) & (fifo.level + in_flight < REPLAY_FIFO)
        m.d.comb += [read.addr.eq(address), read.en.eq(issue)]
        m.d.sync += in_flight.eq(issue)
        with m.If(issue):
            m.d.sync += [address.eq(address + 1), left.eq(left - 1)]
        with m.If(start & (self.cmd.payload.nz_cache == NzCache.REPLAY)):
            m.d.sync += [address.eq(0), left.eq(self.cmd.payload.nz_beats)]
        m.d.comb += [fifo.w_en.eq(in_flight), fifo.w_data.eq(read.data)]
        return cache, fifo
