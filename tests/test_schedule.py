"""Scheduled GEMM and SPMM programs, run on the functional ISA model, against the golden models."""

import dataclasses
from collections import Counter

import numpy as np
import pytest

from hdl.config import AccelConfig
from hdl.isa import Instruction, Op, Queue, check_program
from sim.golden.gemm import MAX_K_NO_OVERFLOW, gemm
from sim.golden.requant import RequantParams, requantize_float
from sim.isa_model import IsaModel
from sim.races import Ordering, RaceError
from sim.schedule import gemm_memory, gemm_schedule, matmul_steps
from sim.sparse_program import spmm_program
from sim.spmm_schedule import spmm_memory, spmm_schedule

# (rows, cols, spad_bytes, acc_rows): small scratchpads and accumulators, so that M, N and K
# split into several blocks and tiles and the accumulator rows are reused.
ARRAYS = [(1, 1, 256, 16), (2, 3, 256, 16), (4, 4, 256, 32), (8, 8, 512, 16), (16, 16, 1024, 64)]


def config_of(rows, cols, spad_bytes, acc_rows, dataflow):
    return AccelConfig(
        rows=rows, cols=cols, dataflow=dataflow, spad_bytes=spad_bytes, acc_rows=acc_rows
    )


def random_gemm(rng, m, n, k, int8):
    """Operands with the int8 extremes planted, and requantization parameters for int8."""
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a[0], b[:, -1] = -128, -128
    if not int8:
        return a, b, None, None
    multiplier = (2.0 ** rng.uniform(-16, -6, n)).astype(np.float32)
    params = RequantParams(multiplier, int(rng.integers(-128, 128)), bool(rng.integers(2)))
    return a, b, rng.integers(-(2**16), 2**16, n).astype(np.int32), params


def run_gemm(config, a, b, bias=None, params=None):
    """Lay out, schedule, check and run; the result and the final model."""
    memory, layout = gemm_memory(a, b, config, bias=bias, params=params)
    program = layout.schedule()
    check_program(program, config, memory.size)
    model = IsaModel(config, memory)
    model.run(program)  # also the race check
    return layout.result(model.memory), model, memory, layout, program


def expected(a, b, bias, params):
    if params is None:
        return gemm(a, b)
    return requantize_float(gemm(a, b, bias), params)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("int8", [False, True], ids=["int32", "int8"])
@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a[0]}x{a[1]}")
def test_random_gemms_equal_the_golden_model(array, int8, dataflow):
    config = config_of(*array, dataflow)
    rng = np.random.default_rng(sum(array) + 7 * int8 + (dataflow == "os"))
    r, c = array[:2]
    shapes = [
        (1, 1, 1),
        (r, c, r),
        *(
            tuple(int(v) for v in rng.integers(1, [3 * r + 6, 3 * c + 6, 3 * r + 6]))
            for _ in range(6)
        ),
    ]
    for m, n, k in shapes:
        a, b, bias, params = random_gemm(rng, m, n, k, int8)
        result, _, _, _, program = run_gemm(config, a, b, bias, params)
        np.testing.assert_array_equal(result, expected(a, b, bias, params), err_msg=f"{m}x{n}x{k}")
        steps = matmul_steps(m, n, k, config, requant=int8)
        assert Counter(i.op for i in program)[Op.MATMUL] == steps


def test_only_c_changes_in_memory():
    config = config_of(2, 3, 256, 16, "os")
    a, b, bias, params = random_gemm(np.random.default_rng(3), 7, 5, 9, True)
    _, model, memory, layout, _ = run_gemm(config, a, b, bias, params)
    changed = np.flatnonzero(model.memory != memory)
    assert changed.min() >= layout.c_addr and changed.max() < layout.c_addr + 7 * 5


def test_the_layout_puts_a_transposed_for_output_stationary():
    a = np.arange(6, dtype=np.int8).reshape(2, 3)
    b = np.ones((3, 4), np.int8)
    for dataflow, image in (("ws", a), ("os", a.T)):
        memory, layout = gemm_memory(a, b, config_of(2, 2, 256, 16, dataflow), align=8)
        assert (layout.a_addr, layout.b_addr, layout.params_addr, layout.c_addr) == (0, 8, None, 24)
        assert memory.size == layout.size == 24 + 2 * 4 * 4
        np.testing.assert_array_equal(memory[:6].view(np.int8), image.reshape(-1))
        np.testing.assert_array_equal(memory[8:20].view(np.int8), b.reshape(-1))


def test_parameter_records_hold_each_field_where_docs_isa_says():
    params = RequantParams(np.array([0.5, 3.0], np.float32), out_zero_point=-3, relu=True)
    a, b = np.ones((1, 1), np.int8), np.ones((1, 2), np.int8)
    bias = np.array([-2, 1 << 20], np.int32)
    memory, layout = gemm_memory(a, b, config_of(2, 2, 256, 16, "ws"), bias=bias, params=params)
    records = memory[layout.params_addr : layout.params_addr + 32].reshape(2, 16)
    # bias LE, m24 LE (0.5 = 2**23 * 2**-24, 3 = 3 * 2**22 * 2**-22), shift, zero point, ReLU
    assert records[0, :10].tolist() == [0xFE, 0xFF, 0xFF, 0xFF, 0, 0, 0x80, 24, 0xFD, 1]
    assert records[1, :10].tolist() == [0, 0, 0x10, 0, 0, 0, 0xC0, 22, 0xFD, 1]
    assert not records[:, 10:].any()


def test_operands_anywhere_in_memory_at_any_alignment():
    """gemm_schedule on hand-placed operands at odd addresses, with memory around them."""
    config = config_of(4, 4, 256, 32, "ws")
    rng = np.random.default_rng(4)
    a, b, _, _ = random_gemm(rng, 6, 5, 7, False)
    memory = rng.integers(0, 256, 400, dtype=np.uint8)
    memory[3 : 3 + 42] = a.view(np.uint8).reshape(-1)
    memory[101 : 101 + 35] = b.view(np.uint8).reshape(-1)
    program = gemm_schedule(3, 101, 201, 6, 5, 7, config)
    model = IsaModel(config, memory)
    model.run(program)
    result = model.memory[201 : 201 + 120].view("<i4").reshape(6, 5)
    np.testing.assert_array_equal(result, gemm(a, b))
    np.testing.assert_array_equal(model.memory[:201], memory[:201])
    np.testing.assert_array_equal(model.memory[321:], memory[321:])


def token_counts(program):
    """(pushes, pops) per token channel (from queue, to queue)."""
    pushes, pops = Counter(), Counter()
    for ins in program:
        for side, step in (("prev", -1), ("next", 1)):
            other = None if ins.queue is None else ins.queue + step
            if ins.deps[f"push_{side}"]:
                pushes[(ins.queue, other)] += 1
            if ins.deps[f"pop_{side}"]:
                pops[(other, ins.queue)] += 1
    return pushes, pops


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_tokens_balance_and_banks_alternate(dataflow):
    config = config_of(2, 3, 256, 16, dataflow)
    a, b, bias, params = random_gemm(np.random.default_rng(5), 11, 7, 9, True)
    _, _, _, _, program = run_gemm(config, a, b, bias, params)
    pushes, pops = token_counts(program)
    assert pushes == pops  # every token pushed is popped: the next program starts clean
    matmuls = [i for i in program if i.op is Op.MATMUL]
    half_act, half_wgt = 128 // 2, 85 // 2  # bank sizes of this configuration
    for step, ins in enumerate(matmuls):
        assert (ins.act_row >= half_act, ins.wgt_row >= half_wgt) == (step % 2, step % 2)
    fences = [i for i in program if i.op is Op.FENCE]
    assert len(fences) == len(range(0, 7, 3)) - 1  # one before each later N-tile's parameters


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_loads_and_stores_overlap_compute(dataflow):
    """Nothing orders a step's loads after the previous MATMUL, nor the next block's first
    MATMUL after the previous block's STORE: the queues can run them at the same time."""
    config = config_of(2, 2, 256, 16, dataflow)
    a, b, _, _ = random_gemm(np.random.default_rng(6), 8, 4, 8, False)
    _, _, _, _, program = run_gemm(config, a, b)
    order = Ordering(program)
    index = {q: order.members[q] for q in Queue}
    loads, computes, stores = index[Queue.LOAD], index[Queue.COMPUTE], index[Queue.STORE]
    for step in range(1, len(computes)):
        first_load = loads[2 * step]
        assert not order.before(computes[step - 1], first_load)  # may run during step - 1
        if step >= 2:
            assert order.before(computes[step - 2], first_load)  # its bank is released
    for store in stores:
        later = [c for c in computes if c > store]
        if later:
            assert not order.before(store, later[0])  # the next block may compute meanwhile


def without_flag(program, index, flag):
    ins = program[index]
    changed = list(program)
    changed[index] = Instruction(ins.op, **ins.fields, **{**ins.deps, flag: False})
    return changed


@pytest.mark.parametrize("workload", ["ws", "os", "spmm"])
def test_every_token_the_schedule_pops_is_needed(workload):
    """Clearing any one pop flag of a scheduled program makes the model find a race."""
    rng = np.random.default_rng(8)
    if workload == "spmm":
        config = AccelConfig(rows=2, cols=2, sparse_lanes=4, sparse_depth=4, acc_rows=16)
        w = rng.integers(-3, 4, (20, 9), dtype=np.int8)
        memory, layout = spmm_memory(w, rng.integers(-128, 128, (9, 3), dtype=np.int8), config)
        program = spmm_schedule(layout)
    else:
        config = config_of(2, 2, 256, 16, workload)
        a, b, _, _ = random_gemm(rng, 12, 5, 5, False)
        memory, layout = gemm_memory(a, b, config)
        program = layout.schedule()
    pops = [
        (i, flag)
        for i, ins in enumerate(program)
        for flag in ("pop_prev", "pop_next")
        if ins.deps[flag]
    ]
    assert len(pops) > 40
    for index, flag in pops:
        with pytest.raises(RaceError):
            IsaModel(config, memory).run(without_flag(program, index, flag))


def test_a_small_accumulator_reuses_rows_through_store_tokens():
    config = config_of(4, 4, 256, 16, "os")  # 16 rows: four OS blocks of 4 rows at a time
    a, b, _, _ = random_gemm(np.random.default_rng(7), 30, 9, 5, False)
    result, _, _, _, program = run_gemm(config, a, b)
    np.testing.assert_array_equal(result, gemm(a, b))
    stores = [i for i in program if i.op is Op.STORE]
    assert len({s.acc_row for s in stores}) == 4 and len(stores) == 8 * 3
    reusing = [i for i in program if i.op is Op.MATMUL and i.deps["pop_next"]]
    assert len(reusing) == len(stores) - 4


@pytest.mark.parametrize(
    ("config", "call", "error", "message"),
    [
        (
            config_of(16, 16, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 0, 0, 4, 4, 4, c),
            ValueError,
            r"^spad_bytes = 256 gives weight banks of 8 rows; a WS weight tile needs R = 16 rows "
            r"in each bank \(spad_bytes >= 512\)$",
        ),
        (
            config_of(32, 2, 256, 16, "os"),
            lambda c: gemm_schedule(0, 0, 0, 4, 4, 4, c),
            ValueError,
            r"^acc_rows = 16 cannot hold an OS block of R = 32 rows$",
        ),
        (
            config_of(2, 256, 256, 16, "os"),
            lambda c: gemm_schedule(0, 0, 0, 4, 4, 4, c),
            ValueError,
            r"^spad_bytes = 256 leaves a scratchpad bank without rows for a 2 x 256 array$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 0, 0, 1, 1, MAX_K_NO_OVERFLOW + 1, c),
            ValueError,
            r"^k must be at most 131071 .*, not 131072; split K",
        ),
        (None, lambda c: gemm_schedule(0, 0, 0, 1, 1, 1, "ws"), TypeError, r"^config must be"),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(-1, 0, 0, 1, 1, 1, c),
            ValueError,
            r"^a_addr must be at least 0, not -1$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 0, 0, 1.0, 1, 1, c),
            TypeError,
            r"^m must be an int, not 1\.0$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 0, 0, 1, 0, 1, c),
            ValueError,
            r"^n must be at least 1, not 0$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 0, 0, 1, 1, 1, c, requant="0"),
            TypeError,
            r"^requant must be an int, not '0'$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_schedule(0, 1 << 25, 0, 1, 1 << 25, 1, c),
            ValueError,
            r"^B's row stride must be below 2\*\*24 bytes \(dram_stride\), not 33554432$",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_memory(
                np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), c, bias=np.zeros(2, np.int32)
            ),
            ValueError,
            r"^bias needs params",
        ),
        (
            config_of(2, 2, 256, 16, "ws"),
            lambda c: gemm_memory(np.ones((2, 3), np.int8), np.ones((2, 2), np.int8), c),
            ValueError,
            r"^inner dimensions differ",
        ),
        (None, lambda c: spmm_schedule("layout"), TypeError, r"^layout must be a SpmmLayout"),
        (
            AccelConfig(rows=1, cols=256, spad_bytes=256),
            lambda c: spmm_memory(np.ones((1, 1), np.int8), np.ones((1, 1), np.int8), c),
            ValueError,
            r"^spad_bytes = 256 leaves weight banks without rows$",
        ),
    ],
)
def test_bad_arguments_name_the_value(config, call, error, message):
    with pytest.raises(error, match=message):
        call(config)


# --------------------------------------------------------------------------------------------------
# Sparse W @ X through SPMM

# (rows, cols, sparse_lanes, sparse_depth, spad_bytes, acc_rows)
ENGINES = [
    (1, 1, 1, 4, 256, 16),
    (2, 3, 6, 8, 256, 16),
    (4, 4, 16, 16, 256, 32),
    (4, 4, 8, 64, 1024, 16),
]


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: f"C{e[1]}G{e[2] // e[1]}D{e[3]}")
def test_random_sparse_products_equal_the_golden_model(engine):
    rows, cols, lanes, depth, spad, acc = engine
    config = AccelConfig(
        rows=rows,
        cols=cols,
        sparse_lanes=lanes,
        sparse_depth=depth,
        spad_bytes=spad,
        acc_rows=acc,
    )
    rng = np.random.default_rng(lanes + depth)
    for sparsity in (0.0, 0.5, 0.9, 1.0):
        n, k, m = (int(v) for v in rng.integers(1, 40, 3))
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        w[rng.random((n, k)) < sparsity] = 0
        w[0, : min(k, 3)] = -128
        x = rng.integers(-128, 128, (k, m), dtype=np.int8)
        memory, layout = spmm_memory(w, x, config)
        program = spmm_schedule(layout)
        model = IsaModel(config, memory)
        model.run(program)
        np.testing.assert_array_equal(
            layout.result(model.memory), gemm(w, x), err_msg=f"{n}x{k}x{m}"
        )
        pushes, pops = token_counts(program)
        assert pushes == pops


def test_sparse_chunks_and_row_groups_follow_the_configuration():
    config = AccelConfig(
        rows=2, cols=2, sparse_lanes=4, sparse_depth=8, spad_bytes=256, acc_rows=16
    )
    w = np.eye(20, 30, dtype=np.int8)
    x = np.ones((30, 3), np.int8)
    _, layout = spmm_memory(w, x, config)
    assert layout.chunks == ((0, 8), (8, 8), (16, 8), (24, 6))  # depth 8 (weight banks: 64)
    assert layout.row_groups == ((0, 8), (8, 8), (16, 4))  # half the accumulator
    program = spmm_schedule(layout)
    assert Counter(i.op for i in program)[Op.SPMM] == 2 * 3 * 4  # column blocks, groups, chunks
    small = dataclasses.replace(config, sparse_depth=64)  # weight banks of 64 rows cap it
    assert spmm_memory(np.ones((1, 100), np.int8), np.ones((100, 1), np.int8), small)[1].chunks == (
        (0, 64),
        (64, 36),
    )


def test_sparse_products_need_a_sparse_engine():
    config = AccelConfig(rows=2, cols=2, sparse_lanes=0, spad_bytes=256, acc_rows=16)
    w, x = np.eye(4, 6, dtype=np.int8), np.ones((6, 2), np.int8)
    with pytest.raises(ValueError, match=r"^spmm_memory needs the sparse engine"):
        spmm_memory(w, x, config)
    with pytest.raises(ValueError, match=r"^spmm_program needs the sparse engine"):
        spmm_program(w, x, config)


@pytest.mark.parametrize("tiles", range(3, 27))
def test_activation_reuse_is_race_free_for_any_number_of_n_tiles(tiles):
    """The reuse path splits the N-tiles into groups and keeps fewer weight tiles in flight
    than the smallest group has (a trailing group of 4 behind groups of 8 once raced: its
    slice prefetch overwrote a bank the MATMULs still read)."""
    config = AccelConfig(rows=4, cols=4, spad_bytes=1024, acc_rows=256)  # 64 weight buffers
    a, b, _, _ = random_gemm(np.random.default_rng(tiles), 12, 4 * tiles - 1, 9, False)
    result, _, _, _, program = run_gemm(config, a, b)
    np.testing.assert_array_equal(result, gemm(a, b))
    assert any(i.op is Op.LOAD_WGT and i.deps["pop_next"] for i in program)
