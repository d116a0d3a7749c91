"""``python -m sim.run``: the table, the JSON report, argument errors."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from accel_checks import native_config

from hdl.config import AccelConfig
from sim import pruned_run, run
from sim.model_run import run_model


def test_default_run_is_the_mlp_on_the_verilator_backend(tmp_path, capsys):
    """The main job: the digits test split through the MLP on the 16x16 RTL."""
    path = tmp_path / "mlp.json"
    assert run.main(["--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Tessera: mlp on the accelerator" in out and "16 x 16 WS" in out
    report = json.loads(path.read_text())
    assert (report["workload"], report["backend"]) == ("mlp", "verilator")
    assert report["mismatches"] == 0 and report["exact_outputs"] == report["outputs"] == 3590
    assert report["device_accuracy"] == report["int8_accuracy"]
    assert abs(report["float_accuracy"] - report["int8_accuracy"]) <= 0.01
    assert [layer["shape"] for layer in report["layers"]] == [
        {"m": 359, "n": 128, "k": 784},
        {"m": 359, "n": 10, "k": 128},
    ]
    assert report["cycles"] == sum(layer["cycles"] for layer in report["layers"]) > 0
    labels = [timing["label"] for timing in report["baselines"]]
    assert labels == ["cpu fp32", "cpu int8", "cuda fp32", "cuda fp16"]
    assert report["baselines"][0]["median_s"] > 0


@pytest.mark.parametrize("workload", ["cnn", "transformer"])
def test_other_models_on_the_golden_backend_in_batches(workload, tmp_path):
    path = tmp_path / "model.json"
    argv = ["--workload", workload, "--backend", "golden", "--rows", "8", "--cols", "8"]
    argv += ["--batch", "100", "--no-baselines", "--json", str(path)]
    assert run.main(argv) == 0
    report = json.loads(path.read_text())
    assert report["batches"] == 4 and report["baselines"] == []
    assert report["mismatches"] == 0 and report["outputs"] == 3590
    assert abs(report["float_accuracy"] - report["int8_accuracy"]) <= 0.01


def test_mobilenet_on_the_golden_backend_is_bit_exact(tmp_path, capsys):
    """The depthwise-separable CNN: every conv on the accelerator, the depthwise ones as
    chunks of 8 groups on 8 columns, the average pool in torch."""
    path = tmp_path / "mobilenet.json"
    argv = ["--workload", "mobilenet", "--backend", "golden", "--rows", "8", "--cols", "8"]
    assert run.main([*argv, "--no-baselines", "--json", str(path)]) == 0
    assert "Tessera: mobilenet on the accelerator" in capsys.readouterr().out
    report = json.loads(path.read_text())
    assert report["mismatches"] == 0 and report["outputs"] == 3590
    assert report["device_accuracy"] == report["int8_accuracy"] > 0.9
    assert report["on_cpu"] == ["module.pool (AdaptiveAvgPool2d)"]
    gemms = {layer["name"].removeprefix("module."): layer["gemms"] for layer in report["layers"]}
    assert gemms == {"stem": 1, "dw1": 2, "pw1": 1, "dw2": 4, "pw2": 1, "dw3": 8, "pw3": 1, "fc": 1}
    # per image: stem 64 x 16 x 9, dw 64 x 16 x 9 + 16 x (32 + 64) x 9, pw 64 x 16 x 32 +
    # 16 x 32 x 64 + 16 x 64 x 64, fc 64 x 10
    per_image = 9216 + 9216 + 4608 + 9216 + 32768 + 32768 + 65536 + 640
    assert report["accelerator_macs"] == 359 * per_image and report["cpu_macs"] == 0


def test_mobilenet_on_the_rtl_is_bit_exact_and_matches_the_cycle_model():
    """32 test images through the shared 4x4 test build (64 KiB of memory: batches of 8)."""
    rtl = run_model("mobilenet", "verilator", native_config(), batch=8, baselines=False, images=32)
    golden = run_model("mobilenet", "golden", native_config(), batch=8, baselines=False, images=32)
    assert rtl["mismatches"] == 0 and rtl["outputs"] == 320 and rtl["batches"] == 4
    assert rtl["layers"][0]["cycle_model"] == "rtl"
    assert abs(golden["cycles"] - rtl["cycles"]) <= 0.05 * rtl["cycles"]


def test_json_report(tmp_path):
    path = tmp_path / "report.json"
    argv = [
        "--workload",
        "gemm",
        "--m",
        "5",
        "--n",
        "7",
        "--k",
        "300",
        "--rows",
        "4",
        "--cols",
        "8",
        "--dataflow",
        "os",
        "--json",
        str(path),
    ]
    assert run.main(argv) == 0
    report = json.loads(path.read_text())
    assert report["shape"] == {"m": 5, "n": 7, "k": 300}
    assert report["config"]["dataflow"] == "os"
    assert report["mismatches"] == 0 and report["outputs"] == 35
    # The golden backend's cycles are the analytical model's, end to end from memory.
    assert report["cycle_model"] == "perf" and report["cycles"] == report["model_cycles"]
    assert report["bound"] in ("compute", "read", "write", "latency")
    # The bare array, OS on 4x8: 2 tiles of K = 300 beats, one every 300 cycles, then
    # 2R + C + 1 to drain; memory traffic makes the whole run longer.
    assert report["array_cycles"] == 300 + 300 + 8 + 8 + 1 < report["cycles"]
    # SCALE-Sim: ceil(5/4) * ceil(7/8) = 2 folds of 8 + 8 + 300 - 2 cycles, minus 1.
    assert report["scalesim_cycles"] == 2 * 314 - 1
    # The hardware counts R x C slots per streamed row: 2 output tiles of 4 x 8 over K = 300.
    assert report["counters"]["macs"] == 2 * 300 * 4 * 8


def test_a_wrong_backend_result_is_reported_as_mismatch(monkeypatch, capsys):
    """The check can fail: corrupt one output and the run exits 1 naming the mismatch."""
    original = run.torch_oracle
    monkeypatch.setattr(
        run,
        "torch_oracle",
        lambda a, b: (
            original(a, b)
            + np.int32(1)
            * (np.arange(a.shape[0] * b.shape[1]).reshape(a.shape[0], b.shape[1]) == 3)
        ),
    )
    assert run.main(["--workload", "gemm", "--m", "4", "--n", "4", "--k", "4"]) == 1
    assert "1 MISMATCHES" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--m", "0"], "argument --m: expected a positive integer, not '0'"),
        (["--k", "x"], "argument --k: expected a positive integer, not 'x'"),
        (["--rows", "300"], "AccelConfig.rows must be in [1, 256], not 300"),
        (["--dataflow", "rs"], "argument --dataflow: invalid choice: 'rs'"),
        (["--backend", "fpga"], "argument --backend: invalid choice: 'fpga'"),
        (["--backend", "pysim"], "the mlp workload runs on 'golden', 'verilator', not 'pysim'"),
        (["--batch", "0"], "argument --batch: expected a positive integer, not '0'"),
        (["--images", "0"], "argument --images: expected a positive integer, not '0'"),
        (["--input-shape", "1,8"], "--input-shape gives the input of --model; the workloads"),
        (["--trace", "x.vcd"], "--trace records the gemm and spmm workloads, not 'mlp'"),
        (["--sparsity", "1"], "sparsity must be in [0, 1), not 1.0"),
        (["--pattern", "2:4"], "--pattern prunes the model: give --sparsity too"),
        (["--sparsity", "0.9", "--pattern", "2:4"], "sparsity must be 0.5, not 0.9"),
        (["--workload", "gemm", "--engine", "sparse"], "--pattern and --engine apply to the"),
        (["--engine", "fastest"], "argument --engine: invalid choice: 'fastest'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_pruned_mlp_runs_bit_exact_with_its_speedup_over_dense(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pruned_run, "STEPS", 2)  # a short fine-tuning: the CLI path is the test
    monkeypatch.setattr(pruned_run, "EPOCHS", 1)
    path = tmp_path / "pruned.json"
    argv = ["--workload", "mlp", "--sparsity", "0.9", "--backend", "golden", "--images", "48"]
    assert run.main([*argv, "--no-baselines", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    pruning = report["pruning"]
    assert report["mismatches"] == 0 and pruning["dense_mismatches"] == 0
    assert report["outputs"] == 480
    assert all(zeros == pytest.approx(0.9, abs=1e-4) for zeros in pruning["layer_zeros"].values())
    assert pruning["steps"] == 2 and pruning["pattern"] == "unstructured"
    assert pruning["speedup"] == pruning["dense_cycles"] / report["cycles"] > 1
    engines = {layer["name"]: layer["engines"] for layer in report["layers"]}
    assert engines["module.fc1"] == ["sparse"], engines
    out = " ".join(capsys.readouterr().out.split())
    assert "speed-up over the dense array" in out and "unstructured to 90 % zeros" in out


def test_module_entry_point_help():
    done = subprocess.run(
        [sys.executable, "-m", "sim.run", "--help"], capture_output=True, text=True, check=True
    )
    assert "--dataflow" in done.stdout and "weight-stationary" in done.stdout
    help_text = " ".join(done.stdout.split())
    assert "--model PATH.pt2" in help_text and "saved with torch.export.save" in help_text
    assert "--input-shape N,C,H,W" in help_text and "mobilenet" in help_text


def test_spmm_workload_reports_exact_cycles_and_speedup(tmp_path, capsys):
    path = tmp_path / "spmm.json"
    argv = ["--workload", "spmm", "--n", "6", "--k", "11", "--m", "3", "--sparsity", "0.5"]
    argv += ["--rows", "2", "--cols", "2", "--backend", "pysim", "--json", str(path)]
    assert run.main(argv) == 0
    out = capsys.readouterr().out
    assert "Tessera: sparse int8 GEMM" in out and "exact (18 outputs)" in out
    report = json.loads(path.read_text())
    assert report["nnz"] == 33 and report["cycle_model"] == "rtl"
    assert abs(report["model_cycles"] - report["cycles"]) <= 0.10 * report["cycles"]
    assert report["speedup"] == report["dense_cycles"] / report["cycles"]


def test_spmm_on_golden_counts_only_nonzero_macs(tmp_path):
    path = tmp_path / "spmm.json"
    argv = ["--workload", "spmm", "--n", "256", "--k", "256", "--m", "64", "--json", str(path)]
    assert run.main(argv) == 0
    report = json.loads(path.read_text())
    # C = 16 lanes per nonzero in each of the 64 / 16 column blocks of X.
    assert report["counters"]["macs"] == report["nnz"] * 64 == 6554 * 64
    # 90 % zeros by default, equal MAC count: faster than the dense accelerator end to end
    # (memory-bound on the nonzeros' 3 bytes each, so less than the engine's own speed-up).
    assert report["speedup"] > 1.5


def test_bad_sparsity_is_refused(capsys):
    with pytest.raises(SystemExit):
        run.main(["--workload", "spmm", "--sparsity", "1.5"])
    assert "argument --sparsity: expected a number in [0, 1], not '1.5'" in capsys.readouterr().err


def test_spmm_without_a_sparse_engine_is_refused_and_gemm_still_runs(capsys):
    with pytest.raises(SystemExit):
        run.main(["--workload", "spmm", "--rows", "2", "--cols", "2", "--sparse-lanes", "0"])
    assert "spmm workload needs the sparse engine" in capsys.readouterr().err
    argv = ["--workload", "gemm", "--m", "5", "--n", "3", "--k", "7", "--sparse-lanes", "0"]
    assert run.main([*argv, "--rows", "2", "--cols", "2", "--backend", "pysim"]) == 0
    assert "exact (15 outputs)" in capsys.readouterr().out


def test_trace_writes_a_vcd_of_the_verilator_run(tmp_path):
    path = tmp_path / "run.vcd"
    argv = ["--workload", "gemm", "--backend", "verilator", "--m", "5", "--n", "3", "--k", "7"]
    argv += ["--rows", "2"]
    argv += ["--cols", "2", "--spad-bytes", "256", "--acc-rows", "16", "--trace", str(path)]
    assert run.main(argv) == 0
    text = path.read_text()
    assert "$enddefinitions" in text and "cmd__valid" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--workload", "gemm", "--trace", "x.vcd"],
            "--trace needs --backend verilator, not 'golden'",
        ),
        (
            ["--workload", "gemm", "--backend", "verilator", "--trace", "x.fst"],
            "--trace writes VCD; give a path ending in .vcd, not 'x.fst'",
        ),
    ],
)
def test_bad_trace_requests_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_memory_and_engine_options_reach_the_configuration(tmp_path):
    """--bus-bytes, --mem-latency, --spad-bytes, --acc-rows, --sparse-lanes, --sparse-depth,
    --counter-bits and --seed: a slower memory costs cycles; the options land in the report's
    configuration."""
    reports = []
    for latency, bus in ((0, 16), (200, 4)):
        path = tmp_path / f"spmm{latency}.json"
        argv = ["--workload", "spmm", "--n", "40", "--k", "70", "--m", "20", "--seed", "3"]
        argv += ["--mem-latency", str(latency), "--bus-bytes", str(bus), "--sparse-lanes", "64"]
        argv += ["--sparse-depth", "32", "--rows", "4", "--cols", "4", "--spad-bytes", "1024"]
        argv += ["--acc-rows", "64", "--counter-bits", "40", "--json", str(path)]
        assert run.main(argv) == 0
        reports.append(json.loads(path.read_text()))
    fast, slow = reports
    assert slow["config"]["mem_latency"] == 200 and slow["config"]["bus_bytes"] == 4
    assert slow["config"]["sparse_lanes"] == 64 and slow["config"]["sparse_depth"] == 32
    assert (slow["config"]["spad_bytes"], slow["config"]["acc_rows"]) == (1024, 64)
    assert slow["config"]["counter_bits"] == 40
    assert slow["cycles"] > fast["cycles"] and slow["nnz"] == fast["nnz"]


def board_report(tmp_path, fmax):
    """A board build's report.json as `hdl.fpga.BoardReport.to_json` writes it (the fields
    ``--fpga-report`` reads)."""
    config = AccelConfig(rows=2, cols=2, spad_bytes=256, acc_rows=16, bus_bytes=4)
    config = dataclasses.replace(config, mem_bytes=65536, mem_latency=2, clock_mhz=25.0)
    path = tmp_path / "report.json"
    report = {"board": "ulx3s-85f", "clock_mhz": 25.0, "config": config.to_dict(), "fmax_mhz": fmax}
    path.write_text(json.dumps(report))
    return path


def test_fpga_report_sets_the_configuration_and_the_clock(tmp_path):
    report_path = board_report(tmp_path, {"clk": 31.25, "other": 40.0})
    out = tmp_path / "run.json"
    argv = ["--workload", "gemm", "--m", "6", "--n", "5", "--k", "9"]
    assert run.main([*argv, "--fpga-report", str(report_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["rows"] == 2 and report["config"]["mem_latency"] == 2
    assert report["config"]["clock_mhz"] == 31.25  # the slowest clock's Fmax
    assert report["modeled_us"] == pytest.approx(report["cycles"] / 31.25)
    assert report["clock"]["mhz"] == 31.25
    assert report["clock"]["source"].startswith(f"the achieved Fmax of {report_path} (ulx3s-85f")


def test_without_a_report_the_clock_is_said_to_be_assumed(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert (
        run.main(["--workload", "gemm", "--m", "4", "--n", "4", "--k", "4", "--json", str(out)])
        == 0
    )
    printed = " ".join(capsys.readouterr().out.split())
    assert "clock of the modeled times: 100 MHz, assumed" in printed
    assert "--fpga-report" in printed
    assert json.loads(out.read_text())["clock"]["source"] == run.ASSUMED_CLOCK


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "4"], "--fpga-report takes the configuration from the report; drop --rows"),
        (["--fpga-report", "missing.json"], "'missing.json' is not a board build's report.json"),
    ],
)
def test_fpga_report_errors(tmp_path, extra, message, capsys):
    argv = ["--workload", "gemm", *extra]
    if "--fpga-report" not in extra:
        argv += ["--fpga-report", str(board_report(tmp_path, {"clk": 30.0}))]
    with pytest.raises(SystemExit) as exit_:
        run.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
