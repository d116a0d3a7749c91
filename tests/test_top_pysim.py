# amaranth: UnusedElaboratable=no
"""The whole accelerator in Amaranth's simulator: programs from memory, results in memory.

Small configurations (2x2 and 2x3 arrays, 4-byte bus) and hand-written programs; GEMMs of any
shape come with the scheduler (sim/schedule.py) and the native harness.
"""

import numpy as np
import pytest
from accel_checks import small_config
from sparse_operands import sparse_operands

from hdl.isa import (
    QUEUE_DEPTH,
    ErrorCode,
    Instruction,
    Op,
    ProgramError,
    check_program,
    encode_program,
)
from sim.drivers.accel_pysim import run_accelerator
from sim.drivers.accel_results import MemoryRangeError
from sim.drivers.native import SimulationTimeoutError
from sim.golden.gemm import gemm
from sim.golden.param_records import pack_param_records
from sim.golden.requant import RequantParams, requantize_float
from sim.sparse_program import spmm_program

A_ADDR, B_ADDR, C_ADDR, P_ADDR = 0, 512, 1024, 2048


def config_of(rows=2, cols=2, dataflow="ws"):
    return small_config(rows, cols, dataflow, mem_bytes=4096)


def place(memory, address, array):
    raw = np.ascontiguousarray(array).view(np.uint8).ravel()
    memory[address : address + raw.size] = raw


def ws_program(m, k, n, *, int8=False):
    """One weight tile (K <= R, N <= C): load B and A, one MATMUL, store C."""
    program = [
        Instruction(Op.LOAD_WGT, dram_addr=B_ADDR, dram_stride=n, rows=k, spad_row=0, width=n),
        Instruction(
            Op.LOAD_ACT,
            dram_addr=A_ADDR,
            dram_stride=k,
            rows=m,
            spad_row=0,
            width=k,
            push_next=True,
        ),
        Instruction(
            Op.MATMUL,
            act_row=0,
            wgt_row=0,
            rows=m,
            acc_row=0,
            accumulate=0,
            pop_prev=True,
            push_next=True,
        ),
    ]
    if int8:
        program.insert(0, Instruction(Op.LOAD_PARAMS, dram_addr=P_ADDR, lanes=n))
    element = 1 if int8 else 4
    program.append(
        Instruction(
            Op.STORE,
            acc_row=0,
            rows=m,
            dram_addr=C_ADDR,
            dram_stride=element * n,
            int8=int(int8),
            width=n,
            pop_prev=True,
        )
    )
    return program


def operands(seed, m, k, n):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a[0], b[:, 0] = -128, -128
    return a, b


@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (5, 2, 2), (7, 1, 2), (3, 2, 1)])
def test_one_tile_int32_from_memory(m, k, n):
    config = config_of()
    a, b = operands(m * 10 + k, m, k, n)
    memory = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    program = ws_program(m, k, n)
    check_program(program, config)
    run = run_accelerator(config, memory, encode_program(program), latency=0)
    assert run.error is ErrorCode.NONE
    out = run.memory[C_ADDR : C_ADDR + 4 * m * n].view(np.int32).reshape(m, n)
    np.testing.assert_array_equal(out, gemm(a, b))
    expected = memory.copy()  # nothing else in memory changed
    place(expected, C_ADDR, gemm(a, b))
    np.testing.assert_array_equal(run.memory, expected)
    counters = run.counters
    assert run.accepted == counters["instructions"] == len(program)
    assert counters["cycles"] == run.cycles  # stopped before the edge of the first idle cycle
    assert counters["macs"] == m * 2 * 2
    assert counters["bytes_written"] == 4 * m * n


def test_requantized_int8_store():
    config = config_of()
    m, k, n = 6, 2, 2
    a, b = operands(3, m, k, n)
    bias = np.array([1000, -70000], np.int32)
    params = RequantParams(np.array([0.0123, 0.5], np.float32), -5, relu=True)
    memory = np.zeros(4096, np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    memory[P_ADDR : P_ADDR + 32] = pack_param_records(bias, params)
    # The requantizer lanes add the bias: the store writes requantize(acc + bias).
    program = ws_program(m, k, n, int8=True)
    check_program(program, config)
    run = run_accelerator(config, memory, encode_program(program), latency=0)
    assert run.error is ErrorCode.NONE
    out = run.memory[C_ADDR : C_ADDR + m * n].view(np.int8).reshape(m, n)
    sums = (gemm(a, b).astype(np.int64) + bias).astype(np.int32)
    np.testing.assert_array_equal(out, requantize_float(sums, params))


def test_k_tiles_accumulate_and_memory_latency_is_tolerated():
    """K = 4 on a 2-row array: two weight tiles, the second MATMUL accumulates."""
    config = config_of()
    m, k, n = 5, 4, 2
    a, b = operands(7, m, k, n)
    memory = np.zeros(4096, np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    program = [
        Instruction(Op.LOAD_WGT, dram_addr=B_ADDR, dram_stride=n, rows=4, spad_row=0, width=n),
        # A's two K-slices into activation rows 0-4 and 8-12.
        Instruction(Op.LOAD_ACT, dram_addr=A_ADDR, dram_stride=k, rows=m, spad_row=0, width=2),
        Instruction(
            Op.LOAD_ACT,
            dram_addr=A_ADDR + 2,
            dram_stride=k,
            rows=m,
            spad_row=8,
            width=2,
            push_next=True,
        ),
        Instruction(
            Op.MATMUL, act_row=0, wgt_row=0, rows=m, acc_row=0, accumulate=0, pop_prev=True
        ),
        Instruction(
            Op.MATMUL, act_row=8, wgt_row=2, rows=m, acc_row=0, accumulate=1, push_next=True
        ),
        Instruction(
            Op.STORE,
            acc_row=0,
            rows=m,
            dram_addr=C_ADDR,
            dram_stride=4 * n,
            int8=0,
            width=n,
            pop_prev=True,
        ),
    ]
    check_program(program, config)
    for latency, stall in ((0, 0.0), (7, 0.3)):
        run = run_accelerator(
            config, memory, encode_program(program), latency=latency, stall=stall, seed=latency
        )
        out = run.memory[C_ADDR : C_ADDR + 4 * m * n].view(np.int32).reshape(m, n)
        np.testing.assert_array_equal(out, gemm(a, b))


def test_output_stationary_tile():
    config = config_of(2, 3, "os")
    k = 5
    a, b = operands(9, 2, k, 3)  # A 2 x 5 (R rows), B 5 x 3 (C columns)
    memory = np.zeros(4096, np.uint8)
    place(memory, A_ADDR, np.ascontiguousarray(a.T))  # OS reads columns of A: store A^T
    place(memory, B_ADDR, b)
    program = [
        Instruction(Op.LOAD_ACT, dram_addr=A_ADDR, dram_stride=2, rows=k, spad_row=0, width=2),
        Instruction(
            Op.LOAD_WGT,
            dram_addr=B_ADDR,
            dram_stride=3,
            rows=k,
            spad_row=0,
            width=3,
            push_next=True,
        ),
        Instruction(
            Op.MATMUL,
            act_row=0,
            wgt_row=0,
            rows=k,
            acc_row=2,
            accumulate=0,
            pop_prev=True,
            push_next=True,
        ),
        Instruction(
            Op.STORE,
            acc_row=2,
            rows=2,
            dram_addr=C_ADDR,
            dram_stride=12,
            int8=0,
            width=3,
            pop_prev=True,
        ),
    ]
    check_program(program, config)
    run = run_accelerator(config, memory, encode_program(program), latency=0)
    out = run.memory[C_ADDR : C_ADDR + 24].view(np.int32).reshape(2, 3)
    np.testing.assert_array_equal(out, gemm(a, b))


def test_fence_orders_without_tokens():
    config = config_of()
    m, k, n = 4, 2, 2
    a, b = operands(11, m, k, n)
    memory = np.zeros(4096, np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    program = [
        Instruction(Op.LOAD_WGT, dram_addr=B_ADDR, dram_stride=n, rows=k, spad_row=0, width=n),
        Instruction(Op.LOAD_ACT, dram_addr=A_ADDR, dram_stride=k, rows=m, spad_row=0, width=k),
        Instruction(Op.FENCE),
        Instruction(Op.MATMUL, act_row=0, wgt_row=0, rows=m, acc_row=0, accumulate=0),
        Instruction(Op.FENCE),
        Instruction(Op.STORE, acc_row=0, rows=m, dram_addr=C_ADDR, dram_stride=8, int8=0, width=n),
    ]
    check_program(program, config)
    run = run_accelerator(config, memory, encode_program(program), latency=0)
    out = run.memory[C_ADDR : C_ADDR + 4 * m * n].view(np.int32).reshape(m, n)
    np.testing.assert_array_equal(out, gemm(a, b))
    assert run.counters["dependency_stall"] > 0


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (
            Instruction(Op.LOAD_ACT, dram_addr=4090, dram_stride=2, rows=4, spad_row=0, width=2),
            ErrorCode.DRAM_RANGE,
        ),
        (
            Instruction(Op.LOAD_WGT, dram_addr=0, dram_stride=2, rows=4, spad_row=127, width=2),
            ErrorCode.SPAD_RANGE,
        ),
        (
            Instruction(Op.LOAD_ACT, dram_addr=0, dram_stride=2, rows=4, spad_row=0, width=3),
            ErrorCode.TILE_TOO_LARGE,
        ),
        (
            Instruction(Op.MATMUL, act_row=0, wgt_row=0, rows=4, acc_row=14, accumulate=0),
            ErrorCode.ACC_RANGE,
        ),
        (
            Instruction(Op.STORE, acc_row=0, rows=0, dram_addr=0, dram_stride=8, int8=0, width=2),
            ErrorCode.BAD_FIELD,
        ),
        (
            Instruction(
                Op.STORE,
                acc_row=0,
                rows=2,
                dram_addr=0,
                dram_stride=8,
                int8=0,
                width=2,
                push_next=True,
            ),
            ErrorCode.BAD_DEPS,
        ),
        (
            Instruction(
                Op.SPMM, nz_addr=0, nz_beats=1, x_row=0, k=17, acc_row=0, accumulate=0, nz_cache=0
            ),
            ErrorCode.TILE_TOO_LARGE,
        ),
    ],
)
def test_bad_instruction_stops_with_code_and_index(bad, code):
    config = config_of()
    m, k, n = 3, 2, 2
    a, b = operands(5, m, k, n)
    memory = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    good = ws_program(m, k, n)
    program = [*good[:3], bad, *good[3:]]  # the STORE after the bad word must not run
    with pytest.raises(ProgramError, match=r"^instruction 3: ") as caught:
        check_program(program, config)  # the host checker agrees
    assert caught.value.code is code
    words = encode_program(program)
    run = run_accelerator(config, memory, words, latency=0)
    assert (run.error, run.error_index) == (code, 3)
    np.testing.assert_array_equal(run.memory, memory)  # nothing was stored


def test_unknown_opcode_and_stray_bits():
    config = config_of()
    memory = np.zeros(4096, np.uint8)
    words = encode_program([Instruction(Op.FENCE)] * 3)
    words[1, 0] = 9  # opcode 9
    words[2, 3] = 1 << 31  # a FENCE with bit 127 set
    run = run_accelerator(config, memory, words, latency=0)
    assert (run.error, run.error_index) == (ErrorCode.BAD_OPCODE, 1)
    words[1, 0] = 0
    run = run_accelerator(config, memory, words, latency=0)
    assert (run.error, run.error_index) == (ErrorCode.BAD_FIELD, 2)


def spmm_program_in_memory(w, x, config, memory):
    """Place X (K x C) and W's packed nonzeros beats in memory; the SPMM program."""
    program_beats = spmm_program(w, x, config).inputs["nonzeros"]
    place(memory, B_ADDR, x)
    place(memory, P_ADDR, program_beats)
    k, n = w.shape[1], w.shape[0]
    return [
        Instruction(
            Op.LOAD_WGT,
            dram_addr=B_ADDR,
            dram_stride=x.shape[1],
            rows=k,
            spad_row=0,
            width=x.shape[1],
            push_next=True,
        ),
        Instruction(
            Op.SPMM,
            nz_addr=P_ADDR,
            nz_beats=program_beats.shape[0],
            x_row=0,
            k=k,
            acc_row=1,
            accumulate=0,
            nz_cache=0,
            pop_prev=True,
            push_next=True,
        ),
        Instruction(
            Op.STORE,
            acc_row=1,
            rows=n,
            dram_addr=C_ADDR,
            dram_stride=4 * x.shape[1],
            int8=0,
            width=x.shape[1],
            pop_prev=True,
        ),
    ]


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_sparse_gemm_through_the_spmm_engine(sparsity):
    config = config_of()  # G = 2 nonzeros x C = 2 columns per cycle
    w, x = sparse_operands(int(sparsity * 10), 6, 9, 2, sparsity)
    memory = np.zeros(4096, np.uint8)
    program = spmm_program_in_memory(w, x, config, memory)
    check_program(program, config)
    run = run_accelerator(config, memory, encode_program(program), latency=0)
    assert run.error is ErrorCode.NONE
    out = run.memory[C_ADDR : C_ADDR + 4 * 6 * 2].view(np.int32).reshape(6, 2)
    np.testing.assert_array_equal(out, gemm(w, x))
    assert run.counters["macs"] == np.count_nonzero(w) * 2


def test_spmm_runtime_errors_name_the_instruction():
    config = config_of()
    w, x = sparse_operands(1, 3, 5, 2, 0.0)
    memory = np.zeros(4096, np.uint8)
    program = spmm_program_in_memory(w, x, config, memory)
    # The X block holds 5 rows; claiming 4 makes index 4 of the nonzeros past k.
    short = Instruction(Op.SPMM, **{**program[1].fields, "k": 4}, pop_prev=True)
    run = run_accelerator(config, memory, encode_program([program[0], short]), latency=0)
    assert (run.error, run.error_index) == (ErrorCode.SPARSE_FORMAT, 1)
    # 3 output rows from accumulator row 14 of 16: the third is past the end.
    late = Instruction(Op.SPMM, **{**program[1].fields, "acc_row": 14}, pop_prev=True)
    run = run_accelerator(config, memory, encode_program([program[0], late]), latency=0)
    assert (run.error, run.error_index) == (ErrorCode.ACC_RANGE, 1)


def test_a_cycle_limit_or_a_hang_raises_naming_the_limit():
    config = config_of()
    a, b = operands(5, 3, 2, 2)
    memory = np.zeros(4096, np.uint8)
    place(memory, A_ADDR, a)
    place(memory, B_ADDR, b)
    words = encode_program(ws_program(3, 2, 2))
    with pytest.raises(
        SimulationTimeoutError,
        match=r"did not finish within max_cycles=10; stopped at cycle 10 with \d of 4 instruction",
    ) as caught:
        run_accelerator(config, memory, words, latency=0, max_cycles=10)
    assert caught.value.cycles == caught.value.counters["cycles"] == 10
    # A quiet bound below the array's pipeline depth stops a good run as a hang.
    with pytest.raises(SimulationTimeoutError, match=r"hung: nothing moved for 2 cycles"):
        run_accelerator(config, memory, words, latency=0, quiet_cycles=2)


def test_a_deadlocked_program_ends_with_deadlock_at_the_dispatchers_position():
    """A pop that no instruction satisfies: at the program's end (its final word carries
    ``cmd_last``), behind a FENCE, or behind a full queue, the accelerator stops with DEADLOCK
    and the index `hdl.isa.check_program` reports, instead of hanging; memory is untouched."""
    config = config_of()
    stuck = Instruction(
        Op.MATMUL, act_row=0, wgt_row=0, rows=2, acc_row=0, accumulate=0, pop_prev=True
    )
    load = Instruction(Op.LOAD_ACT, dram_addr=0, dram_stride=2, rows=1, spad_row=0, width=2)
    programs = {
        "end": ([stuck, load], 2, 2),
        "fence": ([stuck, Instruction(Op.FENCE), load, load], 1, 3),
        "full queue": ([stuck] * (QUEUE_DEPTH + 1) + [load], QUEUE_DEPTH, QUEUE_DEPTH + 2),
    }
    for name, (program, index, accepted) in programs.items():
        with pytest.raises(ProgramError) as caught:
            check_program(program, config, 4096)
        assert (caught.value.code, caught.value.index) == (ErrorCode.DEADLOCK, index), name
        memory = np.arange(4096).astype(np.uint8)
        run = run_accelerator(config, memory.copy(), encode_program(program), latency=1)
        assert (run.error, run.error_index, run.accepted) == (ErrorCode.DEADLOCK, index, accepted)
        assert (run.memory == memory).all(), name
        assert run.counters["macs"] == 0, name


def test_a_burst_past_the_end_of_the_memory_array_raises():
    """Inside config.mem_bytes (the accelerator's own check passes) but past the array."""
    config = config_of()
    load = Instruction(Op.LOAD_ACT, dram_addr=2000, dram_stride=2, rows=1, spad_row=0, width=2)
    with pytest.raises(
        MemoryRangeError,
        match=r"^read burst at address 2000 \(0x7d0\) of 1 words reaches byte 2004, past the "
        r"end of memory \(1024 bytes\), at cycle \d+$",
    ) as caught:
        run_accelerator(config, np.zeros(1024, np.uint8), encode_program([load]), latency=0)
    assert (caught.value.address, caught.value.beats, caught.value.write) == (2000, 1, False)
