# amaranth: UnusedElaboratable=no
"""Link integrity (docs/bridge.md): the CRC, a seeded slice of bench/link_faults.py's campaign on
`sim.bridge_model`, and fault cases run through both the model and the RTL (`HostBridge` with
its UART and memory, tests/bridge_standin.py) that must end alike: the same results or the same
`SerialProtocolError`, the same exchanges sent again, the same words taken by the accelerator."""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator
from bridge_standin import BridgeStandIn
from uart_board import run_port

from hdl.crc import CRC_INIT, Crc16, crc16
from host.link_campaign import CAMPAIGN_TIMING, CONFIG, MEMORY_BYTES, Plan, run_plan, run_trials
from host.serial_transport import SerialProtocolError, SerialTransport
from sim.bridge_model import STOP_BYTE
from sim.link_faults import DIRECTIONS, FROM_BOARD, KINDS, TO_BOARD, Fault, FaultyPort

# The fastest line the bridge supports: a byte every 20 cycles against the CRC's 9.
DIVISOR = 2


def test_crc16_is_crc16_mcrf4xx_and_runs_on_over_pieces():
    assert crc16(b"123456789") == 0x6F91  # the catalogue's check value
    assert crc16(b"") == CRC_INIT
    assert crc16(b"6789", crc16(b"12345")) == 0x6F91
    value = crc16(b"frame")  # sent low byte first, a CRC leaves the register at 0
    assert crc16(value.to_bytes(2, "little"), value) == 0


def test_crc16_block_takes_a_byte_in_8_cycles_and_matches_the_reference():
    rng = np.random.default_rng(3)
    data = [int(b) for b in rng.integers(0, 256, 40)]
    dut = Crc16()

    async def testbench(ctx):
        expected = CRC_INIT
        for i, byte in enumerate(data):
            restart = i % 13 == 0
            expected = crc16(bytes([byte]), CRC_INIT if restart else expected)
            ctx.set(dut.init, restart)
            ctx.set(dut.start, 1)
            ctx.set(dut.data, byte)
            await ctx.tick()
            ctx.set(dut.init, 0)
            ctx.set(dut.start, 0)
            busy = []
            for _ in range(9):
                busy.append(ctx.get(dut.busy))
                await ctx.tick()
            assert busy == [1] * 8 + [0], busy
            assert ctx.get(dut.value) == expected, i

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_a_campaign_slice_on_the_model_has_no_silent_wrong_result():
    """Every fault kind both ways, one fault a trial, then three; then storms that exhaust the
    retries of some exchange, which must raise rather than answer wrong; then single faults on
    an accelerator slow enough that frames are sent again while the bridge waits for it."""
    tally = run_trials(300, 1, seed=21)
    run_trials(60, 3, seed=21, tally=tally)
    assert set(tally.faults) == {(d, k) for d in DIRECTIONS for k in KINDS}
    assert tally.outcomes["wrong"] == 0, tally.wrong_trials
    assert tally.outcomes["retried"] > 300 and tally.duplicated == 0
    storm = run_trials(40, 40, seed=21)
    assert storm.outcomes["raised"] > 0
    assert storm.outcomes["wrong"] == 0 and storm.duplicated == 0
    slow = run_trials(100, 1, seed=21, slow=True)
    assert slow.outcomes["wrong"] == 0 and slow.duplicated == 0


# Model and RTL on the same faults ----------------------------------------------------------
# The bytes of PLAN's exchanges, clean. To the board: WRITE [0, 17), READ [17, 26), COUNTERS
# [26, 29) (push learns the seq), PUSH [29, 49) and [49, 69), STATUS [69, 72), COUNTERS [72, 75).
# From the board: WRITE [0, 3), READ [3, 12), COUNTERS [12, 81), PUSH [81, 85) and [85, 89),
# STATUS [89, 97), COUNTERS [97, 166). 255 words taken before: the seq wraps to 0 and 1.
PLAN = Plan(100, bytes(range(1, 7)), (bytes(range(16)), bytes(range(16, 32))), 255)
STOPPING = dataclasses.replace(PLAN, words=(bytes([STOP_BYTE, *range(1, 16)]), PLAN.words[1]))
# The stand-in busy for 28 or 46 byte times after each word, past the host's timeout (12): the
# second PUSH and STATUS are sent again while the bridge waits (and cannot take their bytes).
# Holds within a byte time of a race between a timeout and an answer can differ by one retry
# between the model (whole byte times) and the RTL; these two are clear of any.
SLOW, SLOWER = dataclasses.replace(PLAN, hold=28), dataclasses.replace(PLAN, hold=46)
CASES = {
    "no fault": (PLAN, [], 4),
    "WRITE address bit flipped": (PLAN, [Fault(TO_BOARD, "flip", 3, 2)], 4),
    "WRITE data byte dropped": (PLAN, [Fault(TO_BOARD, "drop", 12)], 4),
    "READ header byte inserted": (PLAN, [Fault(TO_BOARD, "extra", 20, 0x02)], 4),
    "PUSH word cut short": (PLAN, [Fault(TO_BOARD, "truncate", 40)], 4),
    "PUSH word stalls mid-frame": (PLAN, [Fault(TO_BOARD, "timeout", 35)], 4),
    "READ data bit flipped": (PLAN, [Fault(FROM_BOARD, "flip", 7, 7)], 4),
    "PUSH answer dropped: taken once": (PLAN, [Fault(FROM_BOARD, "drop", 83)], 4),
    "PUSH answer flipped: taken once": (PLAN, [Fault(FROM_BOARD, "flip", 86, 0)], 4),
    "STATUS answer byte inserted": (PLAN, [Fault(FROM_BOARD, "extra", 90, 0x00)], 4),
    "PUSH answer truncated": (PLAN, [Fault(FROM_BOARD, "truncate", 86)], 4),
    "WRITE answer late": (PLAN, [Fault(FROM_BOARD, "timeout", 1)], 4),
    "DROPPED answer lost": (STOPPING, [Fault(FROM_BOARD, "drop", 86)], 4),
    # The extra byte is the crc's high byte: STATUS passes, its real high byte is left over (a
    # BAD_COMMAND taken while the answer goes out, which then swallows the next frame).
    "STATUS crc byte doubled": (PLAN, [Fault(TO_BOARD, "extra", 71, crc16(b"\x04") >> 8)], 4),
    "slow accelerator": (SLOWER, [], 4),
    "slow accelerator, PUSH answer dropped": (SLOW, [Fault(FROM_BOARD, "drop", 83)], 4),
    "slow accelerator, PUSH word flipped": (SLOWER, [Fault(TO_BOARD, "flip", 40, 4)], 4),
    "PUSH damaged in both tries: raises": (
        PLAN,
        [Fault(TO_BOARD, "flip", 30, 1), Fault(TO_BOARD, "flip", 50, 1)],
        1,
    ),
}


def rtl_run(plan: Plan, faults: list[Fault], retries: int):
    """`plan` on `BridgeStandIn` through `faults`: (results or the error's text, exchanges sent
    again, the words ``cmd`` took)."""
    timing, cycles = CAMPAIGN_TIMING, 10 * DIVISOR  # cycles of a byte time
    dut = BridgeStandIn(
        MEMORY_BYTES, DIVISOR, 10 * timing["idle_bytes"], plan.before, plan.hold * cycles
    )
    words = []

    async def watch(ctx):  # a word is taken in each cycle cmd.valid and cmd.ready are high
        cmd = dut.bridge.cmd
        while True:
            await ctx.changed(cmd.valid, cmd.ready)
            if ctx.get(cmd.valid) and ctx.get(cmd.ready):
                words.append(ctx.get(cmd.payload).to_bytes(16, "little"))

    def host(port):
        faulty = FaultyPort(port, faults, 10 * timing["gap_bytes"])
        transport = SerialTransport(faulty, CONFIG, MEMORY_BYTES, retries=retries)
        try:
            return plan.run(transport), transport.retried, faulty.applied
        except SerialProtocolError as error:
            return str(error), transport.retried, faulty.applied

    outcome, retried, applied = run_port(
        dut, host, divisor=DIVISOR, testbenches=[watch], timeout_cycles=timing["timeout"] * cycles
    )
    assert applied == faults  # every fault hit its byte
    return outcome, retried, words


@pytest.mark.parametrize("case", CASES)
def test_model_and_rtl_end_alike_on_a_fault(case):
    plan, faults, retries = CASES[case]
    outcome, bridge, port, transport = run_plan(plan, faults, retries)
    model = (
        str(outcome) if isinstance(outcome, SerialProtocolError) else outcome,
        transport.retried,
        bridge.words[plan.before :],
    )
    assert port.applied == faults
    assert rtl_run(plan, faults, retries) == model
    clean = run_plan(plan, [])[0]
    if case.endswith("raises"):
        assert model[0].startswith("PUSH of instruction word 0: no good answer in 2 tries")
        assert model[2] == []
    else:
        assert model[0] == clean and (model[1] > 0) == bool(faults or plan.hold)
        assert model[2] == list(plan.words[: clean[1]])  # each word taken once
