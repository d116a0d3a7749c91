"""The functional ISA model: every instruction's semantics, every error code, the race check."""

import dataclasses

import numpy as np
import pytest

from hdl.config import AccelConfig
from hdl.isa import (
    ErrorCode,
    Instruction,
    NzCache,
    Op,
    ProgramError,
    Queue,
    check_program,
    encode_program,
)
from sim.golden.gemm import gemm
from sim.golden.requant import RequantParams, decompose_multiplier, requantize_float
from sim.isa_model import IsaModel
from sim.races import ACCUMULATOR, LANES, MAIN, WEIGHTS, Ordering, RaceError, Region, find_races
from sim.sparse_program import spmm_program
from sim.stream_program import pack_beats

# 2 x 3 array; activation rows of 2 bytes (128), weight rows of 3 bytes (85), 16 accumulator
# rows; sparse engine G = 2 nonzeros per beat, depth 4 (2-bit indices): 4-byte beats.
WS = AccelConfig(rows=2, cols=3, spad_bytes=256, acc_rows=16, sparse_lanes=6, sparse_depth=4)
OS = dataclasses.replace(WS, dataflow="os")
MEMORY = 512


def load(op=Op.LOAD_WGT, **changes):
    fields = dict(dram_addr=0, dram_stride=3, rows=2, spad_row=0, width=3)
    return Instruction(op, **{**fields, **changes})


def matmul(**changes):
    fields = dict(act_row=0, wgt_row=0, rows=2, acc_row=0, accumulate=0)
    return Instruction(Op.MATMUL, **{**fields, **changes})


def store(**changes):
    fields = dict(acc_row=0, rows=2, dram_addr=400, dram_stride=12, int8=0, width=3)
    return Instruction(Op.STORE, **{**fields, **changes})


def spmm(**changes):
    fields = dict(nz_addr=0, nz_beats=1, x_row=0, k=3, acc_row=0, accumulate=0, nz_cache=0)
    return Instruction(Op.SPMM, **{**fields, **changes})


def params(**changes):
    return Instruction(Op.LOAD_PARAMS, **{**dict(dram_addr=0, lanes=3), **changes})


def state(model):
    """Copies of every part of the model's state."""
    return [part.copy() for part in (model.memory, model.act, model.wgt, model.acc, model.lanes)]


def assert_state_equal(before, after):
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def nonzero_beats(entries, row_end, last):
    """Packed beats, G = 2 (value, index) entries each, as bytes for main memory."""
    entries = np.array(entries, np.int64).reshape(-1, 4)  # value, index, value, index
    fields = [(entries[:, i : i + 1], 8 if i % 2 == 0 else 2) for i in range(4)]
    flags = [(np.array(row_end)[:, None], 1), (np.array(last)[:, None], 1)]
    return pack_beats(fields + flags).astype("<u4").view(np.uint8).reshape(-1)


def record(bias, m24, shift, zero_point, relu):
    """One 16-byte requantizer parameter record, written byte by byte as docs/isa.md says."""
    raw = np.zeros(16, np.uint8)
    raw[0:4] = np.array([bias], "<i4").view(np.uint8)
    raw[4:7] = [m24 & 0xFF, (m24 >> 8) & 0xFF, m24 >> 16]
    raw[7], raw[8], raw[9] = shift, zero_point & 0xFF, relu
    return raw


# --------------------------------------------------------------------------------------------------
# Semantics, instruction by instruction


def test_loads_copy_strided_rows_and_zero_fill_past_width():
    model = IsaModel(WS, np.arange(MEMORY, dtype=np.uint64).astype(np.uint8))
    model.act[:], model.wgt[:] = 5, 5
    counters = model.run(
        [
            load(Op.LOAD_ACT, dram_addr=10, dram_stride=7, rows=3, spad_row=4, width=1),
            load(Op.LOAD_WGT, dram_addr=200, dram_stride=0, rows=2, spad_row=84 - 1, width=2),
        ]
    )
    np.testing.assert_array_equal(model.act[4:7], [[10, 0], [17, 0], [24, 0]])
    assert (model.act[:4] == 5).all() and (model.act[7:] == 5).all()
    np.testing.assert_array_equal(model.wgt[83:85], [[-56, -55, 0], [-56, -55, 0]])  # 200, 201
    assert (model.wgt[:83] == 5).all()
    assert counters.bytes_loaded == 3 + 4 and counters.instructions[Queue.LOAD] == 2


def test_load_params_decodes_each_field_of_the_records():
    memory = np.zeros(MEMORY, np.uint8)
    memory[32:64] = np.concatenate(
        [record(-2, 0x123456, 0x47, -10, 1), record(1 << 30, 0xFFFFFF, 63, 127, 0)]
    )
    model = IsaModel(WS, memory)
    model.lanes["bias"][2] = 99
    counters = model.run([params(dram_addr=32, lanes=2)])
    lanes = model.lanes
    assert lanes["bias"].tolist() == [-2, 1 << 30, 99]  # lane 2 keeps its parameters
    assert lanes["m24"].tolist() == [0x123456, 0xFFFFFF, 0]
    assert lanes["shift"].tolist() == [7, 63, 0]  # the low 6 bits of byte 7
    assert lanes["zero_point"].tolist() == [-10, 127, 0]
    assert lanes["relu"].tolist() == [True, False, False]
    assert counters.bytes_loaded == 32


def test_ws_matmul_streams_activation_rows_through_the_weight_tile():
    model = IsaModel(WS, MEMORY)
    model.act[0:3] = [[1, 2], [3, -4], [-128, 127]]
    model.wgt[5:7] = [[1, 0, -1], [2, 3, 4]]
    model.acc[:] = 9
    counters = model.run([matmul(act_row=0, wgt_row=5, rows=3, acc_row=4)])
    expected = [[5, 6, 7], [-5, -12, -19], [126, 381, 636]]
    np.testing.assert_array_equal(model.acc[4:7], expected)
    assert (model.acc[:4] == 9).all() and (model.acc[7:] == 9).all()
    assert counters.macs == 3 * 2 * 3
    model.run([matmul(act_row=0, wgt_row=5, rows=3, acc_row=4, accumulate=1)])
    np.testing.assert_array_equal(model.acc[4:7], 2 * np.array(expected))


def test_os_matmul_multiplies_the_transposed_activation_rows_by_k_weight_rows():
    model = IsaModel(OS, MEMORY)
    model.act[10:13] = [[1, -1], [2, 0], [3, 5]]  # A^T: A = [[1, 2, 3], [-1, 0, 5]]
    model.wgt[0:3] = [[1, 0, 2], [0, 1, 0], [-2, 3, 1]]
    counters = model.run([matmul(act_row=10, wgt_row=0, rows=3, acc_row=14)])
    np.testing.assert_array_equal(model.acc[14:16], [[-5, 11, 5], [-11, 15, 3]])
    assert (model.acc[:14] == 0).all()
    assert counters.macs == 3 * 2 * 3


def test_accumulating_wraps_like_a_32_bit_register():
    model = IsaModel(WS, MEMORY)
    model.act[0] = [1, 0]
    model.wgt[0] = [1, -1, 0]
    model.acc[0] = [2**31 - 1, -(2**31), 7]
    model.run([matmul(rows=1, accumulate=1)])
    assert model.acc[0].tolist() == [-(2**31), 2**31 - 1, 7]


def test_store_writes_int32_little_endian_rows_at_the_stride():
    memory = np.full(MEMORY, 0xAA, np.uint8)
    model = IsaModel(WS, memory)
    model.acc[3:5] = [[1, -2, 0x01020304], [-(2**31), 5, 6]]
    counters = model.run([store(acc_row=3, rows=2, dram_addr=100, dram_stride=12, width=2)])
    expected = memory.copy()
    expected[100:108] = [1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF]
    expected[112:120] = [0, 0, 0, 0x80, 5, 0, 0, 0]
    np.testing.assert_array_equal(model.memory, expected)
    assert counters.bytes_stored == 16 and counters.instructions[Queue.STORE] == 1


def test_store_int8_requantizes_each_lane_with_its_parameters():
    memory = np.full(MEMORY, 0xAA, np.uint8)
    memory[0:48] = np.concatenate(
        [
            record(0, 1 << 23, 24, 3, 0),  # M = 0.5, zero point 3
            record(7, 1 << 23, 25, -10, 1),  # M = 0.25, bias 7, ReLU at -10
            record(2**31 - 1, 1 << 23, 49, -3, 0),  # M = 2**-26: sums beyond int32
        ]
    )
    model = IsaModel(WS, memory)
    model.acc[0:4] = [[5, -100, 2**31 - 1], [-5, 1, -(2**31)], [3, 13, 0], [1000, 0, -1]]
    fence = Instruction(Op.FENCE)  # the STORE must not run before the parameters are in
    model.run([params(lanes=3), fence, store(rows=4, dram_addr=64, dram_stride=3, int8=1)])
    out = model.memory[64:76].view(np.int8).reshape(4, 3)
    # 2.5 -> 2 and -2.5 -> -2 (ties to even); 500 + 3 saturates; -93/4 -> -23 - 10 -> ReLU -10;
    # (2**32 - 2) * 2**-26 rounds to 64, 61 with the zero point (docs/requantizer.md).
    np.testing.assert_array_equal(out, [[5, -10, 61], [1, -8, -3], [5, -5, 29], [127, -8, 29]])
    assert (model.memory[76:] == 0xAA).all()


def test_store_int8_equals_the_golden_requantization():
    rng = np.random.default_rng(1)
    multiplier = (2.0 ** rng.uniform(-20, -4, 3)).astype(np.float32)
    golden = RequantParams(multiplier, out_zero_point=-20, relu=True)
    bias = rng.integers(-(2**20), 2**20, 3).astype(np.int32)
    m24, shift = decompose_multiplier(multiplier)
    memory = np.zeros(MEMORY, np.uint8)
    memory[:48] = np.concatenate(
        [record(int(b), int(m), int(s), -20, 1) for b, m, s in zip(bias, m24, shift, strict=True)]
    )
    model = IsaModel(WS, memory)
    acc = rng.integers(-(2**24), 2**24, (16, 3)).astype(np.int32)
    model.acc[:] = acc
    model.run(
        [params(), Instruction(Op.FENCE), store(rows=16, dram_addr=64, dram_stride=3, int8=1)]
    )
    expected = requantize_float((acc.astype(np.int64) + bias).astype(np.int32), golden)
    np.testing.assert_array_equal(model.memory[64:112].view(np.int8).reshape(16, 3), expected)


X = [[1, 2, 3], [4, 5, 6], [-7, 8, -9]]


def test_spmm_produces_one_accumulator_row_per_row_end():
    memory = np.zeros(MEMORY, np.uint8)
    # Row 0: 5 * X[0] - X[2]; row 1 empty; row 2 over two beats: X[1] + 2 X[2], then 3 X[0].
    beats = nonzero_beats(
        [[5, 0, -1, 2], [0, 0, 0, 0], [1, 1, 2, 2], [3, 0, 0, 0]],
        row_end=[1, 1, 0, 1],
        last=[0, 0, 0, 1],
    )
    memory[40 : 40 + beats.size] = beats
    model = IsaModel(WS, memory)
    model.wgt[10:13] = X
    model.acc[:] = 1
    counters = model.run([spmm(nz_addr=40, nz_beats=4, x_row=10, k=3, acc_row=2)])
    expected = [[12, 2, 24], [0, 0, 0], [-7, 27, -3]]
    np.testing.assert_array_equal(model.acc[2:5], expected)
    assert (model.acc[:2] == 1).all() and (model.acc[5:] == 1).all()
    assert counters.macs == 5 * 3 and counters.bytes_loaded == 16  # 5 nonzero values
    model.run([spmm(nz_addr=40, nz_beats=4, x_row=10, k=3, acc_row=2, accumulate=1)])
    np.testing.assert_array_equal(model.acc[2:5], 2 * np.array(expected))


def engine_beats(seed: int, n: int, zeros: float):
    """A random sparse W (n x 4) and X (4 x 3), and a model whose memory holds W's beats as
    `sim.sparse_program.spmm_program` packs one pass (from address 0), X in weight rows 20-23;
    the number of beats and their bytes."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (n, 4), dtype=np.int8)
    w[rng.random(w.shape) < zeros] = 0
    x = rng.integers(-128, 128, (4, 3), dtype=np.int8)
    words = spmm_program(w, x, WS).inputs["nonzeros"]
    beats = words.astype("<u4").view(np.uint8).reshape(-1)
    memory = np.zeros(MEMORY, np.uint8)
    memory[: beats.size] = beats
    model = IsaModel(WS, memory)
    model.wgt[20:24] = x
    return w, x, model, words.shape[0], beats


def test_spmm_reads_the_sparse_engines_own_nonzeros_beats():
    """Beats from `sim.sparse_program.spmm_program` (one pass) give W @ X."""
    w, x, model, n, _ = engine_beats(2, 9, 0.6)
    model.run([spmm(nz_beats=n, x_row=20, k=4, acc_row=3)])
    np.testing.assert_array_equal(model.acc[3:12], gemm(w, x))


def test_a_replay_takes_the_beats_the_last_fill_kept_and_reads_no_memory():
    w, x, model, n, beats = engine_beats(3, 5, 0.5)
    model.wgt[40:44] = -x
    filled = model.run([spmm(nz_beats=n, x_row=20, k=4, acc_row=0, nz_cache=NzCache.FILL)])
    memory_before = model.memory.copy()
    model.memory[: beats.size] = 0  # a REPLAY must not read these
    replayed = model.run([spmm(nz_beats=n, x_row=40, k=4, acc_row=5, nz_cache=NzCache.REPLAY)])
    np.testing.assert_array_equal(model.acc[0:5], gemm(w, x))
    np.testing.assert_array_equal(model.acc[5:10], gemm(w, -x))
    assert filled.bytes_loaded == beats.size and replayed.bytes_loaded == 0
    assert replayed.macs == filled.macs
    # A STREAM after the memory changed sees the new (zero) beats: no cache involved.
    assert not np.array_equal(memory_before, model.memory)
    with pytest.raises(ProgramError, match=f"beat {n - 1} has last = 0"):
        model.run([spmm(nz_beats=n, x_row=20, k=4, acc_row=0)])


def test_nz_cache_3_and_a_fill_past_the_cache_are_refused():
    with pytest.raises(ProgramError, match="nz_cache 3 is not 0, 1 or 2") as caught:
        IsaModel(WS, MEMORY).run([spmm(nz_cache=3)])
    assert caught.value.code is ErrorCode.BAD_FIELD
    cache = WS.sparse_cache_beats
    assert cache == 4 * WS.sparse_depth
    check_program([spmm(nz_beats=cache, nz_cache=NzCache.REPLAY)], WS, MEMORY)
    for mode in (NzCache.FILL, NzCache.REPLAY):
        with pytest.raises(
            ProgramError, match=f"nz_beats {cache + 1} > the {cache} beats"
        ) as caught:
            IsaModel(WS, MEMORY).run([spmm(nz_beats=cache + 1, nz_cache=mode)])
        assert caught.value.code is ErrorCode.TILE_TOO_LARGE
    check_program([spmm(nz_beats=cache + 1)], WS, MEMORY)  # a STREAM has no such bound


@pytest.mark.parametrize(
    ("row_end", "last", "beat", "why"),
    [
        ([1, 0], [0, 1], 1, "is the final one and has no row_end"),  # entries after the row_end
        ([1, 1], [1, 1], 0, "has last = 1"),  # `last` before the final beat
        ([1, 1], [0, 0], 1, "has last = 0"),  # no `last` at all
    ],
)
def test_a_stream_whose_flags_disagree_with_nz_beats_is_a_format_error(row_end, last, beat, why):
    """The pass is nz_beats beats; the rows before the offending beat are written, every beat's
    MACs are counted (the engine takes them all)."""
    memory = np.zeros(MEMORY, np.uint8)
    memory[:8] = nonzero_beats([[1, 0, 0, 0], [9, 1, 9, 2]], row_end=row_end, last=last)
    model = IsaModel(WS, memory)
    model.wgt[0:3] = X
    model.acc[:] = 7
    with pytest.raises(ProgramError, match=rf"^instruction 0: SPMM nonzeros beat {beat} {why}"):
        model.run([spmm(nz_beats=2, acc_row=0)])
    written = [[1, 2, 3]] if beat == 1 else []
    np.testing.assert_array_equal(model.acc[: len(written)], np.array(written).reshape(-1, 3))
    assert (model.acc[len(written) :] == 7).all()


def test_counters_count_instructions_per_queue_and_fences():
    model = IsaModel(WS, MEMORY)
    counters = model.run(
        [
            load(push_next=True),
            Instruction(Op.FENCE),
            matmul(pop_prev=True, push_next=True),
            store(pop_prev=True),
            Instruction(Op.FENCE),
        ]
    )
    assert counters.instructions == {Queue.LOAD: 1, Queue.COMPUTE: 1, Queue.STORE: 1}
    assert counters.fences == 2
    assert (counters.macs, counters.bytes_loaded, counters.bytes_stored) == (12, 6, 24)


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("program", "index", "code"),
    [
        ([load(), load(rows=0)], 1, ErrorCode.BAD_FIELD),
        ([load(spad_row=84)], 0, ErrorCode.SPAD_RANGE),
        ([load(), matmul(acc_row=15)], 1, ErrorCode.ACC_RANGE),
        ([store(dram_addr=MEMORY - 20)], 0, ErrorCode.DRAM_RANGE),
        ([load(op=Op.LOAD_ACT, width=3)], 0, ErrorCode.TILE_TOO_LARGE),
        ([spmm(k=5)], 0, ErrorCode.TILE_TOO_LARGE),
        ([load(pop_prev=True)], 0, ErrorCode.BAD_DEPS),
        ([Instruction(Op.FENCE, push_next=True)], 0, ErrorCode.BAD_DEPS),
        ([load(), matmul(pop_prev=True), store()], 3, ErrorCode.DEADLOCK),
    ],
)
def test_a_refused_program_reports_code_and_index_and_runs_nothing(program, index, code):
    model = IsaModel(WS, np.arange(MEMORY, dtype=np.uint64).astype(np.uint8))
    model.acc[:] = 3
    before = state(model)
    with pytest.raises(ProgramError, match=rf"^instruction {index}: ") as caught:
        model.run(program)
    assert (caught.value.index, caught.value.code) == (index, code)
    assert_state_equal(before, state(model))


def words_with(program, index, word):
    words = encode_program(program)
    words[index] = [(word >> (32 * i)) & 0xFFFF_FFFF for i in range(4)]
    return words


@pytest.mark.parametrize(
    ("words", "index", "code", "message"),
    [
        (words_with([load(), load()], 1, 9), 1, ErrorCode.BAD_OPCODE, "unknown opcode 9"),
        (words_with([load(), load()], 1, 15 | 1 << 60), 1, ErrorCode.BAD_OPCODE, "opcode 15"),
        (words_with([load()], 0, 1 << 100), 0, ErrorCode.BAD_FIELD, "bits set above bit 7"),
        (
            words_with([load(), load()], 1, load().encode() | 1 << 127),
            1,
            ErrorCode.BAD_FIELD,
            "LOAD_WGT word has bits set",
        ),
        # An earlier field error is met first; an earlier pop waiting for a token is not one.
        (words_with([load(rows=0), load()], 1, 9), 0, ErrorCode.BAD_FIELD, "rows is 0"),
        (words_with([matmul(pop_prev=True), load()], 1, 9), 1, ErrorCode.BAD_OPCODE, "opcode"),
    ],
)
def test_undecodable_words_stop_the_program(words, index, code, message):
    model = IsaModel(WS, MEMORY)
    before = state(model)
    with pytest.raises(ProgramError, match=rf"^instruction {index}: .*{message}") as caught:
        model.run_words(words)
    assert (caught.value.index, caught.value.code) == (index, code)
    assert_state_equal(before, state(model))


def test_run_words_runs_an_encoded_program():
    model = IsaModel(WS, np.arange(MEMORY, dtype=np.uint64).astype(np.uint8))
    program = [load(push_next=True), matmul(pop_prev=True, rows=1)]
    counters = model.run_words(encode_program(program))
    assert counters.instructions[Queue.COMPUTE] == 1 and model.wgt[1].tolist() == [3, 4, 5]


def spmm_error_setup(beats):
    memory = np.full(MEMORY, 0xAA, np.uint8)
    memory[:16] = beats
    model = IsaModel(WS, memory)
    model.wgt[0:3] = X
    model.acc[:] = 1
    return model, memory


@pytest.mark.parametrize(
    ("beats", "spmm_fields", "code", "rows_written"),
    [
        # Beat 2 holds index 3 >= k = 3 in a zero entry: rows 0 and 1 are written, row 2 is not.
        (
            nonzero_beats(
                [[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 0, 3], [1, 0, 0, 0]], [1, 1, 1, 1], [0, 0, 0, 1]
            ),
            dict(acc_row=4),
            ErrorCode.SPARSE_FORMAT,
            [[1, 2, 3], [8, 10, 12]],
        ),
        # Four rows from accumulator row 14: rows 14 and 15 are written, then the third fails.
        (
            nonzero_beats(
                [[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 0, 0], [1, 0, 0, 0]], [1, 1, 1, 1], [0, 0, 0, 1]
            ),
            dict(acc_row=14),
            ErrorCode.ACC_RANGE,
            [[1, 2, 3], [8, 10, 12]],
        ),
        # A bad index on the beat that finishes a row past the end: SPARSE_FORMAT wins.
        (
            nonzero_beats(
                [[1, 0, 0, 0], [2, 1, 0, 3], [3, 2, 0, 0], [1, 0, 0, 0]], [1, 1, 1, 1], [0, 0, 0, 1]
            ),
            dict(acc_row=15),
            ErrorCode.SPARSE_FORMAT,
            [[1, 2, 3]],
        ),
    ],
)
def test_spmm_run_time_errors_keep_completed_rows_and_stop_the_program(
    beats, spmm_fields, code, rows_written
):
    model, memory = spmm_error_setup(beats)
    program = [
        store(acc_row=0, rows=1, dram_addr=100, width=1),  # runs: its destination changes
        store(acc_row=0, rows=1, dram_addr=200, width=1, push_prev=True),
        spmm(nz_beats=4, pop_next=True, push_next=True, **spmm_fields),
        store(acc_row=0, rows=1, dram_addr=300, width=1, pop_prev=True),  # never runs
    ]
    with pytest.raises(ProgramError, match=r"^instruction 2: SPMM ") as caught:
        model.run(program)
    assert (caught.value.index, caught.value.code) == (2, code)
    expected = memory.copy()
    expected[100:104] = expected[200:204] = [1, 0, 0, 0]
    np.testing.assert_array_equal(model.memory, expected)
    acc_row = spmm_fields["acc_row"]
    expected_acc = np.ones((16, 3), np.int32)
    expected_acc[acc_row : acc_row + len(rows_written)] = rows_written
    np.testing.assert_array_equal(model.acc, expected_acc)


@pytest.mark.parametrize(
    ("config", "memory", "error", "message"),
    [
        ("ws", MEMORY, TypeError, r"^config must be an AccelConfig, not 'ws'$"),
        (WS, 0, ValueError, r"^memory must be at least 1 byte, not 0$"),
        (WS, 2.0, TypeError, r"^memory must be a size in bytes or a uint8 array, not 2\.0$"),
        (WS, np.zeros(4, np.int8), TypeError, r"^memory must be a uint8 array, not dtype int8$"),
        (WS, np.zeros((2, 2), np.uint8), ValueError, r"^memory must be a non-empty 1-D array"),
    ],
)
def test_constructor_validates(config, memory, error, message):
    with pytest.raises(error, match=message):
        IsaModel(config, memory)


# --------------------------------------------------------------------------------------------------
# Ordering and races


def test_the_nth_pop_is_ordered_after_the_nth_push_only():
    program = [
        load(push_next=True),
        load(spad_row=50, push_next=True),
        matmul(pop_prev=True),
        matmul(pop_prev=True, wgt_row=50),
    ]
    order = Ordering(program)
    assert order.before(0, 2) and order.before(1, 3) and order.before(0, 3)
    assert not order.before(1, 2) and not order.before(2, 1)
    assert order.start[3] == (2, 1, 0)


def test_a_pop_may_come_before_its_push_in_program_order():
    program = [matmul(pop_next=True), store(push_prev=True)]
    order = Ordering(program)
    assert order.before(1, 0) and not order.before(0, 1)
    # The STORE reads the rows before the MATMUL writes them: the model runs it first (a legal
    # schedule, not program order; found by the program fuzzer).
    model = IsaModel(WS, MEMORY)
    model.acc[:] = 3
    model.act[:], model.wgt[:] = 1, 2
    model.run(program)
    assert model.memory[400:424].view("<i4").tolist() == [3] * 6
    assert (model.acc[:2] == 4).all()


def test_a_fence_orders_everything_around_it():
    program = [load(), Instruction(Op.FENCE), matmul(), store()]
    order = Ordering(program)
    assert order.before(0, 2) and order.before(0, 3) and order.before(1, 2)
    assert not order.before(2, 3)  # nothing orders the MATMUL and the STORE
    with pytest.raises(RaceError, match=r"^instructions 2 \(MATMUL.*\) and 3 \(STORE"):
        IsaModel(WS, MEMORY).run(program)


@pytest.mark.parametrize(
    ("program", "first", "second", "memory"),
    [
        # The MATMUL does not wait for the weights it reads.
        ([load(), matmul()], 0, 1, WEIGHTS),
        # Double buffering without the token back: the third load overwrites bank 0 while the
        # first MATMUL may still read it.
        (
            [
                load(push_next=True),
                load(spad_row=42, push_next=True),
                matmul(pop_prev=True, push_prev=True),
                matmul(pop_prev=True, wgt_row=42, push_prev=True),
                load(push_next=True),  # missing pop_next
                matmul(pop_prev=True),
                load(spad_row=42, pop_next=True, push_next=True),
                matmul(pop_prev=True, wgt_row=42),
            ],
            2,
            4,
            WEIGHTS,
        ),
        # The STORE does not wait for the MATMUL that fills its rows.
        ([matmul(), store()], 0, 1, ACCUMULATOR),
        # A later MATMUL overwrites rows the STORE may not have read yet.
        ([matmul(push_next=True), store(pop_prev=True), matmul(acc_row=1)], 1, 2, ACCUMULATOR),
        # A LOAD reads bytes an earlier STORE writes, with no chain of tokens between them.
        ([store(dram_addr=0, rows=1), load(dram_addr=8, rows=1)], 0, 1, MAIN),
        # New lane parameters may arrive while an int8 STORE still uses the old ones.
        ([store(int8=1, width=1, rows=1), params(lanes=1)], 0, 1, LANES),
    ],
)
def test_a_missing_token_is_a_race(program, first, second, memory):
    with pytest.raises(RaceError) as caught:
        IsaModel(WS, MEMORY).run(program)
    race = caught.value.races[0]
    assert (race.first, race.second, race.memory) == (first, second, memory)
    assert race.first_region.overlaps(race.second_region)


@pytest.mark.parametrize(
    "program",
    [
        [load(push_next=True), matmul(pop_prev=True)],
        [load(), Instruction(Op.FENCE), matmul()],
        [
            load(push_next=True),
            load(spad_row=42, push_next=True),
            matmul(pop_prev=True, push_prev=True),
            matmul(pop_prev=True, wgt_row=42, push_prev=True),
            load(pop_next=True, push_next=True),
            matmul(pop_prev=True),
            load(spad_row=42, pop_next=True, push_next=True),
            matmul(pop_prev=True, wgt_row=42),
        ],
        [matmul(push_next=True), store(pop_prev=True, push_prev=True), matmul(pop_next=True)],
        # STORE -> (token) MATMUL -> (token) LOAD of the stored bytes.
        [
            store(dram_addr=0, rows=1, push_prev=True),
            matmul(pop_next=True, push_prev=True, acc_row=4),
            load(dram_addr=8, rows=1, pop_next=True),
        ],
        # Disjoint rows and bytes need no order.
        [load(), matmul(wgt_row=10, acc_row=4), store(dram_addr=100, acc_row=8)],
        # Interleaved strided rows that never share a byte.
        [store(dram_addr=100, dram_stride=24, width=3), load(dram_addr=112, dram_stride=24)],
    ],
)
def test_ordered_or_disjoint_accesses_are_no_race(program):
    IsaModel(WS, MEMORY).run(program)
    assert find_races(program, WS) == []


def test_every_racing_pair_is_listed_and_the_check_can_be_skipped():
    program = [load(), load(spad_row=1, rows=1), matmul(), store()]
    races = find_races(program, WS)
    assert [(r.first, r.second, r.memory) for r in races] == [
        (0, 2, WEIGHTS),
        (1, 2, WEIGHTS),
        (2, 3, ACCUMULATOR),
    ]
    model = IsaModel(WS, MEMORY)
    model.run(program, check_races=False)
    with pytest.raises(RaceError, match=r"\(3 racing pairs\)$"):
        model.run(program)


def test_spmm_races_on_the_rows_it_actually_wrote():
    memory = np.zeros(MEMORY, np.uint8)
    memory[:8] = nonzero_beats([[1, 0, 0, 0], [2, 1, 0, 0]], [1, 1], [0, 1])
    fine = [spmm(nz_beats=2, acc_row=0), store(acc_row=2, rows=1)]  # rows 0-1 only
    IsaModel(WS, memory).run(fine)
    racing = [spmm(nz_beats=2, acc_row=0), store(acc_row=1, rows=1)]
    with pytest.raises(RaceError, match=r"accumulator memory \[0, 2\)"):
        IsaModel(WS, memory).run(racing)


def test_region_overlap_is_exact_for_strided_rows():
    rows = Region(MAIN, 0, 4, 2, 10)  # [0,2) [10,12) [20,22) [30,32)
    assert not rows.overlaps(Region(MAIN, 2, 4, 8, 10))
    assert rows.overlaps(Region(MAIN, 21, 1, 1))
    assert not rows.overlaps(Region(MAIN, 32, 1, 5))
    assert not rows.overlaps(Region(WEIGHTS, 0, 1, 40))
    assert Region(MAIN, 5, 3, 4, 0).overlaps(Region(MAIN, 8, 1, 1))  # stride 0: one row thrice
