"""The MATMUL engine: scratchpad rows through the systolic array into the accumulator memory.

Each ``cmd`` beat is one MATMUL instruction's fields (docs/isa.md). The engine reads the operand
rows from the two scratchpads (their ``read_req``/``read_data`` pairs, `hdl.scratchpad`), streams
them into its `hdl.systolic.SystolicArray`, and writes every output row to the accumulator memory
(`hdl.accumulator` ``write`` stream), adding to it or overwriting it.

Weight-stationary
    Weight rows ``wgt_row`` .. ``wgt_row + R - 1`` load the array's free weight bank; activation
    rows ``act_row`` .. ``act_row + rows - 1`` stream through it; output row m goes to accumulator
    row ``acc_row + m``. The weight reader, the activation reader and the output writer each work
    through the commands in order on their own, so the next command's weights load while the
    current one's activations stream (the array's double-buffered banks keep them apart) and
    back-to-back commands keep the array busy.
Output-stationary
    Activation row ``act_row + k`` (column k of an R-row A tile) and weight row ``wgt_row + k``
    (row k of a C-column B tile), k < ``rows``, are read together as one ``operands`` beat; the
    tile's R output rows go to accumulator rows ``acc_row`` .. ``acc_row + R - 1``.

``done`` pulses when a command's last output row has been written. Commands are taken into three
internal queues of `QUEUE_DEPTH` entries, each keeping only the fields its reader or writer uses
(`QUEUE_FIELDS`); ``cmd.ready`` is low while any is full. The engine assumes the controller has
checked every row range (docs/isa.md, `hdl.isa.check_program`), so ``rows`` is at most
``act_rows`` and only as wide as that needs.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.accumulator import accumulator_write_layout
from hdl.config import AccelConfig, Dataflow
from hdl.scratchpad import row_index_bits
from hdl.systolic import SystolicArray

#: Commands each of the engine's internal queues holds.
QUEUE_DEPTH = 4

#: The command fields each internal queue keeps, per dataflow: what its reader (weights, acts)
#: or the output writer (outputs) reads. Output-stationary reads both operands in one reader.
QUEUE_FIELDS = {
    Dataflow.WS: {
        "weights": ("wgt_row",),
        "acts": ("act_row", "rows"),
        "outputs": ("acc_row", "accumulate"),
    },
    Dataflow.OS: {
        "acts": ("act_row", "wgt_row", "rows"),
        "outputs": ("acc_row", "accumulate"),
    },
}


def matmul_command_layout(act_rows: int, wgt_rows: int, acc_rows: int) -> data.StructLayout:
    """Payload of ``cmd``: the MATMUL fields with row indices as wide as the memories need
    (``rows``, checked against the activation scratchpad, as wide as ``act_rows``)."""
    return data.StructLayout(
        {
            "act_row": row_index_bits(act_rows),
            "wgt_row": row_index_bits(wgt_rows),
            "rows": act_rows.bit_length(),
            "acc_row": row_index_bits(acc_rows),
            "accumulate": 1,
        }
    )


class _ShiftQueue(Elaboratable):
    """A FIFO of `depth` (at least 3) entries of `width` bits with the ports and timing of
    `amaranth.lib.fifo.SyncFIFOBuffered` of that depth: ``w_rdy`` while fewer than `depth`
    entries are held, and an entry written in cycle t is ``r_rdy`` from cycle t + 2 at the
    earliest. (At depth 2 that FIFO also refuses a write in the cycle after one into its empty
    inner queue; this one does not.)

    The entries are a shift register: the head is always entry 0 and a read moves the others one
    place toward it, so there is no read multiplexer and a stored bit is a register behind one
    2-input multiplexer (a FPGA logic cell each).
    """

    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        entries = [Signal(self.width, name=f"entry{k}", reset_less=True) for k in range(depth)]
        held = Signal(depth)  # held[k]: entry k holds one (a run from entry 0)
        write, read = self.w_en & self.w_rdy, self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(~held[-1]), self.r_data.eq(entries[0])]
        # Readable next cycle: an entry held now is left after this cycle's read.
        m.d.sync += self.r_rdy.eq(Mux(read, held[1], held[0]))
        for k in range(depth):
            below = held[k - 1] if k else Const(1)
            above = held[k + 1] if k + 1 < depth else Const(0)
            # The written entry lands behind the last one left after the read.
            arrives = write & Mux(read, held[k] & ~above, below & ~held[k])
            if k + 1 < depth:
                with m.If(read | arrives):
                    m.d.sync += entries[k].eq(Mux(arrives, self.w_data, entries[k + 1]))
            else:
                with m.If(arrives):
                    m.d.sync += entries[k].eq(self.w_data)
            m.d.sync += held[k].eq(Mux(read, above | (write & held[k]), held[k] | (write & below)))
        return m


class _CommandQueue(_ShiftQueue):
    """`QUEUE_DEPTH` commands, each only the `fields` of a ``cmd`` `payload` (written by
    `push`); ``command`` is the head entry seen through those fields' layout."""

    def __init__(self, payload, fields):
        members = payload.shape().members
        layout = data.StructLayout({field: members[field] for field in fields})
        super().__init__(layout.size, QUEUE_DEPTH)
        self.payload, self.fields = payload, fields
        self.command = data.View(layout, self.r_data)

    def push(self, enable) -> list:
        """Statements: write the payload's fields when `enable`."""
        return [
            self.w_data.eq(Cat(self.payload[field] for field in self.fields)),
            self.w_en.eq(enable),
        ]


class _RowReader:
    """Issues ``read_req`` for consecutive rows, one queued command at a time.

    Requests go out while the reader is busy and `gate` is high (a gate lets two readers move in
    lockstep); each accepted request steps to the next row.
    """

    def __init__(self, m: Module, name: str, queue, read_req, most: int):
        """`queue` is a `_CommandQueue`; `most` the largest row count of a command."""
        self.command = queue.command
        self.next_row = Signal.like(read_req.payload, name=f"{name}_row")
        self.left = Signal(range(most + 1), name=f"{name}_left")
        self.busy = Signal(name=f"{name}_busy")
        self.m, self.queue, self.read_req = m, queue, read_req

    def run(self, first, count, gate=1) -> None:
        """Start on the queue's head command when idle (`first` row, `count` rows of it)."""
        m = self.m
        m.d.comb += [
            self.read_req.valid.eq(self.busy & gate),
            self.read_req.payload.eq(self.next_row),
        ]
        step = self.read_req.valid & self.read_req.ready
        finishing = step & (self.left == 1)
        with m.If(step):
            m.d.sync += [self.next_row.eq(self.next_row + 1), self.left.eq(self.left - 1)]
        with m.If(finishing):
            m.d.sync += self.busy.eq(0)
        # The next command starts in the cycle the current one issues its last request.
        with m.If((~self.busy | finishing) & self.queue.r_rdy):
            m.d.comb += self.queue.r_en.eq(1)
            m.d.sync += [self.busy.eq(1), self.next_row.eq(first), self.left.eq(count)]


def _last_of_command(m: Module, name: str, reader: _RowReader, moved) -> Signal:
    """``last`` for the beats a reader's rows become: high on each command's final beat.

    The reader's command sizes wait in a small queue until their beats have entered the array
    (`moved` marks a beat entering); the returned signal is low while no size is queued.
    """
    width = len(reader.command.rows)
    sizes = _ShiftQueue(width, QUEUE_DEPTH)
    m.submodules[f"{name}_sizes"] = sizes
    m.d.comb += [sizes.w_data.eq(reader.command.rows), sizes.w_en.eq(reader.queue.r_en)]
    entered = Signal(width, name=f"{name}_entered")
    last = Signal(name=f"{name}_last")
    m.d.comb += last.eq(sizes.r_rdy & (entered == sizes.r_data - 1))
    with m.If(moved):
        m.d.sync += entered.eq(entered + 1)
        with m.If(last):
            m.d.sync += entered.eq(0)
            m.d.comb += sizes.r_en.eq(1)
    return last


class MatmulEngine(wiring.Component):
    """MATMUL commands from scratchpads to the accumulator memory; see the module docstring.

    Parameters
    ----------
    config: the array (rows R, cols C, dataflow).
    act_rows, wgt_rows: rows of the activation (R bytes each) and weight (C bytes) scratchpads.
    acc_rows: rows of the accumulator memory.
    """

    def __init__(self, config: AccelConfig, act_rows: int, wgt_rows: int, acc_rows: int):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        rows, cols = config.rows, config.cols
        self.sizes = (act_rows, wgt_rows, acc_rows)
        super().__init__(
            {
                "cmd": In(stream.Signature(matmul_command_layout(act_rows, wgt_rows, acc_rows))),
                "act_req": Out(stream.Signature(unsigned(row_index_bits(act_rows)))),
                "act_data": In(stream.Signature(data.ArrayLayout(unsigned(8), rows))),
                "wgt_req": Out(stream.Signature(unsigned(row_index_bits(wgt_rows)))),
                "wgt_data": In(stream.Signature(data.ArrayLayout(unsigned(8), cols))),
                "acc_write": Out(stream.Signature(accumulator_write_layout(cols, acc_rows))),
                "done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.array = array = SystolicArray(config)
        queues = {}
        all_ready = 1
        for name, fields in QUEUE_FIELDS[config.dataflow].items():
            queues[name] = queue = _CommandQueue(self.cmd.payload, fields)
            m.submodules[f"{name}_queue"] = queue
            m.d.comb += queue.push(self.cmd.valid & self.cmd.ready)
            all_ready &= queue.w_rdy
        m.d.comb += self.cmd.ready.eq(all_ready)
        if config.dataflow is Dataflow.WS:
            self._weight_stationary(m, array, queues)
        else:
            self._output_stationary(m, array, queues)
        return m

    def _weight_stationary(self, m, array, queues) -> None:
        rows = self.config.rows
        act_rows = self.sizes[0]
        weights = _RowReader(m, "weights", queues["weights"], self.wgt_req, rows)
        weights.run(weights.command.wgt_row, rows)
        m.d.comb += [
            array.weights.valid.eq(self.wgt_data.valid),
            array.weights.payload.eq(self.wgt_data.payload),
            self.wgt_data.ready.eq(array.weights.ready),
        ]
        acts = _RowReader(m, "acts", queues["acts"], self.act_req, act_rows)
        acts.run(acts.command.act_row, acts.command.rows)
        moved = array.acts.valid & array.acts.ready
        last = _last_of_command(m, "acts", acts, moved)
        m.d.comb += [
            array.acts.valid.eq(self.act_data.valid),
            array.acts.payload.data.eq(self.act_data.payload),
            array.acts.payload.last.eq(last),
            self.act_data.ready.eq(array.acts.ready),
        ]
        self._write_outputs(m, array, queues["outputs"], act_rows)

    def _output_stationary(self, m, array, queues) -> None:
        # One reader walks both scratchpads in lockstep: a request goes out only when both
        # scratchpads take it in the same cycle.
        both = self.act_req.ready & self.wgt_req.ready
        operands = _RowReader(m, "operands", queues["acts"], self.act_req, self.sizes[0])
        operands.run(operands.command.act_row, operands.command.rows, gate=both)
        wgt_row = Signal.like(self.wgt_req.payload)
        with m.If(self.act_req.valid & self.act_req.ready):
            m.d.sync += wgt_row.eq(wgt_row + 1)
        with m.If(queues["acts"].r_en):  # a new command, possibly right after the last request
            m.d.sync += wgt_row.eq(operands.command.wgt_row)
        m.d.comb += [self.wgt_req.valid.eq(self.act_req.valid), self.wgt_req.payload.eq(wgt_row)]
        # The two rows of a beat arrive together and leave together.
        moved = array.operands.valid & array.operands.ready
        last = _last_of_command(m, "operands", operands, moved)
        m.d.comb += [
            array.operands.valid.eq(self.act_data.valid & self.wgt_data.valid),
            array.operands.payload.a.eq(self.act_data.payload),
            array.operands.payload.b.eq(self.wgt_data.payload),
            array.operands.payload.last.eq(last),
            self.act_data.ready.eq(moved),
            self.wgt_data.ready.eq(moved),
        ]
        self._write_outputs(m, array, queues["outputs"], self.config.rows)

    def _write_outputs(self, m, array, queue, most) -> None:
        """Output row i of the head command goes to accumulator row acc_row + i; a command has
        ``rows`` output rows (weight-stationary, at most `most`) or R (output-stationary; `most`
        is R), the last of them flagged ``last`` by the array."""
        command = queue.command
        written = Signal(range(most))
        last = array.out.payload.last
        m.d.comb += [
            self.acc_write.valid.eq(array.out.valid & queue.r_rdy),
            self.acc_write.payload.row.eq(command.acc_row + written),
            self.acc_write.payload.data.eq(array.out.payload.data),
            self.acc_write.payload.accumulate.eq(command.accumulate),
            array.out.ready.eq(self.acc_write.ready & queue.r_rdy),
        ]
        with m.If(self.acc_write.valid & self.acc_write.ready):
            m.d.sync += written.eq(written + 1)
            with m.If(last):
                m.d.sync += written.eq(0)
                m.d.comb += [queue.r_en.eq(1), self.done.eq(1)]
