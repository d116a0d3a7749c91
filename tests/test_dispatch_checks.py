# amaranth: UnusedElaboratable=no
"""The dispatcher's instruction checks (`hdl.word_checks.check_span` and `word_error`) against
the host's `hdl.isa.check_program`, word by word, on edge-value instructions of every queued opcode:
good words, and words that fail at or just past a limit (address ranges whose products
overflow main memory many times over included)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from edge_instructions import CHECK_CONFIGS, edge_instructions, host_code

from hdl.isa import WORD_BITS, ErrorCode, Op
from hdl.word_checks import check_span, word_error

QUEUED = [Op.LOAD_ACT, Op.LOAD_WGT, Op.LOAD_PARAMS, Op.MATMUL, Op.SPMM, Op.STORE]


@pytest.mark.parametrize("name", CHECK_CONFIGS)
def test_hardware_checks_agree_with_the_host(name):
    config = CHECK_CONFIGS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    cases = [ins for op in QUEUED for ins in edge_instructions(config, op, 300, rng)]
    expected = [host_code(ins, config) or ErrorCode.NONE for ins in cases]
    assert sum(code is ErrorCode.NONE for code in expected) > len(cases) // 20
    assert ErrorCode.DRAM_RANGE in expected and ErrorCode.SPAD_RANGE in expected

    m = Module()
    word = Signal(WORD_BITS)
    code = word_error(m, word, config, check_span(word, config))
    got = []

    async def testbench(ctx):
        for instruction in cases:
            ctx.set(word, instruction.encode())
            got.append(ErrorCode(ctx.get(code)))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    wrong = [(ins, g, e) for ins, g, e in zip(cases, got, expected, strict=True) if g != e]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ, first: {wrong[0]}"
