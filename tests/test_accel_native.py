# amaranth: UnusedElaboratable=no
"""The native accelerator harness (sim.drivers.accel_native) on the stand-in accelerator.

Exact cycle counts come from the memory model's rules (docs/accelerator-harness.md) and the
stand-in's timing (tests/accel_standin.py); memory contents from a sequential model of the
commands. Two builds, shared by the module: a 16-byte bus and a traced 4-byte bus (cold: 3-5 s
each plus Verilator's run-time objects once, 25-45 s for the module on 2 cores; warm: 3 s).
"""

import json

import numpy as np
import pytest
from accel_standin import StandIn, copy_word, orphan_word, word, write_word
from amaranth.sim import Simulator

from hdl.config import AccelConfig
from hdl.isa import ErrorCode
from hdl.top_ports import COUNTERS
from sim.drivers.accel_build import accel_verilog, build_accel_native
from sim.drivers.accel_native import QUIET_CYCLES, NativeAccelerator
from sim.drivers.accel_results import MemoryRangeError, PortProtocolError
from sim.drivers.memory_model import MemoryModel
from sim.drivers.native import SimulationTimeoutError

MEMORY_BYTES = 1 << 13


@pytest.fixture(scope="module")
def wide():
    """The stand-in with a 16-byte bus (VlWide ports)."""
    with NativeAccelerator(AccelConfig(bus_bytes=16), factory=StandIn) as accelerator:
        yield accelerator


@pytest.fixture(scope="module")
def narrow():
    """The stand-in with a 4-byte bus (scalar ports), built with tracing."""
    with NativeAccelerator(AccelConfig(bus_bytes=4), factory=StandIn, trace=True) as accelerator:
        yield accelerator


def program(*words):
    return np.array(words, np.uint32).reshape(-1, 4)


def random_memory(seed, size=MEMORY_BYTES):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def sequential(memory, commands, bus):
    """What the commands leave in memory, run one after another (COPY reads before it writes)."""
    memory = memory.copy()
    for command in commands:
        if command[0] == "copy":
            _, src, dst, beats = command
            memory[dst : dst + beats * bus] = memory[src : src + beats * bus].copy()
        else:
            _, addr, value, strobe = command
            for i in range(bus):
                if strobe >> i & 1:
                    memory[addr + i] = (value + i) % 256
    return memory


def encode(commands):
    return program(*(copy_word(*c[1:]) if c[0] == "copy" else write_word(*c[1:]) for c in commands))


def transfer_cycles(words, first, bytes_per_cycle, bus):
    """Cycles in which `words` words move in one direction, none before `first`: the credit rule
    (credit grows by bytes_per_cycle per cycle up to bus + bytes_per_cycle - 1, starts full, a
    word needs and costs `bus`)."""
    cap = bus + bytes_per_cycle - 1
    credit, cycle, cycles = cap, 0, []
    while len(cycles) < words:
        credit = min(cap, credit + bytes_per_cycle)
        if cycle >= first and credit >= bus:
            credit -= bus
            cycles.append(cycle)
        cycle += 1
    return cycles


@pytest.mark.parametrize("bytes_per_cycle", [16, 8, 4, 1, 6, 11])
def test_copy_cycles_follow_latency_and_bandwidth(wide, bytes_per_cycle):
    """A copy of N words: read request in cycle 1, first word offered in cycle latency + 2 and
    passed straight on to the write burst (requested in cycle 2), idle the cycle after the last
    word. With bytes_per_cycle dividing B: latency + 3 + (N - 1) * B / bytes_per_cycle."""
    bus = 16
    for latency in (0, 1, 9):
        for beats in (1, 2, 13):
            memory = random_memory(beats)
            expected = sequential(memory, [("copy", 64, 4096, beats)], bus)
            run = wide.run(
                memory,
                program(copy_word(64, 4096, beats)),
                latency=latency,
                bytes_per_cycle=bytes_per_cycle,
            )
            np.testing.assert_array_equal(memory, expected)
            last = transfer_cycles(beats, latency + 2, bytes_per_cycle, bus)[-1]
            assert run.cycles == last + 1, (latency, beats)
            if bus % bytes_per_cycle == 0:
                assert run.cycles == latency + 3 + (beats - 1) * bus // bytes_per_cycle
            assert run.error is ErrorCode.NONE
            assert run.accepted == 1
            assert run.counters["cycles"] == run.cycles
            assert run.counters["instructions"] == 1
            assert run.counters["bytes_read"] == run.counters["bytes_written"] == beats * bus
            assert run.memory.read_bursts == run.memory.write_bursts == 1
            assert run.memory.read_words == run.memory.written_words == beats
            assert run.memory.read_wait_cycles == latency + 1
            assert run.memory.rdata_stall_cycles == 0


def test_full_bandwidth_copy_takes_latency_plus_words(wide):
    memory = random_memory(1)
    run = wide.run(memory, program(copy_word(0, 4096, 200)), latency=30)
    assert run.cycles == 30 + 200 + 2
    run = wide.run(memory, program(copy_word(0, 4096, 200)), latency=30, bytes_per_cycle=8)
    assert run.cycles == 30 + 2 * 200 + 1
    assert run.memory.wdata_held_cycles == 0  # the write credit keeps pace with the reads
    assert wide.run(memory, program(copy_word(0, 4096, 1))).cycles == 64 + 3  # config default


@pytest.mark.parametrize("fixture", ["wide", "narrow"])
def test_random_copies_and_writes_match_sequential_memory(request, fixture):
    """Random word-aligned copies (overlapping too) and strobed writes, under random latency and
    bandwidth: memory ends as if each command ran alone, in order."""
    accelerator = request.getfixturevalue(fixture)
    bus = accelerator.config.bus_bytes
    rng = np.random.default_rng(bus)
    total = MEMORY_BYTES // bus
    for trial in range(12):
        commands = []
        for _ in range(int(rng.integers(1, 10))):
            if rng.random() < 0.7:
                beats = int(rng.integers(1, 40))
                src, dst = (int(rng.integers(0, total - beats)) * bus for _ in range(2))
                commands.append(("copy", src, dst, beats))
            else:
                addr = int(rng.integers(0, total)) * bus
                value = int(rng.integers(0, 256))
                strobe = int.from_bytes(rng.bytes(bus), "little") & ((1 << bus) - 1)
                commands.append(("write", addr, value, strobe))
        memory = random_memory(trial)
        expected = sequential(memory, commands, bus)
        latency, bandwidth = int(rng.integers(0, 20)), int(rng.integers(1, bus + 1))
        run = accelerator.run(memory, encode(commands), latency=latency, bytes_per_cycle=bandwidth)
        np.testing.assert_array_equal(memory, expected, err_msg=f"{commands} {latency=}")
        copied = sum(c[3] for c in commands if c[0] == "copy")
        writes = sum(c[0] == "write" for c in commands)
        assert run.accepted == run.counters["instructions"] == len(commands)
        assert run.memory.read_words == copied
        assert run.memory.written_words == copied + writes
        assert run.counters["bytes_written"] == (copied + writes) * bus
        assert run.counters["cycles"] == run.cycles
        assert run.cycles >= (latency + 3 if copied else 2)


def test_strobes_write_only_enabled_bytes(wide):
    bus = 16
    patterns = [0, (1 << bus) - 1, 0x5555, 0xAAAA, 1, 1 << 15, 0x0FF0]
    commands = [("write", 256 + 32 * i, 7 * i, strobe) for i, strobe in enumerate(patterns)]
    memory = random_memory(3)
    before = memory.copy()
    run = wide.run(memory, encode(commands))
    np.testing.assert_array_equal(memory, sequential(before, commands, bus))
    assert np.array_equal(memory[256:272], before[256:272])  # strobe 0: nothing written
    assert list(memory[288:304]) == [(7 + i) % 256 for i in range(16)]
    assert run.memory.written_words == len(patterns)
    # Its word is offered in cycle 1, held off until its request comes in cycle 2.
    run = wide.run(memory, program(write_word(0, 9, 0xFFFF)))
    assert (run.cycles, run.memory.wdata_held_cycles) == (3, 1)


def test_read_after_write_waits_for_the_write(wide):
    """COPY X->Y (N words), WRITE P, COPY P->Q (M words): the second read is requested in cycle
    7, long before the WRITE's word goes out (cycle L + N + 2, behind the first copy's words), so
    it waits for it; its first word comes in cycle L + N + 3, its data includes the write."""
    bus = 16
    n, m = 9, 5
    for latency in (0, 4, 25):
        commands = [("copy", 0, 2048, n), ("write", 4096, 200, 0xFFFF), ("copy", 4096, 6144, m)]
        memory = random_memory(latency)
        expected = sequential(memory, commands, bus)
        run = wide.run(memory, encode(commands), latency=latency)
        np.testing.assert_array_equal(memory, expected)
        assert list(memory[6144:6160]) == [(200 + i) % 256 for i in range(16)]
        assert run.cycles == latency + n + m + 3
        assert run.memory.read_wait_cycles == (latency + 1) + (latency + n + 3 - 7)
    # A copy of the copied region reads what the first copy wrote.
    memory = random_memory(5)
    commands = [("copy", 0, 1024, 20), ("copy", 1024, 3072, 20), ("copy", 3072 + 16, 3072, 8)]
    run = wide.run(memory, encode(commands), latency=3, bytes_per_cycle=5)
    np.testing.assert_array_equal(memory, sequential(random_memory(5), commands, bus))
    np.testing.assert_array_equal(memory[3072 + 128 : 3072 + 320], memory[128:320])


def test_an_error_stops_later_commands(wide):
    memory = random_memory(8)
    before = memory.copy()
    bad = word(7)
    words = program(
        copy_word(0, 1024, 30), copy_word(512, 2048, 4), bad, copy_word(0, 4096, 4), word(0)
    )
    run = wide.run(memory, words, latency=50)
    assert (run.error, run.error_index) == (ErrorCode.BAD_OPCODE, 2)
    assert run.accepted == run.counters["instructions"] == 3
    np.testing.assert_array_equal(memory[1024:1504], before[0:480])  # in flight: finished
    np.testing.assert_array_equal(memory[2048:2112], before[512:576])
    np.testing.assert_array_equal(memory[4096:4160], before[4096:4160])  # never started
    assert run.cycles > 50 + 30
    run = wide.run(memory, program(word(15), copy_word(0, 4096, 4)))
    assert (run.error, run.error_index, run.accepted, run.cycles) == (ErrorCode.BAD_OPCODE, 0, 1, 1)
    assert run.cmd_stall_cycles == 0  # stopped at cycle 1, before offering the next word
    np.testing.assert_array_equal(memory[4096:4160], before[4096:4160])


def test_a_hang_is_reported_with_counters(wide):
    memory = random_memory(9)
    before = memory.copy()
    words = program(copy_word(0, 1024, 3), word(3), copy_word(0, 2048, 3))
    with pytest.raises(
        SimulationTimeoutError, match=r"hung: nothing moved for 500 cycles"
    ) as caught:
        wide.run(memory, words, latency=2, quiet_cycles=500)
    # The copy's last word moves in cycle 2 + 2 + 2; 500 quiet cycles later the run stops.
    assert str(caught.value).endswith(
        "stopped at cycle 507 with 2 of 3 instruction words accepted, 0 read and 0 write words "
        "outstanding; last transfer in cycle 6"
    )
    assert caught.value.counters["instructions"] == 2
    assert caught.value.counters["cycles"] == caught.value.cycles
    assert set(caught.value.counters) == set(COUNTERS)
    np.testing.assert_array_equal(memory[1024:1072], before[0:48])
    # Default limit: WAIT is accepted in cycle 0, then nothing moves.
    with pytest.raises(SimulationTimeoutError) as caught:
        wide.run(memory, program(word(3)))
    assert caught.value.cycles == QUIET_CYCLES + 1
    with pytest.raises(SimulationTimeoutError, match=r"within max_cycles=5; stopped at cycle 5"):
        wide.run(memory, program(copy_word(0, 1024, 3)), max_cycles=5)
    # A memory's long latency is not a hang, and the model is reset for every run.
    run = wide.run(memory, program(copy_word(0, 4096, 2)), latency=2000, quiet_cycles=100)
    assert run.cycles == 2000 + 2 + 2


def test_memory_faults_name_the_address(wide):
    memory = random_memory(10)
    before = memory.copy()
    with pytest.raises(
        MemoryRangeError,
        match=r"^the accelerator's read burst at address 8192 \(0x2000\) of 2 words reaches byte "
        r"8224, past the end of memory \(8192 bytes\), at cycle 1$",
    ) as caught:
        wide.run(memory, program(copy_word(MEMORY_BYTES, 0, 2)))
    assert (caught.value.address, caught.value.beats, caught.value.write) == (8192, 2, False)
    with pytest.raises(MemoryRangeError, match=r"write burst at address 8176 \(0x1ff0\) of 2 "):
        wide.run(memory, program(copy_word(0, MEMORY_BYTES - 16, 2)))
    with pytest.raises(MemoryRangeError, match=r"read burst at address 4294967280 "):
        wide.run(memory, program(copy_word((1 << 32) - 16, 0, 65535)))
    np.testing.assert_array_equal(memory, before)  # stopped at the request: nothing written
    with pytest.raises(
        PortProtocolError,
        match=r"^the accelerator's read burst at address 8 \(0x8\), 1 beats, has an address that "
        r"is not a multiple of the bus width \(bus width 16 bytes\), at cycle 1$",
    ):
        wide.run(memory, program(copy_word(8, 0, 1)))
    with pytest.raises(PortProtocolError, match=r"read burst at address 0 \(0x0\), 0 beats, has"):
        wide.run(memory, program(copy_word(0, 16, 0)))
    with pytest.raises(
        PortProtocolError, match=r"address 32 \(0x20\), 3 words outstanding, is still outstanding"
    ):
        wide.run(memory, program(orphan_word(32, 3)), latency=10)
    np.testing.assert_array_equal(memory, before)
    assert wide.run(memory, program(copy_word(0, 16, 1))).error is ErrorCode.NONE


def test_bad_arguments_are_named(wide):
    memory = random_memory(11)
    words = program(copy_word(0, 16, 1))
    cases = [
        (
            {"memory": list(memory)},
            TypeError,
            r"^memory must be a numpy array, not <class 'list'>$",
        ),
        ({"memory": memory.view(np.int8)}, TypeError, r"^memory must be a uint8 array, not int8$"),
        ({"memory": memory.reshape(2, -1)}, ValueError, r"^memory must be one-dimensional"),
        ({"memory": memory[::2]}, ValueError, r"^memory must be a contiguous, writeable array"),
        ({"program": words.astype(np.int64)}, TypeError, r"^program must be a uint32 array"),
        (
            {"program": words.reshape(-1)},
            ValueError,
            r"^program must have shape \[n, 4\], not \[4\]",
        ),
        ({"latency": -1}, ValueError, r"^latency must be in \[0, 2147483648\], not -1$"),
        ({"latency": 1.5}, TypeError, r"^latency must be an int, not 1.5$"),
        ({"bytes_per_cycle": 0}, ValueError, r"^bytes_per_cycle must be in \[1, 16\], not 0$"),
        ({"bytes_per_cycle": 17}, ValueError, r"^bytes_per_cycle must be in \[1, 16\], not 17$"),
        ({"max_cycles": 0}, ValueError, r"^max_cycles must be >= 1, not 0$"),
        ({"quiet_cycles": True}, TypeError, r"^quiet_cycles must be an int, not True$"),
        ({"vcd_path": "x.vcd"}, ValueError, r"^vcd_path needs a traced build"),
    ]
    for change, error, message in cases:
        arguments = {"memory": memory, "program": words, **change}
        with pytest.raises(error, match=message):
            wide.run(arguments.pop("memory"), arguments.pop("program"), **arguments)
    read_only = memory.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=r"contiguous, writeable"):
        wide.run(read_only, words)
    with pytest.raises(ValueError, match=r"^factory must return a component with accelerator_sig"):
        accel_verilog(
            AccelConfig(bus_bytes=16), factory=lambda c: StandIn(AccelConfig(bus_bytes=8))
        )
    assert wide.run(memory, program()).cycles == 0  # an empty program: idle at once


def test_builds_are_cached(wide):
    again = build_accel_native(wide.config, factory=StandIn)
    assert again.cached
    assert again.library == wide.build.library
    record = json.loads((again.directory / "BUILT.json").read_text())
    assert record["harness"] == "accelerator"
    assert AccelConfig.from_dict(record["config"]) == wide.config
    assert "-DTESSERA_BUS_BYTES=16" in record["cflags"]


def test_vcd_trace_of_a_narrow_bus(narrow, tmp_path):
    memory = random_memory(12)
    commands = [("copy", 0, 4096, 6), ("write", 64, 1, 0b0110)]
    expected = sequential(memory, commands, 4)
    vcd = tmp_path / "run.vcd"
    run = narrow.run(memory, encode(commands), latency=3, vcd_path=vcd)
    np.testing.assert_array_equal(memory, expected)
    assert run.cycles == 3 + 6 + 2 + 1  # the WRITE's word follows the copy's last one
    text = vcd.read_text()
    assert "$enddefinitions" in text
    assert "mem__wdata__ready" in text


def pysim_run(config, memory, words, latency):
    """The stand-in in Amaranth's simulator against sim.drivers.memory_model: (cycles, memory)."""
    dut = StandIn(config)
    model = MemoryModel(memory.copy(), config.bus_bytes, latency, 0.0, 0)
    values = [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in words]
    mem = dut.mem
    result = {}

    async def testbench(ctx):
        accepted, cycle = 0, 0
        while True:
            assert cycle < 5000, "the stand-in hangs in pysim"
            model.step(ctx, mem, cycle)
            offer = accepted < len(values)
            ctx.set(dut.cmd.valid, offer)
            if offer:
                ctx.set(dut.cmd.payload, values[accepted])
            elif ctx.get(dut.idle):
                result["cycles"] = cycle
                return
            memory_port = model.watch(mem)
            _, _, *sampled = await ctx.tick().sample(*memory_port, dut.cmd.ready)
            model.edge(sampled[: len(memory_port)])
            ready = sampled[len(memory_port)]
            accepted += offer and ready
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result["cycles"], model.memory


@pytest.mark.parametrize("latency", [0, 5])
def test_same_cycles_and_memory_as_the_pysim_memory_model(wide, latency):
    """Disjoint copies and writes at full bandwidth: the harness and sim.drivers.memory_model (an
    independent model of the same rules, in Amaranth's simulator) agree cycle for cycle."""
    commands = [
        ("copy", 0, 2048, 7),
        ("write", 4096, 5, 0x00F3),
        ("copy", 512, 3072, 3),
        ("write", 4112, 9, 0xFFFF),
        ("copy", 1024, 5120, 12),
    ]
    memory = random_memory(13)
    expected_cycles, expected_memory = pysim_run(wide.config, memory, encode(commands), latency)
    run = wide.run(memory, encode(commands), latency=latency)
    np.testing.assert_array_equal(memory, expected_memory)
    assert run.cycles == expected_cycles
