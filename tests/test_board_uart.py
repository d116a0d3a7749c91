# amaranth: UnusedElaboratable=no
"""hdl.board_top at the UART pins in Amaranth's simulator, driven by the real host driver
through tests/uart_board.py's simulated serial port; the UART and on-chip memory units."""

import struct

import numpy as np
import pytest
from accel_checks import random_layer, small_config
from amaranth.sim import Simulator
from uart_board import LineDecoder, SimulatedSerialPort, frame_levels, run_board

from hdl.board_top import BoardTop
from hdl.boards import BOARDS
from hdl.bridge import Command, HostBridge, Status
from hdl.config import AccelConfig
from hdl.crc import crc16
from hdl.isa import ErrorCode, Instruction, Op, encode_program
from hdl.onchip_memory import OnchipMemory
from hdl.uart import UartRx, UartTx
from host.device import Device, DeviceError
from host.serial_transport import SerialTransport
from sim.golden.layers import linear_forward
from sim.link_faults import FROM_BOARD, TO_BOARD, Fault, FaultyPort

DIVISOR = 4
MEMORY_BYTES = 4096


def board_config(**options) -> AccelConfig:
    """A 2x2 accelerator whose main memory is the board's on-chip memory."""
    return small_config(**{"mem_latency": 2, "mem_bytes": MEMORY_BYTES, **options})


# End to end -----------------------------------------------------------------------------------
def test_the_host_driver_runs_a_gemm_over_the_uart():
    """On the iCEBreaker's accelerator (no sparse engine, byte-wide bus, 32-bit counters)."""
    shrunk = ("sparse_lanes", "bus_bytes", "counter_bits")
    config = board_config(**{key: BOARDS["icebreaker"].config_defaults[key] for key in shrunk})
    rng = np.random.default_rng(7)
    layer = random_layer(rng, 3, 5)
    x = rng.integers(-128, 128, (3, 5), dtype=np.int8)
    x[0, 0], x[-1, -1] = -128, 127

    def host(port):
        seconds = lambda: port.cycles / (config.clock_mhz * 1e6)  # noqa: E731 (simulated time)
        transport = SerialTransport(port, config, MEMORY_BYTES, clock=seconds)
        device = Device(config=config, transport=transport)
        out = device.linear(device.upload(x), layer, name="fc")
        return device.download(out), device.runs[-1]

    out, run = run_board(config, MEMORY_BYTES, host, divisor=DIVISOR)
    np.testing.assert_array_equal(out, linear_forward(x, layer))
    assert run.cycle_model == "rtl"
    # The counters came through COUNTERS byte by byte: those the golden transport predicts
    # exactly (every one but the cycle count) must match it, and no busy count can pass cycles.
    golden = Device(config=config)
    golden.linear(golden.upload(x), layer, name="fc")
    predicted = golden.runs[-1].counters
    assert {name: run.counters[name] for name in predicted if name != "cycles"} == {
        name: value for name, value in predicted.items() if name != "cycles"
    }
    assert predicted["macs"] > 0 and predicted["instructions"] > 0
    for name in ("load_busy", "compute_busy", "store_busy", "memory_stall"):
        assert 0 < run.counters[name] < run.cycles == run.counters["cycles"], name


def test_memory_round_trip_and_a_bad_program_raises_device_error():
    config = board_config()
    data = np.random.default_rng(8).integers(0, 256, 37, dtype=np.uint8)

    def host(port):
        transport = SerialTransport(port, config, MEMORY_BYTES)
        transport.write(13, data)
        back = transport.read(13, data.size)
        program = [
            Instruction(Op.LOAD_ACT, dram_addr=0, dram_stride=2, rows=2, spad_row=0, width=2),
            Instruction(
                Op.LOAD_WGT,
                dram_addr=MEMORY_BYTES - 2,
                dram_stride=2,
                rows=2,
                spad_row=0,
                width=2,
            ),
        ]
        with pytest.raises(DeviceError) as info:
            transport.execute(program)
        # After an error the accelerator takes no more words: PUSH answers DROPPED, no hang.
        return back, info.value, transport.push(encode_program(program[:1])), transport.status()

    back, error, taken, status = run_board(config, MEMORY_BYTES, host, divisor=DIVISOR)
    np.testing.assert_array_equal(back, data)
    assert (error.code, error.index) == (ErrorCode.DRAM_RANGE, 1)
    assert str(error) == "the accelerator stopped with DRAM_RANGE at instruction 1 of 2"
    assert taken == 0
    assert status == (ErrorCode.DRAM_RANGE, 1)


def test_a_bad_command_byte_and_a_frame_cut_short_are_answered_once_the_line_is_quiet():
    """The bridge discards until the line has been quiet for ``idle_bits``, answers with a
    status and its own CRC, and the host's next command finds it in step."""
    config = board_config()

    def host(port):
        port.write(bytes([0x7F, 0x01, 0x02]))  # no command, then two bytes it discards
        bad = port.read(3)
        port.write(struct.pack("<BIH", Command.READ, 0, 4)[:3])  # a header cut short
        cut = port.read(3)
        return bad, cut, SerialTransport(port, config, MEMORY_BYTES).status()

    bad, cut, status = run_board(config, MEMORY_BYTES, host, divisor=DIVISOR, idle_bits=64)
    for answer, code in ((bad, Status.BAD_COMMAND), (cut, Status.TIMEOUT)):
        assert answer == bytes([code]) + crc16(bytes([code])).to_bytes(2, "little")
    assert status == (ErrorCode.NONE, 0)


def test_a_lost_push_answer_and_a_damaged_status_are_retried_on_the_board():
    """Through the real accelerator: the first PUSH's answer loses a byte (the host resends the
    word, which the bridge does not offer again: ``instructions`` counts it once), then a bit of
    STATUS's crc flips (``CRC_ERROR``, resent)."""
    config = board_config()
    program = [Instruction(Op.FENCE), Instruction(Op.FENCE)]
    # From the board: COUNTERS [0, 69), the first PUSH's answer [69, 73). To it: COUNTERS
    # [0, 3), PUSH [3, 23), its resend [23, 43), PUSH [43, 63), STATUS [63, 66).
    faults = [Fault(FROM_BOARD, "drop", 71), Fault(TO_BOARD, "flip", 64, 3)]

    def host(port):
        faulty = FaultyPort(port, faults, gap_bits=0)
        transport = SerialTransport(faulty, config, MEMORY_BYTES)
        return transport.execute(program), transport.retried, faulty.applied

    # The fastest line (2 cycles a bit) and short timeouts keep the simulation small.
    run, retried, applied = run_board(
        config, MEMORY_BYTES, host, divisor=2, idle_bits=40, timeout_cycles=400
    )
    assert applied == faults and retried == 2
    assert run.counters["instructions"] == len(program)


# UART units -----------------------------------------------------------------------------------
@pytest.mark.parametrize("divisor", [2, 5])
def test_uart_rx_receives_random_bytes_with_idle_gaps(divisor):
    rng = np.random.default_rng(divisor)
    sent = [int(b) for b in rng.integers(0, 256, 40)]
    gaps = [int(g) for g in rng.choice([0, 0, 1, 3, 17], len(sent))]
    dut = UartRx(divisor)
    received = []

    async def producer(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for byte, gap in zip(sent, gaps, strict=True):
            for level in frame_levels(byte, divisor):
                ctx.set(dut.rx, level)
                await ctx.tick()
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(gap + 1)

    async def consumer(ctx):
        while len(received) < len(sent):
            ctx.set(dut.stream.ready, rng.random() < 0.5)  # take each byte within a frame
            _, _, valid, ready, payload, overrun, frame_error = await ctx.tick().sample(
                dut.stream.valid, dut.stream.ready, dut.stream.payload, dut.overrun, dut.frame_error
            )
            assert not overrun and not frame_error
            if valid and ready:
                received.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert received == sent


@pytest.mark.parametrize("divisor", [2, 5])
def test_uart_tx_sends_random_bytes_with_idle_gaps(divisor):
    rng = np.random.default_rng(10 + divisor)
    sent = [int(b) for b in rng.integers(0, 256, 40)]
    dut = UartTx(divisor)
    received = []

    async def producer(ctx):
        for byte in sent:
            ctx.set(dut.stream.payload, byte)
            ctx.set(dut.stream.valid, 1)
            taken = False
            while not taken:
                _, _, taken = await ctx.tick().sample(dut.stream.ready)
            ctx.set(dut.stream.valid, 0)
            gap = int(rng.choice([0, 0, 1, 8, 30]))
            if gap:
                await ctx.tick().repeat(gap)

    async def monitor(ctx):
        decoder = LineDecoder(divisor)
        while len(received) < len(sent):
            await ctx.tick()
            byte = decoder.step(ctx.get(dut.tx))
            if byte is not None:
                received.append(byte)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    assert received == sent


def test_the_link_rejects_bad_timing_and_retry_settings():
    config = board_config()
    with pytest.raises(ValueError, match=r"^idle_cycles must be at least 16, not 15$"):
        HostBridge(idle_cycles=15)
    with pytest.raises(ValueError, match=r"^idle_bits must be at least 20, not 19$"):
        BoardTop(config, MEMORY_BYTES, DIVISOR, idle_bits=19)
    with pytest.raises(ValueError, match=r"^retries must be an int >= 0, not -1$"):
        SerialTransport(SimulatedSerialPort(DIVISOR), config, MEMORY_BYTES, retries=-1)


def test_uart_rejects_a_bad_divisor():
    with pytest.raises(ValueError, match=r"^divisor must be at least 2, not 1$"):
        UartRx(1)
    with pytest.raises(TypeError, match=r"^divisor must be an int, not 2\.0$"):
        UartTx(2.0)


# On-chip memory -------------------------------------------------------------------------------
def test_onchip_memory_serves_random_bursts_in_order_under_back_pressure():
    """Random read and write bursts (strobes, data before or after its request, a consumer that
    holds off read data) against a byte model, while the host byte port reads and writes the
    upper half at random (it takes the shared ports first); then the host reads back all."""
    bus, size, bus_region = 4, 512, 256
    rng = np.random.default_rng(20)
    init = rng.integers(0, 256, size, dtype=np.uint8)
    model = init.copy()
    bursts, expected_reads, write_words = [], [], []
    for _ in range(30):
        beats = int(rng.integers(1, 6))
        address = int(rng.integers(0, bus_region // bus - beats + 1)) * bus
        write = bool(rng.random() < 0.5)
        bursts.append((address, beats, write))
        for beat in range(beats):
            base = address + beat * bus
            if write:
                data = rng.integers(0, 256, bus, dtype=np.uint8)
                strobe = int(rng.integers(0, 1 << bus))
                for lane in range(bus):
                    if strobe >> lane & 1:
                        model[base + lane] = data[lane]
                write_words.append((int.from_bytes(data.tobytes(), "little"), strobe))
            else:
                expected_reads.append(int.from_bytes(model[base : base + bus].tobytes(), "little"))
    dut = OnchipMemory(size, bus, init.tobytes())
    reads = []
    host_rng = np.random.default_rng(21)
    host_checked = []

    async def host_traffic(ctx):
        """Random host reads (checked the cycle after) and writes in the upper half."""
        while len(reads) < len(expected_reads):
            address = int(host_rng.integers(bus_region, size))
            if host_rng.random() < 0.5:
                value = int(host_rng.integers(0, 256))
                ctx.set(dut.host.addr, address)
                ctx.set(dut.host.w_data, value)
                ctx.set(dut.host.w_en, 1)
                await ctx.tick()
                ctx.set(dut.host.w_en, 0)
                model[address] = value
            else:
                ctx.set(dut.host.addr, address)
                ctx.set(dut.host.r_en, 1)
                await ctx.tick()
                ctx.set(dut.host.r_en, 0)
                assert ctx.get(dut.host.r_data) == model[address], address
                host_checked.append(address)
            await ctx.tick().repeat(int(host_rng.integers(1, 4)))

    async def requests(ctx):
        for address, beats, write in bursts:
            ctx.set(dut.bus.req.payload, {"addr": address, "beats": beats, "write": write})
            ctx.set(dut.bus.req.valid, 1)
            ready = False
            while not ready:
                _, _, ready = await ctx.tick().sample(dut.bus.req.ready)
            ctx.set(dut.bus.req.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 4)))

    async def write_data(ctx):
        for data, strobe in write_words:
            ctx.set(dut.bus.wdata.payload, {"data": data, "strobe": strobe})
            ctx.set(dut.bus.wdata.valid, 1)
            ready = False
            while not ready:
                _, _, ready = await ctx.tick().sample(dut.bus.wdata.ready)
            ctx.set(dut.bus.wdata.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick()

    async def read_data(ctx):
        while len(reads) < len(expected_reads):
            ctx.set(dut.bus.rdata.ready, rng.random() < 0.6)
            _, _, valid, ready, payload = await ctx.tick().sample(
                dut.bus.rdata.valid, dut.bus.rdata.ready, dut.bus.rdata.payload
            )
            if valid and ready:
                reads.append(payload)
        # Every write has landed once its request stream and data are done: read back bytes.
        await ctx.tick().repeat(10)
        assert len(host_checked) > 20  # the host really read during the bursts
        host = []
        for address in range(size):
            ctx.set(dut.host.addr, address)
            ctx.set(dut.host.r_en, 1)
            await ctx.tick()
            ctx.set(dut.host.r_en, 0)
            host.append(ctx.get(dut.host.r_data))
        assert host == list(model)
        # And a host write shows up on the bus side.
        ctx.set(dut.host.addr, 5)
        ctx.set(dut.host.w_data, 0xA5)
        ctx.set(dut.host.w_en, 1)
        await ctx.tick()
        ctx.set(dut.host.w_en, 0)
        ctx.set(dut.host.r_en, 1)
        await ctx.tick()
        assert ctx.get(dut.host.r_data) == 0xA5

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(requests)
    sim.add_testbench(write_data)
    sim.add_testbench(read_data)
    sim.add_testbench(host_traffic, background=True)
    sim.run()
    assert reads == expected_reads


def test_onchip_memory_read_in_the_cycle_of_a_write_to_the_same_bytes_sees_the_new_ones():
    """The read port is transparent: a bus read of a word in the cycle the host writes one of
    its bytes returns that byte new and the others as they were, and a host read of a byte in
    the cycle a bus burst writes it returns the new byte (a block RAM alone defines neither)."""
    bus, size = 4, 64
    init = bytes(range(100, 100 + size))
    dut = OnchipMemory(size, bus, init)

    async def testbench(ctx):
        ctx.set(dut.bus.rdata.ready, 1)
        ctx.set(dut.bus.req.payload, {"addr": 8, "beats": 1, "write": 0})
        ctx.set(dut.bus.req.valid, 1)
        await ctx.tick()  # taken: the burst reads word 2 in the next cycle
        ctx.set(dut.bus.req.valid, 0)
        ctx.set(dut.host.addr, 9)
        ctx.set(dut.host.w_data, 0x5A)
        ctx.set(dut.host.w_en, 1)
        await ctx.tick()
        ctx.set(dut.host.w_en, 0)
        assert ctx.get(dut.bus.rdata.valid)  # read in the cycle of the host's write
        expected = bytes([init[8], 0x5A, init[10], init[11]])
        assert ctx.get(dut.bus.rdata.payload) == int.from_bytes(expected, "little")

        ctx.set(dut.bus.req.payload, {"addr": 12, "beats": 1, "write": 1})
        ctx.set(dut.bus.req.valid, 1)
        await ctx.tick()
        ctx.set(dut.bus.req.valid, 0)
        ctx.set(dut.bus.wdata.payload, {"data": 0x11223344, "strobe": 0b0101})
        ctx.set(dut.bus.wdata.valid, 1)
        ctx.set(dut.host.addr, 12)
        ctx.set(dut.host.r_en, 1)
        assert ctx.get(dut.bus.wdata.ready)  # the word is written in this cycle
        await ctx.tick()
        ctx.set(dut.bus.wdata.valid, 0)
        ctx.set(dut.host.r_en, 0)
        assert ctx.get(dut.host.r_data) == 0x44

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_onchip_memory_burst_counter_as_wide_as_the_longest_burst():
    """With ``max_beats`` = 3 (a 2-bit counter), bursts of 3, 1 and 2 words, back to back,
    write and read back exactly; ``max_beats`` outside 1..65535 is refused."""
    bus, size = 2, 32
    dut = OnchipMemory(size, bus, max_beats=3)
    words = [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666]
    bursts = [(0, 3, True), (6, 1, True), (8, 2, True), (0, 3, False), (6, 1, False), (8, 2, False)]
    reads = []

    async def requests(ctx):
        for address, beats, write in bursts:
            ctx.set(dut.bus.req.payload, {"addr": address, "beats": beats, "write": write})
            ctx.set(dut.bus.req.valid, 1)
            for _ in range(20):  # (a burst ended early would never take the rest)
                _, _, ready = await ctx.tick().sample(dut.bus.req.ready)
                if ready:
                    break
            assert ready, (address, beats, write)
            ctx.set(dut.bus.req.valid, 0)

    async def write_data(ctx):
        for word in words:
            ctx.set(dut.bus.wdata.payload, {"data": word, "strobe": 0b11})
            ctx.set(dut.bus.wdata.valid, 1)
            for _ in range(20):
                _, _, ready = await ctx.tick().sample(dut.bus.wdata.ready)
                if ready:
                    break
            assert ready, hex(word)
        ctx.set(dut.bus.wdata.valid, 0)

    async def read_data(ctx):
        ctx.set(dut.bus.rdata.ready, 1)
        for _ in range(100):
            _, _, valid, payload = await ctx.tick().sample(
                dut.bus.rdata.valid, dut.bus.rdata.payload
            )
            if valid:
                reads.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(requests)
    sim.add_testbench(write_data)
    sim.add_testbench(read_data)
    sim.run()
    assert reads == words
    for bad in (0, 65536):
        with pytest.raises(ValueError, match=rf"^max_beats must be in \[1, 65535\], not {bad}$"):
            OnchipMemory(size, bus, max_beats=bad)
