"""The instruction set: one definition for gateware and host, encoding, and the program checker."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from hdl.config import AccelConfig
from hdl.isa import (
    LAYOUTS,
    QUEUE_DEPTH,
    WORD_BITS,
    ErrorCode,
    Instruction,
    Op,
    ProgramError,
    check_program,
    check_words,
    decode_program,
    decode_word,
    encode_program,
    field_table,
    replay_dispatch,
    words_as_ints,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = AccelConfig(rows=4, cols=8, spad_bytes=1024, acc_rows=64, sparse_depth=32)
MEMORY = 1 << 16  # bytes of main memory in the checker tests
# With CONFIG: activation rows of 4 bytes (256 of them), weight rows of 8 bytes (128).


def random_instruction(rng: np.random.Generator, op: Op) -> Instruction:
    layout = LAYOUTS[op]
    values = {
        name: int(rng.integers(0, 1 << field.width))
        for name, field in layout
        if name not in ("op", "deps")
    }
    flags = {flag: bool(rng.integers(0, 2)) for flag in ("pop_prev", "pop_next", "push_prev")}
    return Instruction(op, **values, **flags)


def test_every_layout_fits_a_word_behind_the_common_header():
    for op, layout in LAYOUTS.items():
        assert layout.size <= WORD_BITS, op
        assert (layout["op"].offset, layout["op"].width) == (0, 4)
        assert (layout["deps"].offset, layout["deps"].width) == (4, 4)
    assert len({op.value for op in Op}) == len(Op) == 7


def test_docs_table_is_the_layouts():
    assert field_table() in (REPO / "docs" / "isa.md").read_text()


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    program = [random_instruction(rng, op) for op in Op for _ in range(20)]
    words = encode_program(program)
    assert words.shape == (len(program), 4) and words.dtype == np.uint32
    assert decode_program(words) == program
    store = Instruction(
        Op.STORE,
        acc_row=3,
        rows=2,
        dram_addr=0x1234,
        dram_stride=8,
        int8=1,
        width=8,
        push_prev=True,
    )
    word = store.encode()
    assert word & 0xF == Op.STORE.value and (word >> 4) & 0xF == 0b0100  # push_prev is bit 6
    assert (word >> LAYOUTS[Op.STORE]["dram_addr"].offset) & 0xFFFF_FFFF == 0x1234


def test_gateware_view_reads_what_the_host_encoded():
    """The decoder's data.View of a word sees exactly the host's fields."""
    rng = np.random.default_rng(1)
    program = [random_instruction(rng, op) for op in Op for _ in range(3)]
    word = Signal(WORD_BITS)
    views = {op: data.View(layout, word[: layout.size]) for op, layout in LAYOUTS.items()}
    sim = Simulator(Module())  # no logic: the testbench drives the word and reads the views

    async def testbench(ctx):
        for instruction in program:
            ctx.set(word, instruction.encode())
            view = views[instruction.op]
            assert ctx.get(view.op) == instruction.op
            for name, value in instruction.fields.items():
                assert ctx.get(getattr(view, name)) == value, (instruction, name)
            for flag, on in instruction.deps.items():
                assert ctx.get(getattr(view.deps, flag)) == on

    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Instruction(Op.FENCE, rows=1), ValueError, r"^FENCE has no field 'rows'; its"),
        (
            lambda: Instruction(Op.LOAD_PARAMS, dram_addr=0),
            ValueError,
            r"^LOAD_PARAMS needs field 'lanes'$",
        ),
        (
            lambda: Instruction(Op.LOAD_PARAMS, dram_addr=1 << 32, lanes=1),
            ValueError,
            r"^LOAD_PARAMS\.dram_addr must be in \[0, 2\*\*32\), not 4294967296$",
        ),
        (
            lambda: Instruction(Op.LOAD_PARAMS, dram_addr=0, lanes=1.0),
            TypeError,
            r"^LOAD_PARAMS\.lanes must be an int, not 1\.0$",
        ),
        (lambda: Instruction(7), TypeError, r"^op must be an hdl\.isa\.Op, not 7$"),
        (lambda: Instruction.decode(9), ValueError, r"^unknown opcode 9$"),
        (
            lambda: Instruction.decode(1 << 100),
            ValueError,
            r"^FENCE word has bits set above bit 7$",
        ),
    ],
)
def test_malformed_instructions_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


def load(op=Op.LOAD_WGT, **changes):
    fields = dict(dram_addr=0, dram_stride=8, rows=4, spad_row=0, width=8)
    return Instruction(op, **{**fields, **changes})


def matmul(**changes):
    fields = dict(act_row=0, wgt_row=0, rows=16, acc_row=0, accumulate=0)
    return Instruction(Op.MATMUL, **{**fields, **changes})


def store(**changes):
    fields = dict(acc_row=0, rows=16, dram_addr=4096, dram_stride=8, int8=1, width=8)
    return Instruction(Op.STORE, **{**fields, **changes})


def test_a_double_buffered_program_passes():
    program = [
        load(push_next=True),
        load(op=Op.LOAD_ACT, rows=16, spad_row=0, width=4, push_next=True),
        load(spad_row=64, push_next=True),
        matmul(pop_prev=True),
        matmul(pop_prev=True, wgt_row=64, push_prev=True, push_next=True),
        store(pop_prev=True),
        Instruction(Op.FENCE),
        Instruction(Op.LOAD_PARAMS, dram_addr=0, lanes=8),
    ]
    check_program(program, CONFIG, MEMORY)


@pytest.mark.parametrize(
    ("program", "index", "code", "message"),
    [
        ([load(), load(rows=0)], 1, ErrorCode.BAD_FIELD, r"LOAD_WGT\.rows is 0"),
        (
            [load(spad_row=126)],
            0,
            ErrorCode.SPAD_RANGE,
            r"weight rows \[126, 130\) is past the end \(128\)",
        ),
        (
            [load(op=Op.LOAD_ACT, width=5)],
            0,
            ErrorCode.TILE_TOO_LARGE,
            r"width 5 > activation row 4",
        ),
        (
            [load(dram_addr=MEMORY - 24)],
            0,
            ErrorCode.DRAM_RANGE,
            r"bytes up to 65544 are past the end of memory \(65536\)",
        ),
        (
            [matmul(acc_row=60)],
            0,
            ErrorCode.ACC_RANGE,
            r"accumulator rows \[60, 76\) is past the end \(64\)",
        ),
        ([matmul(wgt_row=125)], 0, ErrorCode.SPAD_RANGE, r"weight rows \[125, 129\)"),
        ([store(width=9)], 0, ErrorCode.TILE_TOO_LARGE, r"width 9 > cols 8"),
        (
            [store(int8=1, dram_addr=MEMORY - 150), store(int8=0, dram_addr=MEMORY - 150)],
            1,
            ErrorCode.DRAM_RANGE,
            r"store bytes up to 65538 are past the end of memory",
        ),
        (
            [Instruction(Op.LOAD_PARAMS, dram_addr=0, lanes=9)],
            0,
            ErrorCode.TILE_TOO_LARGE,
            r"lanes 9 > cols 8",
        ),
        (
            [load(pop_prev=True)],
            0,
            ErrorCode.BAD_DEPS,
            r"LOAD_WGT has no previous queue for pop_prev",
        ),
        ([store(push_next=True)], 0, ErrorCode.BAD_DEPS, r"STORE has no next queue for push_next"),
        # DEADLOCK at the dispatcher's position: here the program's length.
        (
            [load(), matmul(pop_prev=True)],
            2,
            ErrorCode.DEADLOCK,
            r"every word is dispatched, and instruction 1 \(MATMUL\) waits for a token",
        ),
        (
            [matmul(pop_next=True), store(pop_prev=True, push_prev=True)],
            2,
            ErrorCode.DEADLOCK,
            r"instruction 0 \(MATMUL\) waits for a token",
        ),
    ],
)
def test_each_rule_reports_its_code_and_index(program, index, code, message):
    with pytest.raises(ProgramError, match=rf"^instruction {index}: .*{message}") as caught:
        check_program(program, CONFIG, MEMORY)
    assert (caught.value.index, caught.value.code) == (index, code)


def test_spmm_limits_k_and_nonzero_bytes():
    spmm = dict(nz_addr=0, nz_beats=4, x_row=0, k=32, acc_row=0, accumulate=0, nz_cache=0)
    check_program([Instruction(Op.SPMM, **spmm)], CONFIG, MEMORY)
    with pytest.raises(ProgramError, match=r"k 33 > sparse_depth 32") as caught:
        check_program([Instruction(Op.SPMM, **{**spmm, "k": 33})], CONFIG, MEMORY)
    assert caught.value.code is ErrorCode.TILE_TOO_LARGE
    with pytest.raises(ProgramError, match=r"nonzeros bytes up to") as caught:
        check_program([Instruction(Op.SPMM, **{**spmm, "nz_addr": MEMORY - 8})], CONFIG, MEMORY)
    assert caught.value.code is ErrorCode.DRAM_RANGE


# --------------------------------------------------------------------------------------------------
# The dispatch replay: full queues, FENCEs and bad words behind a stuck instruction (found by the
# program fuzzer, sim.fuzz)


def test_a_pop_waiting_behind_a_full_queue_deadlocks():
    """QUEUE_DEPTH MATMULs that each wait for a LOAD after them fit in the compute queue; one more
    holds the dispatcher, so the LOADs never come: DEADLOCK at that MATMUL."""
    for count, stuck in ((QUEUE_DEPTH, None), (QUEUE_DEPTH + 1, 0)):
        program = [matmul(pop_prev=True)] * count + [load(push_next=True)] * count
        replay = replay_dispatch(program)
        assert replay.stuck == stuck
        if stuck is None:
            check_program(program, CONFIG, MEMORY)
            # The MATMULs start after the LOADs that push their tokens.
            assert replay.order == (*range(count, 2 * count), *range(count))
        else:
            assert replay.dispatched == QUEUE_DEPTH  # the next MATMUL holds the dispatcher
            with pytest.raises(
                ProgramError,
                match=rf"^instruction {QUEUE_DEPTH}: deadlock: the dispatcher holds this MATMUL: "
                r"its queue is full, and instruction 0 \(MATMUL\) waits",
            ) as caught:
                check_program(program, CONFIG, MEMORY)
            assert (caught.value.code, caught.value.stuck) == (ErrorCode.DEADLOCK, 0)


def test_a_bad_word_behind_a_stuck_fence_is_never_reached():
    stuck = [matmul(pop_prev=True), Instruction(Op.FENCE), load(rows=0)]
    with pytest.raises(
        ProgramError, match=r"^instruction 1: deadlock: the dispatcher holds this FENCE"
    ) as caught:
        check_program(stuck, CONFIG, MEMORY)
    assert (caught.value.code, caught.value.stuck) == (ErrorCode.DEADLOCK, 0)
    # Without the FENCE the dispatcher reaches the bad word; the stuck MATMUL is dropped.
    with pytest.raises(ProgramError, match=r"^instruction 1: .*rows is 0") as caught:
        check_program([stuck[0], stuck[2]], CONFIG, MEMORY)
    assert caught.value.code is ErrorCode.BAD_FIELD


def test_words_decode_opcode_first():
    """SPMM on an accelerator without a sparse engine is BAD_OPCODE, stray bits or not, as the
    dispatcher checks the opcode first; other stray bits are BAD_FIELD."""
    spmm = Instruction(
        Op.SPMM, nz_addr=0, nz_beats=1, x_row=0, k=1, acc_row=0, accumulate=0, nz_cache=0
    )
    no_engine = AccelConfig(rows=4, cols=8, spad_bytes=1024, acc_rows=64, sparse_lanes=0)
    stray = spmm.encode() | 1 << 127
    for config, word, code in [
        (no_engine, stray, ErrorCode.BAD_OPCODE),
        (no_engine, spmm.encode(), ErrorCode.BAD_OPCODE),
        (CONFIG, stray, ErrorCode.BAD_FIELD),
        (CONFIG, 0xB, ErrorCode.BAD_OPCODE),
    ]:
        with pytest.raises(ProgramError, match=r"^instruction 3: ") as caught:
            decode_word(3, word, config)
        assert caught.value.code is code
    assert decode_word(0, spmm.encode(), CONFIG) == spmm
    words = encode_program([load(), spmm])
    words[1, 3] |= 1 << 31
    with pytest.raises(ProgramError, match=r"^instruction 1: ") as caught:
        check_words(words, no_engine, MEMORY)
    assert caught.value.code is ErrorCode.BAD_OPCODE
    assert words_as_ints(words[:1]) == [load().encode()]
