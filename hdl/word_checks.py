"""The dispatcher's check of one instruction word, as gateware: its `hdl.isa.ErrorCode`.

`word_error` applies docs/isa.md's rules in the order of `hdl.isa.check_program` (opcode,
field, tile, scratchpad, accumulator and main-memory ranges, token flags) and gives the first
failing rule's code, NONE for a good word: combinational logic on the word and on
`check_span`, the address product it needs, computed from the same word a register stage
earlier (`hdl.top.Accelerator` registers it). Adders and the multiplier are only as wide as
the configuration's memories need. `instruction_view` reads a word through an opcode's layout.
"""

from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import data

from hdl.config import AccelConfig, Dataflow
from hdl.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, NzCache, Op, scratchpad_rows
from hdl.sparse import nonzero_beat_bytes


def instruction_view(op: Op, word) -> data.View:
    """A 128-bit word seen through `op`'s layout (its low `LAYOUTS[op].size` bits)."""
    return data.View(LAYOUTS[op], word[: LAYOUTS[op].size])


def check_span(word, config: AccelConfig) -> Value:
    """The product of `word_error`'s address checks, for a register stage before it:
    ``(rows - 1) * dram_stride`` of a STORE, ``nz_beats`` times the bytes of a nonzeros beat of
    an SPMM (with a sparse engine), or else that of a LOAD_ACT / LOAD_WGT (one multiplier for
    all, the factors chosen by the opcode; other opcodes do not use it), each factor first
    clamped to ``mem_bytes + 1``. The product is then exact up to ``mem_bytes`` and past it
    otherwise (a factor was clamped and the other is at least 1), so the check decides the
    same, and the multiplier is only as wide as main memory needs: 11 x 11 bits for 1 KiB, not
    17 x 24. (With ``rows`` = 0 the factor is garbage, but BAD_FIELD is reported first.)"""
    limit = config.mem_bytes + 1

    def clamp(factor):
        return Mux(factor > limit, limit, factor)[: limit.bit_length()]

    load, store = instruction_view(Op.LOAD_ACT, word), instruction_view(Op.STORE, word)
    is_store = word[:4] == Op.STORE
    rows = Mux(is_store, clamp(store.rows - 1), clamp(load.rows - 1))
    stride = Mux(is_store, clamp(store.dram_stride), clamp(load.dram_stride))
    if config.has_sparse_engine:  # not a second multiplier after the stage: this one
        spmm, is_spmm = instruction_view(Op.SPMM, word), word[:4] == Op.SPMM
        rows = Mux(is_spmm, clamp(spmm.nz_beats), rows)
        stride = Mux(is_spmm, nonzero_beat_bytes(config), stride)
    return rows * stride


def word_error(m: Module, word, config: AccelConfig, span) -> Signal:
    """The `ErrorCode` of an instruction word (NONE when it is good), in the order of
    `hdl.isa.check_program`; `span` is `check_span` of the same word (registered a cycle
    earlier)."""
    rows, cols = config.rows, config.cols
    act_rows, wgt_rows = scratchpad_rows(config)
    op = word[:4]
    code = Signal(ErrorCode)
    views = {o: instruction_view(o, word) for o in LAYOUTS}
    load, params = views[Op.LOAD_ACT], views[Op.LOAD_PARAMS]
    matmul, store, spmm = views[Op.MATMUL], views[Op.STORE], views[Op.SPMM]
    ws = config.dataflow is Dataflow.WS

    def past(start, count, limit):
        return _exceeds(limit, start, count)

    def dram_end(address, span, row_bytes):
        return _exceeds(config.mem_bytes, address, span, row_bytes)

    deps = word[4:8]  # pop_prev, pop_next, push_prev, push_next
    checks = {
        Op.FENCE: [(word[8:].any(), ErrorCode.BAD_FIELD), (deps.any(), ErrorCode.BAD_DEPS)],
        Op.LOAD_ACT: _load_checks(
            word, load, rows, act_rows, dram_end(load.dram_addr, span, load.width), past
        ),
        Op.LOAD_WGT: _load_checks(
            word, load, cols, wgt_rows, dram_end(load.dram_addr, span, load.width), past
        ),
        Op.LOAD_PARAMS: [
            (word[LAYOUTS[Op.LOAD_PARAMS].size :].any(), ErrorCode.BAD_FIELD),
            (params.lanes == 0, ErrorCode.BAD_FIELD),
            (params.lanes > cols, ErrorCode.TILE_TOO_LARGE),
            (
                dram_end(params.dram_addr, 0, params.lanes * PARAM_RECORD_BYTES),
                ErrorCode.DRAM_RANGE,
            ),
            (deps[0] | deps[2], ErrorCode.BAD_DEPS),
        ],
        Op.MATMUL: [
            (word[LAYOUTS[Op.MATMUL].size :].any(), ErrorCode.BAD_FIELD),
            (matmul.rows == 0, ErrorCode.BAD_FIELD),
            (past(matmul.act_row, matmul.rows, act_rows), ErrorCode.SPAD_RANGE),
            (past(matmul.wgt_row, rows if ws else matmul.rows, wgt_rows), ErrorCode.SPAD_RANGE),
            (
                past(matmul.acc_row, matmul.rows if ws else rows, config.acc_rows),
                ErrorCode.ACC_RANGE,
            ),
        ],
        Op.SPMM: [
            (word[LAYOUTS[Op.SPMM].size :].any(), ErrorCode.BAD_FIELD),
            (
                (spmm.nz_beats == 0) | (spmm.k == 0) | (spmm.nz_cache > NzCache.REPLAY),
                ErrorCode.BAD_FIELD,
            ),
            (
                (spmm.k > config.sparse_depth)
                | ((spmm.nz_cache != NzCache.STREAM) & (spmm.nz_beats > config.sparse_cache_beats)),
                ErrorCode.TILE_TOO_LARGE,
            ),
            (past(spmm.x_row, spmm.k, wgt_rows), ErrorCode.SPAD_RANGE),
            (past(spmm.acc_row, 1, config.acc_rows), ErrorCode.ACC_RANGE),
            (dram_end(spmm.nz_addr, span, 0), ErrorCode.DRAM_RANGE),
        ],
        Op.STORE: [
            (word[LAYOUTS[Op.STORE].size :].any(), ErrorCode.BAD_FIELD),
            ((store.rows == 0) | (store.width == 0), ErrorCode.BAD_FIELD),
            (store.width > cols, ErrorCode.TILE_TOO_LARGE),
            (past(store.acc_row, store.rows, config.acc_rows), ErrorCode.ACC_RANGE),
            (
                dram_end(store.dram_addr, span, Mux(store.int8, store.width, store.width * 4)),
                ErrorCode.DRAM_RANGE,
            ),
            (deps[1] | deps[3], ErrorCode.BAD_DEPS),
        ],
    }
    if not config.has_sparse_engine:
        del checks[Op.SPMM]  # no engine to run it: SPMM is BAD_OPCODE, as in `hdl.isa.check`
    m.d.comb += code.eq(ErrorCode.BAD_OPCODE)  # opcodes 7-15
    with m.Switch(op):
        for o, rules in checks.items():
            with m.Case(o):
                m.d.comb += code.eq(ErrorCode.NONE)
                for condition, error in reversed(rules):  # the first failing rule wins
                    with m.If(condition):
                        m.d.comb += code.eq(error)
    return code


def _exceeds(limit: int, *terms) -> Value:
    """Whether the sum of the unsigned `terms` is past the constant `limit`, with an adder only
    as wide as `limit`: a term past `limit` decides alone, and otherwise every term fits
    ``limit.bit_length()`` bits (a 32-bit address against 1 KiB of memory adds 11 bits)."""
    bits = limit.bit_length()
    over = Const(0)
    narrow = []
    for term in map(Value.cast, terms):
        if term.shape().width > bits:
            over = over | (term > limit)
            term = term[:bits]
        narrow.append(term)
    return over | (sum(narrow) > limit)


def _load_checks(word, load, row_bytes, spad_rows, past_dram_end, past) -> list:
    """Rules of LOAD_ACT / LOAD_WGT, in `hdl.isa.check_program`'s order."""
    deps = word[4:8]
    return [
        (word[LAYOUTS[Op.LOAD_ACT].size :].any(), ErrorCode.BAD_FIELD),
        ((load.rows == 0) | (load.width == 0), ErrorCode.BAD_FIELD),
        (load.width > row_bytes, ErrorCode.TILE_TOO_LARGE),
        (past(load.spad_row, load.rows, spad_rows), ErrorCode.SPAD_RANGE),
        (past_dram_end, ErrorCode.DRAM_RANGE),
        (deps[0] | deps[2], ErrorCode.BAD_DEPS),
    ]
