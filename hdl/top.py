"""The accelerator: command stream in, main memory out (ports: `hdl.top_ports`).

Blocks (docs/accelerator.md): an activation and a weight `Scratchpad`, the `AccumulatorMemory`,
the `MatmulEngine` (with the systolic array), the `Requantizer`, a `LoadDma` and a `StoreDma` on
one memory port through a `MemoryArbiter`, and the controller below.

Controller
    The dispatcher takes one 128-bit word per cycle from ``cmd``, checks it (docs/isa.md: the
    same rules and error codes as `hdl.isa.check_program`, in the same order) into a register
    and in the next cycle, at the earliest, appends it to the load, compute or store queue
    (`QUEUE_DEPTH` words each; a queue stores only the bits a checked word can have set,
    `hdl.checked_bits`). A FENCE is taken only when every
    queue is empty and every unit idle. The first bad word stops the dispatcher for good:
    ``error`` and ``error_index`` hold its code and index, nothing after it starts, and what is
    running or queued finishes (then ``idle`` rises), except queued instructions waiting for a
    token that can no longer come: once nothing runs and each queue is empty or waits at its
    head, ``idle`` rises with them unrun. The same frozen state with no error is DEADLOCK when
    no word to come could push a token: the dispatcher holds a good word it cannot queue (a
    FENCE, or its queue is full), or the program's final word (``cmd_last``) is in; its index is
    the dispatcher's position (the held word's index, or the program's length).
    Each queue's unit starts its head instruction once the dependency tokens it pops are there
    (four counters: load->compute, compute->load, compute->store, store->compute) and pushes its
    tokens when the instruction has finished:
    - load unit: LOAD_ACT / LOAD_WGT / LOAD_PARAMS through the load DMA into the activation or
      weight scratchpad or the requantizer's lanes (16-byte parameter records);
    - compute unit: MATMUL commands go to the engine back to back (it pipelines them); each
      one's tokens are pushed when its last output row is in the accumulator memory. An SPMM
      waits until no MATMUL is in flight, then runs alone on the `SpmmEngine` (which takes over
      the weight scratchpad's read port and the accumulator memory's write port);
    - store unit: accumulator rows, through the requantizer (int8) or raw (int32), to the store
      DMA.
    Errors found while running (SPMM: SPARSE_FORMAT, ACC_RANGE for an output row past the
    accumulator memory) stop the dispatcher the same way, with the index of that instruction.

Counters (`hdl.top_ports.COUNTERS`) count from reset, modulo ``2 ** config.counter_bits``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import fifo, wiring

from hdl.accumulator import AccumulatorMemory
from hdl.bram_fifo import BramFifo
from hdl.checked_bits import live_bits, pack, unpack
from hdl.config import AccelConfig
from hdl.dma_load import LoadDma
from hdl.dma_store import StoreDma
from hdl.isa import (
    PARAM_RECORD_BYTES,
    QUEUE_DEPTH,
    WORD_BITS,
    ErrorCode,
    Op,
    Queue,
    queue_ops,
    scratchpad_rows,
)
from hdl.matmul_engine import MatmulEngine
from hdl.mem_arbiter import MemoryArbiter
from hdl.memport import row_beats
from hdl.requant import Requantizer
from hdl.scratchpad import Scratchpad
from hdl.sparse import nonzero_beat_bytes
from hdl.spmm_engine import SpmmEngine
from hdl.top_ports import accelerator_signature
from hdl.word_checks import check_span, instruction_view, word_error

#: Width of each dependency-token counter.
TOKEN_BITS = 8
#: Width of an instruction's index in the command stream (``error_index``).
INDEX_BITS = 32


def load_row_bytes(config: AccelConfig) -> int:
    """Bytes of the load DMA's rows: a scratchpad row of either kind or a parameter record."""
    return max(config.rows, config.cols, PARAM_RECORD_BYTES)


def longest_burst(config: AccelConfig) -> int:
    """The most words of any burst the accelerator requests (`hdl.memport.row_beats` of a
    LOAD's row, a STORE's row of int32 and, with a sparse engine, a nonzero beat)."""
    rows = [load_row_bytes(config), 4 * config.cols]
    if config.has_sparse_engine:
        rows.append(nonzero_beat_bytes(config))
    return max(row_beats(row, config.bus_bytes) for row in rows)


def outstanding_reads(config: AccelConfig) -> int:
    """Read bursts (rows) the load DMA keeps in flight, and bursts of each kind the memory
    arbiter tracks: enough for one row per cycle at ``config.mem_latency``. A memory slower
    than that (a longer latency at run time) caps loads at this many rows per latency."""
    return max(32, 1 << (config.mem_latency + 8).bit_length())


class Accelerator(wiring.Component):
    """The whole accelerator for `config`; see the module docstring and docs/isa.md.

    Parameters
    ----------
    config : AccelConfig
    checks_in_place : bool
        False (default): the dispatcher takes a word per cycle into its two check stages.
        True: it checks the word while ``cmd`` presents it (a stream source holds a word until
        it is taken) and takes it only when it dispatches, so at most one word per 3 cycles,
        with no 128-bit stage registers: for a source far slower than that, such as the
        board's UART bridge (`hdl.board_top`). Results, errors and indices are the same.
    """

    def __init__(self, config: AccelConfig, *, checks_in_place: bool = False):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        self.config = config
        self.checks_in_place = checks_in_place
        super().__init__(accelerator_signature(config))

    def elaborate(self, platform):
        m = Module()
        config = self.config
        rows, cols, bus = config.rows, config.cols, config.bus_bytes
        act_rows, wgt_rows = scratchpad_rows(config)

        m.submodules.act = act = Scratchpad(rows, act_rows)
        m.submodules.wgt = wgt = Scratchpad(cols, wgt_rows)
        m.submodules.acc = acc = AccumulatorMemory(cols, config.acc_rows)
        m.submodules.matmul = matmul = MatmulEngine(config, act_rows, wgt_rows, config.acc_rows)
        m.submodules.requant = requant = Requantizer(config)
        load_bytes = load_row_bytes(config)
        outstanding = outstanding_reads(config)
        # Checked addresses are below mem_bytes; rows fit the destination (LOAD_PARAMS: lanes).
        load_rows = max(act_rows, wgt_rows, cols)
        m.submodules.load_dma = load_dma = LoadDma(
            bus, load_bytes, load_rows, outstanding, config.address_bits, max_rows=load_rows
        )
        m.submodules.store_dma = store_dma = StoreDma(
            bus, 4 * cols, config.address_bits, max_rows=config.acc_rows
        )
        sparse = config.has_sparse_engine
        m.submodules.arbiter = arbiter = MemoryArbiter(
            bus, 3 if sparse else 2, outstanding, max_beats=longest_burst(config)
        )
        wiring.connect(m, load_dma.req, arbiter.m0.req)
        wiring.connect(m, arbiter.m0.rdata, load_dma.rdata)
        wiring.connect(m, store_dma.req, arbiter.m1.req)
        wiring.connect(m, store_dma.wdata, arbiter.m1.wdata)
        wiring.connect(m, arbiter.mem, wiring.flipped(self.mem))
        wiring.connect(m, matmul.act_req, act.read_req)
        wiring.connect(m, act.read_data, matmul.act_data)
        sparse_mode = Signal()  # the SPMM engine owns the weight reads and accumulator writes
        spmm = None  # no sparse engine: SPMM is BAD_OPCODE (`word_error`)
        if sparse:
            m.submodules.spmm = spmm = SpmmEngine(config, wgt_rows, config.acc_rows)
            wiring.connect(m, spmm.req, arbiter.m2.req)
            wiring.connect(m, arbiter.m2.rdata, spmm.rdata)
            _select_streams(m, sparse_mode, wgt.read_req, spmm.x_req, matmul.wgt_req)
            _select_streams(m, sparse_mode, acc.write, spmm.acc_write, matmul.acc_write)
            m.d.comb += [
                spmm.x_data.payload.eq(wgt.read_data.payload),
                spmm.x_data.valid.eq(wgt.read_data.valid & sparse_mode),
                wgt.read_data.ready.eq(Mux(sparse_mode, spmm.x_data.ready, matmul.wgt_data.ready)),
            ]
        else:
            wiring.connect(m, matmul.wgt_req, wgt.read_req)
            wiring.connect(m, matmul.acc_write, acc.write)
            m.d.comb += wgt.read_data.ready.eq(matmul.wgt_data.ready)
        m.d.comb += [
            matmul.wgt_data.payload.eq(wgt.read_data.payload),
            matmul.wgt_data.valid.eq(wgt.read_data.valid & ~sparse_mode),
        ]

        # Each entry: the bits of the checked word that can be nonzero (`hdl.checked_bits`);
        # with a sparse engine, the compute queue's also the word's index in the command
        # stream, for an SPMM's runtime errors. `heads` are the whole words at the queues' heads.
        queues, live, heads = {}, {}, {}
        for queue_id in Queue:
            name = queue_id.name.lower()
            live[name] = live_bits(config, queue_ops(config, queue_id))
            indexed = sparse and queue_id is Queue.COMPUTE
            width = len(live[name]) + (INDEX_BITS if indexed else 0)
            queues[name] = BramFifo(width=width, depth=QUEUE_DEPTH)
            m.submodules[f"{name}_queue"] = queues[name]
            heads[name] = unpack(queues[name].r_data, live[name])
        tokens = _Tokens(m)
        load_busy = self._load_unit(
            m, queues["load"], heads["load"], tokens, load_dma, act, wgt, requant
        )
        compute_index = queues["compute"].r_data[len(live["compute"]) :]
        compute_busy = self._compute_unit(
            m, queues["compute"], heads["compute"], compute_index, tokens, matmul, spmm, sparse_mode
        )
        store_busy = self._store_unit(
            m, queues["store"], heads["store"], tokens, acc, requant, store_dma
        )
        units_idle = ~load_busy & ~compute_busy & ~store_busy
        queues_empty = Const(1)
        for queue in queues.values():  # `level`: r_rdy rises a cycle after a write
            queues_empty = queues_empty & (queue.level == 0)
        # Nothing runs and every queue is empty or its head waits for a token: only a word the
        # dispatcher has yet to queue can push one.
        frozen = units_idle
        for name, waiting in (
            ("load", self._load_waiting),
            ("compute", self._compute_waiting),
            ("store", self._store_waiting),
        ):
            frozen = frozen & ((queues[name].level == 0) | waiting)
        self._dispatcher(m, queues, live, queues_empty & units_idle, frozen, spmm)
        # Stopped (an error or DEADLOCK) and frozen: no token can come any more, so the waiting
        # instructions never run and the accelerator is done.
        stranded = self._stopped & frozen
        # Not idle in the cycle a runtime error is being latched into `error` (an SPMM's last
        # row can be dropped in the cycle the pass ends, so the units are already idle then).
        done = (queues_empty & units_idle & ~self._pending) | stranded
        m.d.comb += self.idle.eq(done & ~self._runtime_error)
        self._counters(m, queues, tokens, (load_busy, compute_busy, store_busy), matmul)
        return m

    # ---------------------------------------------------------------------------------------
    def _dispatcher(self, m: Module, queues, live, all_idle, frozen, spmm) -> None:
        # Two check stages between ``cmd`` and dispatch, so that the checks (field selects, a
        # multiply, adds and compares) are not one combinational path with the dispatch
        # decision: stage 1 holds the word and the product of its address checks
        # (`check_span`), stage 2 its error code (`word_error`) and the bits a queue can keep
        # (`live`: a word that is not queued is bad, and only its code and index go on);
        # words dispatch from stage 2. With `checks_in_place` the word stays on ``cmd`` and the
        # stages hold only the product and the code.
        staged = Signal()  # stage 1 holds a word (its product)
        pending = Signal()  # stage 2 holds a word (its code)
        span = check_span(self.cmd.payload, self.config)
        staged_span = Signal(Value.cast(span).shape())
        code = Signal(ErrorCode)
        if self.checks_in_place:
            staged_word = word = self.cmd.payload
        else:
            staged_word = Signal(WORD_BITS)
            kept = tuple(sorted(set().union(*live.values())))  # the opcode is in every queue's
            word_bits = Signal(len(kept))
            word = unpack(word_bits, kept)
        self._pending = staged | pending
        op = word[:4]
        index = Signal(INDEX_BITS)
        stopped = Signal()
        fence = op == Op.FENCE
        target = {
            "load": (op == Op.LOAD_ACT) | (op == Op.LOAD_WGT) | (op == Op.LOAD_PARAMS),
            "compute": (op == Op.MATMUL) | (op == Op.SPMM),
            "store": op == Op.STORE,
        }
        room = Const(1)
        for name, queue in queues.items():
            room = room & (~target[name] | queue.w_rdy)
        bad = code != ErrorCode.NONE
        ready = ~stopped & (bad | Mux(fence, all_idle, room))
        taken = pending & ready
        # Each stage refills as its word moves on; nothing moves once a word is found bad, and
        # after an error the words still staged never start.
        going = ~stopped & ~(taken & bad)
        advance = going & staged & (~pending | taken)
        if self.checks_in_place:  # the word is taken as it dispatches; one in the stages
            m.d.comb += self.cmd.ready.eq(taken)
            start = going & self.cmd.valid & ~staged & ~pending
        else:
            m.d.comb += self.cmd.ready.eq(going & (~staged | advance))
            start = self.cmd.valid & self.cmd.ready
        with m.If(start):
            m.d.sync += [staged.eq(1), staged_span.eq(span)]
            if not self.checks_in_place:
                m.d.sync += staged_word.eq(self.cmd.payload)
        with m.Elif(advance | stopped):
            m.d.sync += staged.eq(0)
        with m.If(advance):
            m.d.sync += [
                pending.eq(1),
                code.eq(word_error(m, staged_word, self.config, staged_span)),
            ]
            if not self.checks_in_place:
                m.d.sync += word_bits.eq(pack(staged_word, kept))
        with m.Elif(taken | stopped):
            m.d.sync += pending.eq(0)
        for name, queue in queues.items():
            entry = pack(word, live[name])
            if queue.width > len(live[name]):  # this queue keeps the index too
                entry = Cat(entry, index)
            m.d.comb += [queue.w_data.eq(entry), queue.w_en.eq(taken & ~bad & target[name])]
        with m.If(taken & ~bad):  # a bad word stops everything: `index` stays its index
            m.d.sync += index.eq(index + 1)
        # The first error, found at dispatch or while running, stops the dispatcher for good.
        with m.If(~stopped & taken & bad):
            m.d.sync += [stopped.eq(1), self.error.eq(code)]
        self._runtime_error = Const(0)  # only the sparse engine finds errors while running
        if spmm is None:
            m.d.comb += self.error_index.eq(Mux(stopped, index, 0))
        else:
            with m.If(~stopped & taken & bad):
                m.d.sync += self.error_index.eq(index)
            runtime = (spmm.format_error | spmm.range_error) & ~self._spmm_reported
            self._runtime_error = runtime
            with m.If(~stopped & ~(taken & bad) & runtime):
                m.d.sync += [stopped.eq(1), self.error_index.eq(self._spmm_index)]
                with m.If(spmm.format_error):
                    m.d.sync += self.error.eq(ErrorCode.SPARSE_FORMAT)
                with m.Else():
                    m.d.sync += self.error.eq(ErrorCode.ACC_RANGE)
        # DEADLOCK: frozen with a queue waiting (not `all_idle`), and no word to come that could
        # push a token: stage 2 holds a word that cannot move until something finishes (a
        # FENCE, or its queue is full), or the program's final word (``cmd_last``) is queued.
        ended = Signal()  # the last word ``cmd`` gave carried ``cmd_last``
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += ended.eq(self.cmd_last)
        blocked = pending & ~ready & ~stopped  # a good word (a bad one is always taken)
        drained = ended & ~staged & ~pending
        deadlock = ~stopped & frozen & ~all_idle & (blocked | drained) & ~self._runtime_error
        with m.If(deadlock):  # the index: the held word's, or the program's length
            m.d.sync += [stopped.eq(1), self.error.eq(ErrorCode.DEADLOCK)]
            if spmm is not None:
                m.d.sync += self.error_index.eq(index)
        self._stopped = stopped
        self._dispatch_blocked = blocked
        self._fence_waiting = pending & fence & ~bad & ~all_idle & ~stopped

    # ---------------------------------------------------------------------------------------
    def _load_unit(self, m: Module, queue, head, tokens, dma, act, wgt, requant) -> Signal:
        """LOADs go to the DMA back to back (the next is taken once the previous has issued its
        requests), so their memory latencies overlap; each row carries its load's target as the
        DMA tag, and each load's tokens are pushed when its last row is written."""
        load = instruction_view(Op.LOAD_ACT, head)
        params = instruction_view(Op.LOAD_PARAMS, head)
        op = head[:4]
        pushes = fifo.SyncFIFOBuffered(width=1, depth=QUEUE_DEPTH)
        m.submodules.load_pushes = pushes
        in_flight = Signal(range(QUEUE_DEPTH + 1))
        ok = tokens.available("c2l", load.deps.pop_next)
        self._load_waiting = queue.r_rdy & ~ok
        is_params = op == Op.LOAD_PARAMS
        command = dma.cmd.payload
        m.d.comb += [
            dma.cmd.valid.eq(queue.r_rdy & ok & pushes.w_rdy),
            command.dram_addr.eq(load.dram_addr),
            command.dram_stride.eq(Mux(is_params, PARAM_RECORD_BYTES, load.dram_stride)),
            command.rows.eq(Mux(is_params, params.lanes, load.rows)),
            command.spad_row.eq(Mux(is_params, 0, load.spad_row)),
            command.width.eq(Mux(is_params, PARAM_RECORD_BYTES, load.width)),
            command.tag.eq(op - Op.LOAD_ACT.value),  # 0 activations, 1 weights, 2 parameters
            pushes.w_data.eq(load.deps.push_next),
        ]
        start = dma.cmd.valid & dma.cmd.ready
        with m.If(start):
            m.d.comb += [queue.r_en.eq(1), tokens.pop("c2l", load.deps.pop_next), pushes.w_en.eq(1)]
        with m.If(dma.done):
            m.d.comb += [pushes.r_en.eq(1), tokens.push("l2c", pushes.r_data[0])]
        m.d.sync += in_flight.eq(in_flight + start - dma.done)
        target = dma.write.payload.tag

        # Route each row by its load's tag.
        row = dma.write.payload
        record = row.data.as_value()
        param = requant.params.payload
        m.d.comb += [
            act.write.payload.row.eq(row.row),
            act.write.payload.data.eq(record[: 8 * self.config.rows]),
            wgt.write.payload.row.eq(row.row),
            wgt.write.payload.data.eq(record[: 8 * self.config.cols]),
            param.lane.eq(row.row),
            param.bias.eq(record[0:32]),
            param.mantissa.eq(record[32:56]),
            param.shift.eq(record[56:62]),
            param.zero_point.eq(record[64:72]),
            param.relu.eq(record[72]),
        ]
        with m.Switch(target):
            with m.Case(0):
                m.d.comb += [
                    act.write.valid.eq(dma.write.valid),
                    dma.write.ready.eq(act.write.ready),
                ]
            with m.Case(1):
                m.d.comb += [
                    wgt.write.valid.eq(dma.write.valid),
                    dma.write.ready.eq(wgt.write.ready),
                ]
            with m.Case(2):
                m.d.comb += [
                    requant.params.valid.eq(dma.write.valid),
                    dma.write.ready.eq(requant.params.ready),
                ]
        return in_flight != 0

    # ---------------------------------------------------------------------------------------
    def _compute_unit(
        self, m: Module, queue, word, index, tokens, matmul, spmm, sparse_mode
    ) -> Signal:
        head = instruction_view(Op.MATMUL, word)
        sparse = instruction_view(Op.SPMM, word)
        # Without a sparse engine the checks let no SPMM into the queue.
        is_spmm = (word[:4] == Op.SPMM) if spmm is not None else Const(0)
        pushes = fifo.SyncFIFOBuffered(width=2, depth=QUEUE_DEPTH)
        m.submodules.compute_pushes = pushes
        in_flight = Signal(range(QUEUE_DEPTH + 1))
        ok = tokens.available("l2c", head.deps.pop_prev) & tokens.available(
            "s2c", head.deps.pop_next
        )
        # A MATMUL starts while the SPMM engine is idle; an SPMM once nothing is in flight.
        engine_free = matmul.cmd.ready
        if spmm is not None:
            engine_free = Mux(is_spmm, (in_flight == 0) & spmm.cmd.ready, engine_free)
        start = queue.r_rdy & ok & ~sparse_mode & engine_free & pushes.w_rdy
        self._compute_waiting = queue.r_rdy & ~ok
        command = matmul.cmd.payload
        m.d.comb += [
            matmul.cmd.valid.eq(start & ~is_spmm),
            command.act_row.eq(head.act_row),
            command.wgt_row.eq(head.wgt_row),
            command.rows.eq(head.rows),
            command.acc_row.eq(head.acc_row),
            command.accumulate.eq(head.accumulate),
            queue.r_en.eq(start),
            pushes.w_data.eq(Cat(head.deps.push_prev, head.deps.push_next)),
            pushes.w_en.eq(start),
        ]
        with m.If(start):
            m.d.comb += [
                tokens.pop("l2c", head.deps.pop_prev),
                tokens.pop("s2c", head.deps.pop_next),
            ]
        finished = matmul.done
        self._spmm_macs = 0
        if spmm is not None:
            finished = matmul.done | spmm.done
            self._spmm_macs = spmm.macs
            self._start_spmm(m, spmm, sparse, start & is_spmm, index, sparse_mode)
        with m.If(finished):
            m.d.comb += [
                pushes.r_en.eq(1),
                tokens.push("c2l", pushes.r_data[0]),
                tokens.push("c2s", pushes.r_data[1]),
            ]
        m.d.sync += in_flight.eq(in_flight + start - finished)
        rows, cols = self.config.rows, self.config.cols
        macs = Mux(is_spmm, 0, head.rows * (rows * cols))  # SPMM: counted by its engine
        self._macs_started = Mux(start, macs, 0)
        return in_flight != 0

    def _start_spmm(self, m: Module, spmm, sparse, start, index, sparse_mode) -> None:
        """Hand an SPMM to its engine; the weight scratchpad and accumulator writes are its
        (`sparse_mode`) until ``done``. Its index is kept for an error found while it runs,
        which is reported once."""
        command = spmm.cmd.payload
        m.d.comb += [
            spmm.cmd.valid.eq(start),
            command.nz_addr.eq(sparse.nz_addr),
            command.nz_beats.eq(sparse.nz_beats),
            command.x_row.eq(sparse.x_row),
            command.k.eq(sparse.k),
            command.acc_row.eq(sparse.acc_row),
            command.accumulate.eq(sparse.accumulate),
            command.nz_cache.eq(sparse.nz_cache),
        ]
        self._spmm_index = Signal(INDEX_BITS)
        self._spmm_reported = Signal()
        with m.If(start):
            m.d.sync += [sparse_mode.eq(1), self._spmm_index.eq(index)]
        with m.If(spmm.format_error | spmm.range_error):
            m.d.sync += self._spmm_reported.eq(1)
        with m.If(spmm.done):
            m.d.sync += sparse_mode.eq(0)

    # ---------------------------------------------------------------------------------------
    def _store_unit(self, m: Module, queue, word, tokens, acc, requant, dma) -> Signal:
        head = instruction_view(Op.STORE, word)
        running, command_pending, int8, push_prev = Signal(), Signal(), Signal(), Signal()
        next_row = Signal.like(acc.read_req.payload)
        rows_left = Signal(range(self.config.acc_rows + 1))
        can_start = queue.r_rdy & ~running & tokens.available("c2s", head.deps.pop_prev)
        self._store_waiting = queue.r_rdy & ~running & ~can_start
        command = dma.cmd.payload
        with m.If(can_start):
            m.d.comb += [queue.r_en.eq(1), tokens.pop("c2s", head.deps.pop_prev)]
            m.d.sync += [
                running.eq(1),
                command_pending.eq(1),
                int8.eq(head.int8),
                push_prev.eq(head.deps.push_prev),
                next_row.eq(head.acc_row),
                rows_left.eq(head.rows),
                command.dram_addr.eq(head.dram_addr),
                command.dram_stride.eq(head.dram_stride),
                command.rows.eq(head.rows),
                command.width.eq(Mux(head.int8, head.width, head.width * 4)),
            ]
        m.d.comb += dma.cmd.valid.eq(command_pending)
        with m.If(dma.cmd.valid & dma.cmd.ready):
            m.d.sync += command_pending.eq(0)
        with m.If(dma.done):
            m.d.sync += running.eq(0)
            m.d.comb += tokens.push("s2c", push_prev)

        # Accumulator rows, in order, to the DMA: raw, or through the requantizer.
        m.d.comb += [
            acc.read_req.valid.eq(running & (rows_left != 0)),
            acc.read_req.payload.eq(next_row),
        ]
        with m.If(acc.read_req.valid & acc.read_req.ready):
            m.d.sync += [next_row.eq(next_row + 1), rows_left.eq(rows_left - 1)]
        m.d.comb += [
            requant.acc.payload.data.eq(acc.read_data.payload),
            requant.acc.payload.last.eq(0),
        ]
        with m.If(int8):
            m.d.comb += [
                requant.acc.valid.eq(acc.read_data.valid),
                acc.read_data.ready.eq(requant.acc.ready),
                dma.data.valid.eq(requant.out.valid),
                dma.data.payload.as_value().eq(requant.out.payload.data.as_value()),
                requant.out.ready.eq(dma.data.ready),
            ]
        with m.Else():
            m.d.comb += [
                dma.data.valid.eq(acc.read_data.valid),
                dma.data.payload.as_value().eq(acc.read_data.payload.as_value()),
                acc.read_data.ready.eq(dma.data.ready),
            ]
        return running

    # ---------------------------------------------------------------------------------------
    def _counters(self, m: Module, queues, tokens, busy, matmul) -> None:
        counters = self.counters
        mem = self.mem
        bus = self.config.bus_bytes
        strobes = mem.wdata.payload.strobe
        written = sum(strobes[i] for i in range(bus))
        moved = (mem.rdata.valid & mem.rdata.ready) | (mem.wdata.valid & mem.wdata.ready)
        increments = {
            "cycles": 1,
            "load_busy": busy[0],
            "compute_busy": busy[1],
            "store_busy": busy[2],
            "macs": self._macs_started + self._spmm_macs,
            "bytes_read": Mux(mem.rdata.valid & mem.rdata.ready, bus, 0),
            "bytes_written": Mux(mem.wdata.valid & mem.wdata.ready, written, 0),
            "memory_stall": (busy[0] | busy[2]) & ~moved,
            "dependency_stall": self._load_waiting
            | self._compute_waiting
            | self._store_waiting
            | self._fence_waiting,
            "backpressure_stall": self._dispatch_blocked & ~self._fence_waiting,
            "instructions": self.cmd.valid & self.cmd.ready,
        }
        for name, increment in increments.items():  # modulo 2 ** counter_bits, zero-extended
            counter = Signal(self.config.counter_bits, name=f"count_{name}")
            m.d.sync += counter.eq(counter + increment)
            m.d.comb += getattr(counters, name).eq(counter)


def _select_streams(m: Module, select, target, when_true, when_false) -> None:
    """Drive the `target` stream from `when_true` while `select` is high, else `when_false`."""
    m.d.comb += [
        target.valid.eq(Mux(select, when_true.valid, when_false.valid)),
        target.payload.eq(
            Mux(select, Value.cast(when_true.payload), Value.cast(when_false.payload))
        ),
        when_true.ready.eq(select & target.ready),
        when_false.ready.eq(~select & target.ready),
    ]


class _Tokens:
    """The four dependency-token counters; pops and pushes of one cycle are summed."""

    CHANNELS = ("l2c", "c2l", "c2s", "s2c")

    def __init__(self, m: Module):
        self.count = {name: Signal(TOKEN_BITS, name=f"tokens_{name}") for name in self.CHANNELS}
        self.popped = {name: Signal(name=f"pop_{name}") for name in self.CHANNELS}
        self.pushed = {name: Signal(name=f"push_{name}") for name in self.CHANNELS}
        for name in self.CHANNELS:
            count = self.count[name]
            m.d.sync += count.eq(count + self.pushed[name] - self.popped[name])

    def available(self, channel: str, wanted):
        """True when a wanted token is there (or none is wanted)."""
        return ~wanted | (self.count[channel] != 0)

    def pop(self, channel: str, wanted):
        """Statement: take a token from `channel` this cycle when `wanted`."""
        return self.popped[channel].eq(wanted)

    def push(self, channel: str, wanted):
        """Statement: give `channel` a token this cycle when `wanted`."""
        return self.pushed[channel].eq(wanted)
