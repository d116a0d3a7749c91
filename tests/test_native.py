"""The native Verilator harness (sim.drivers.native): exact results, exact cycles, hang detection.

Each distinct design is one Verilator build into the normal build cache (on 2 cores: 3-5 s for
small arrays, plus about 7 s once for Verilator's run-time objects; 15-25 s for 16x16, plus 5-10 s
of Yosys), shared by all tests of this module through `native_array`; later runs are cache hits.
Cold, the module takes about a minute on 2 cores; warm, under 10 s.
"""

import json

import numpy as np
import pytest
from gemm_operands import operands

from hdl.config import AccelConfig
from sim.array_program import ArrayProgram, gemm_program
from sim.cycles import array_cycles, utilization
from sim.drivers import unit_build
from sim.drivers.native import NativeSim, SimulationTimeoutError, run_native
from sim.drivers.pysim import FlowControl, run_pysim
from sim.drivers.unit_build import build_native
from sim.golden.gemm import gemm
from sim.toolchain import BuildError, cached_build

SHAPES = [(1, 1, 1), (5, 7, 3), (9, 2, 7), (13, 17, 11), (3, 20, 9)]  # (M, K, N)
SMALL = [(2, 2, "ws"), (2, 2, "os"), (4, 8, "ws"), (4, 8, "os")]
FLOWS = [(0.4, 0.0), (0.0, 0.5), (0.3, 0.3), (0.7, 0.8)]


@pytest.fixture(scope="module")
def native_array():
    """NativeSim for (rows, cols, dataflow[, options]), built once per module."""
    arrays = {}

    def get(rows, cols, dataflow, **options):
        key = (rows, cols, dataflow, tuple(sorted(options.items())))
        if key not in arrays:
            config = AccelConfig(rows=rows, cols=cols, dataflow=dataflow)
            arrays[key] = NativeSim(config, **options)
        return arrays[key]

    yield get
    for array in arrays.values():
        array.close()


def check_counters(program, cycles, counters, stalled):
    assert counters["cycles"] == cycles
    assert counters["last_transfer_cycle"] == cycles - 1
    assert counters["out_beats"] == program.output_beats
    for name, beats in program.inputs.items():
        assert counters[f"{name}_beats"] == beats.shape[0]
        assert 0 <= counters[f"{name}_blocked_cycles"] < cycles
    if stalled:
        assert counters["out_stall_cycles"] > 0


@pytest.mark.parametrize(("rows", "cols", "dataflow"), SMALL)
def test_exact_results_and_cycles(native_array, rows, cols, dataflow):
    array = native_array(rows, cols, dataflow)
    for seed, (m, k, n) in enumerate(SHAPES):
        a, b = operands(seed, m, k, n)
        program = gemm_program(a, b, array.config)
        output, cycles, counters = array.run(program)
        np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
        assert cycles == array_cycles(m, n, k, array.config), (m, k, n)
        check_counters(program, cycles, counters, stalled=False)
        assert counters["out_stall_cycles"] == 0


@pytest.mark.parametrize(("rows", "cols", "dataflow"), SMALL)
def test_idle_gaps_and_back_pressure_lose_nothing(native_array, rows, cols, dataflow):
    array = native_array(rows, cols, dataflow)
    a, b = operands(11, 17, 19, 13)
    program = gemm_program(a, b, array.config)
    expected = gemm(a, b)
    best = array_cycles(17, 13, 19, array.config)
    for seed, (idle, stall) in enumerate(FLOWS):
        flow = FlowControl(idle, stall, seed)
        output, cycles, counters = array.run(program, flow)
        np.testing.assert_array_equal(program.assemble(output), expected)
        assert cycles > best
        check_counters(program, cycles, counters, stalled=stall > 0)
        assert array.run(program, flow)[1] == cycles  # seeded: reproducible


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_same_words_and_cycles_as_pysim(native_array, dataflow):
    array = native_array(2, 2, dataflow)
    a, b = operands(5, 5, 7, 3)
    program = gemm_program(a, b, array.config)
    reference, reference_cycles = run_pysim(program)
    output, cycles, _ = array.run(program)
    np.testing.assert_array_equal(output, reference)
    assert cycles == reference_cycles
    # Random flow control: the generators differ, the answer does not.
    flow = FlowControl(0.3, 0.4, 7)
    np.testing.assert_array_equal(array.run(program, flow)[0], run_pysim(program, flow)[0])


def test_16x16_weight_stationary(native_array):
    array = native_array(16, 16, "ws")
    for seed, (m, k, n) in enumerate([(40, 37, 21), (1, 16, 16), (70, 5, 33)]):
        a, b = operands(seed, m, k, n)
        program = gemm_program(a, b, array.config)
        output, cycles, counters = array.run(program)
        np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
        assert cycles == array_cycles(m, n, k, array.config)
        check_counters(program, cycles, counters, stalled=False)
    a, b = operands(9, 33, 20, 17)
    program = gemm_program(a, b, array.config)
    output, _, _ = array.run(program, FlowControl(0.2, 0.3, 4))
    np.testing.assert_array_equal(program.assemble(output), gemm(a, b))


def test_256_cubed_on_16x16_ws_array_reaches_90_percent_utilization(native_array):
    """The bare array (operands streamed in, no memory): fill and drain counted, back-to-back
    weight tiles overlap. The whole accelerator from memory: tests/test_top_native.py."""
    array = native_array(16, 16, "ws")
    a, b = operands(3, 256, 256, 256)
    program = gemm_program(a, b, array.config)
    output, cycles, _ = array.run(program)
    np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
    assert cycles == array_cycles(256, 256, 256, array.config) == 65_585
    assert utilization(256, 256, 256, cycles, array.config) >= 0.90


def test_zero_operands_and_extremes(native_array):
    array = native_array(2, 2, "ws")
    a = np.full((3, 6), -128, np.int8)
    b = np.full((6, 3), -128, np.int8)
    b[:, 1] = 0
    program = gemm_program(a, b, array.config)
    output, _, _ = array.run(program)
    np.testing.assert_array_equal(program.assemble(output), [[98304, 0, 98304]] * 3)


def test_a_hang_is_reported_not_waited_for(native_array):
    array = native_array(2, 2, "os")
    a, b = operands(3, 3, 4, 3)
    good = gemm_program(a, b, array.config)
    broken = ArrayProgram(good.inputs, good.output_beats + 3, good.config, 3, 3, 4)
    with pytest.raises(SimulationTimeoutError, match=r"hung: no transfer") as caught:
        array.run(broken, FlowControl(0.5, 0.5, 1))
    message = str(caught.value)
    assert f"{good.output_beats} of {good.output_beats + 3} output beats collected" in message
    assert f"stopped at cycle {caught.value.cycles}" in message
    assert caught.value.counters["out_beats"] == good.output_beats
    assert caught.value.counters["operands_beats"] == good.inputs["operands"].shape[0]
    with pytest.raises(SimulationTimeoutError, match=r"within max_cycles=10; stopped at cycle 10"):
        array.run(good, max_cycles=10)
    # The model is reset at the start of every run: it still works after a hang.
    output, _, _ = array.run(good)
    np.testing.assert_array_equal(good.assemble(output), gemm(a, b))


def test_refuses_programs_for_another_array(native_array):
    array = native_array(2, 2, "ws")
    a, b = operands(1, 4, 4, 4)
    other = gemm_program(a, b, AccelConfig(rows=4, cols=8, dataflow="ws"))
    with pytest.raises(
        ValueError,
        match=r"^program is for another configuration than this NativeSim's: rows 4 != 2, "
        r"cols 8 != 2, sparse_lanes 32 != 4, requant_lanes 4 != 1$",
    ):
        array.run(other)
    program = gemm_program(a, b, array.config)
    bad = ArrayProgram(
        {"weights": program.inputs["weights"], "acts": program.inputs["acts"][:, :0]},
        program.output_beats,
        program.config,
        4,
        4,
        4,
    )
    with pytest.raises(ValueError, match=r"stream 'acts' must have shape \[beats, 1\]"):
        array.run(bad)
    dirty = program.inputs["acts"].copy()
    dirty[0, 0] |= 1 << 20  # the acts payload of a 2x2 array has 17 bits
    bad = ArrayProgram(
        {"weights": program.inputs["weights"], "acts": dirty},
        program.output_beats,
        program.config,
        4,
        4,
        4,
    )
    with pytest.raises(ValueError, match=r"stream 'acts' has bits set above its 17-bit"):
        array.run(bad)
    with pytest.raises(ValueError, match=r"max_cycles must be a positive int or None, not 0"):
        array.run(program, max_cycles=0)
    with pytest.raises(ValueError, match=r"vcd_path needs a traced build"):
        array.run(program, vcd_path="unused.vcd")


def test_exact_gen_netlist_and_vcd_trace(native_array, tmp_path):
    """The hdl.gen Verilog itself (traced) agrees with the optimised netlist, and writes VCD."""
    traced = native_array(2, 2, "ws", trace=True, netlist="gen")
    fast = native_array(2, 2, "ws")
    a, b = operands(4, 9, 5, 7)
    program = gemm_program(a, b, fast.config)
    flow = FlowControl(0.2, 0.3, 2)
    expected, expected_cycles, _ = fast.run(program, flow)
    vcd = tmp_path / "run.vcd"
    output, cycles, _ = traced.run(program, flow, vcd_path=vcd)
    np.testing.assert_array_equal(output, expected)
    assert cycles == expected_cycles
    text = vcd.read_text()
    assert "$enddefinitions" in text
    assert "weights__valid" in text
    # Same results from the untraced run of the same library.
    np.testing.assert_array_equal(traced.run(program, flow)[0], expected)


def test_builds_are_cached_and_run_native_matches(native_array):
    array = native_array(2, 2, "os")
    again = build_native(array.config)
    assert again.cached
    assert again.library == array.build.library
    record = json.loads((again.directory / "BUILT.json").read_text())
    assert record["unit"] == "array"
    assert AccelConfig.from_dict(record["config"]) == array.config
    a, b = operands(2, 6, 5, 4)
    program = gemm_program(a, b, array.config)
    output, cycles = run_native(program)
    np.testing.assert_array_equal(program.assemble(output), gemm(a, b))
    assert cycles == array_cycles(6, 4, 5, array.config)


def test_build_failure_raises_with_log_and_leaves_no_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    monkeypatch.setattr(
        unit_build, "native_verilog", lambda config, netlist, unit: "module broken(;\n"
    )
    with pytest.raises(BuildError, match=r"native build step `verilator` failed") as caught:
        build_native(AccelConfig(rows=2, cols=2))
    assert "full log:" in str(caught.value)
    (directory,) = (tmp_path / "native").iterdir()
    assert (directory / "build.log").is_file()
    assert not (directory / "BUILT.json").exists()


def test_cached_build_runs_once_and_not_after_failure(tmp_path):
    calls = []
    output = tmp_path / "out.bin"

    def build():
        calls.append(1)
        output.write_bytes(b"x")
        return {"n": len(calls)}

    cached, record = cached_build(tmp_path, [output], build)
    assert not cached
    assert record["n"] == 1
    assert "built_at" in record
    assert cached_build(tmp_path, [output], build) == (True, record)
    assert len(calls) == 1
    output.unlink()  # a missing output means a rebuild
    assert cached_build(tmp_path, [output], build)[0] is False

    def failing():
        raise BuildError("nope")

    other = tmp_path / "other"
    with pytest.raises(BuildError, match="nope"):
        cached_build(other, [other / "lib.so"], failing)
    assert not (other / "BUILT.json").exists()
