# amaranth: UnusedElaboratable=no
"""hdl.checked_bits against the host's own checker: no word that `hdl.isa.check_program`
accepts has a bit outside `live_bits` (but the stride of a one-row LOAD or STORE), and
`pack` / `unpack` give such a word back."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from edge_instructions import CHECK_CONFIGS, checked_instructions

from hdl.checked_bits import field_limits, live_bits, pack, unpack
from hdl.config import AccelConfig
from hdl.isa import LAYOUTS, QUEUE_OF, WORD_BITS, Op, Queue, queue_ops


@pytest.mark.parametrize("name", CHECK_CONFIGS)
def test_checked_words_have_no_bit_outside_the_live_ones(name):
    config = CHECK_CONFIGS[name]
    rng = np.random.default_rng(len(name))
    for queue in Queue:
        ops = queue_ops(config, queue)
        mask = sum(1 << bit for bit in live_bits(config, ops))
        for op in [op for op, q in QUEUE_OF.items() if q is queue]:
            accepted = checked_instructions(config, op, 4000, rng)
            if op not in ops:  # an instruction this config has no unit for (SPMM)
                assert accepted == [], op
                continue
            assert len(accepted) > 100, (op, len(accepted))  # the edges were reached
            for instruction in accepted:
                word = instruction.encode()
                dropped = word & ~mask
                if dropped and "dram_stride" in instruction.fields:
                    stride = LAYOUTS[op]["dram_stride"]
                    assert instruction.rows == 1, instruction
                    dropped &= ~(((1 << stride.width) - 1) << stride.offset)
                assert dropped == 0, (instruction, hex(dropped))


def test_limits_are_cut_to_the_field_widths():
    limits = field_limits(AccelConfig(mem_bytes=1 << 32, spad_bytes=1 << 24, rows=1, cols=1))
    assert limits[Op.LOAD_ACT]["dram_addr"] == (1 << 32) - 1
    assert limits[Op.LOAD_ACT]["dram_stride"] == (1 << 24) - 1
    assert limits[Op.LOAD_ACT]["rows"] == (1 << 16) - 1


def test_live_bits_of_the_small_config():
    config = CHECK_CONFIGS["2x2-1KiB"]
    load = live_bits(config, [Op.LOAD_ACT, Op.LOAD_WGT, Op.LOAD_PARAMS])
    assert load[:8] == tuple(range(8))  # the opcode and token flags, whole
    # dram_addr < 1024: bits 8..17 of the word, not 18..39.
    assert 17 in load and 18 not in load
    assert len(load) < WORD_BITS // 2


def test_pack_then_unpack_gives_the_word_back():
    config = CHECK_CONFIGS["2x2-1KiB"]
    live = live_bits(config, [Op.STORE])
    rng = np.random.default_rng(3)
    accepted = checked_instructions(config, Op.STORE, 3000, rng)
    words = [instruction.encode() for instruction in accepted if instruction.rows > 1]
    assert len(words) > 10
    word = Signal(WORD_BITS)
    entry = Signal(len(live))
    back = Signal(WORD_BITS)
    m = Module()
    m.d.comb += [entry.eq(pack(word, live)), back.eq(unpack(entry, live))]

    async def testbench(ctx):
        for value in words:
            ctx.set(word, value)
            assert ctx.get(back) == value

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
