"""sim.sweep's RTL sample: the smallest point runs on Verilator and agrees with the model."""

from accel_checks import native_config

from sim.sweep import run

#: The cycle model's stated error for GEMMs (docs/perf-model.md; tests/test_perf.py holds 5 %).
STATED_ERROR = 0.05


def test_the_rtl_sample_agrees_with_the_cycle_model(tmp_path):
    base = native_config().to_dict()  # the 4x4 build the native-harness tests share
    del base["rows"], base["sparse_lanes"], base["requant_lanes"]
    rows = run(
        {"rows": [8, 4]},
        "gemm:24x12x20,5x4x40",
        tmp_path / "s.csv",
        base=base,
        rtl_sample=1,
        workers=1,
        progress=False,
    )
    eight, four = rows
    assert eight["rtl_cycles"] is None and eight["rtl_error"] is None
    assert four["rows"] == 4 and four["rtl_cycles"] > 0
    error = (four["cycles"] - four["rtl_cycles"]) / four["rtl_cycles"]
    assert four["rtl_error"] == error
    print(f"4x4 RTL {four['rtl_cycles']} cycles, model {four['cycles']} ({100 * error:+.2f} %)")
    assert abs(error) <= STATED_ERROR
