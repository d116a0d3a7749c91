"""sim.sweep.run on Dask: a local cluster, a separately started scheduler, bad input, resume."""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from sweep_cluster import ROOT, external_cluster, free_port

from hdl.config import AccelConfig
from hdl.fpga import BoardReport, ResourceUse
from sim.perf import gemm_estimate
from sim.sweep import read_results, run
from sim.sweep.__main__ import main
from sim.sweep.space import grid_points, parse_field, point_key
from sim.sweep.workload import workload_gemms, workload_name

GEMMS = "gemm:40x24x36,8x10x64"
SPACE = {"rows": [2, 4], "cols": [4, 8], "dataflow": ["ws", "os"]}


def _unreachable() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def _board_report(tmp_path, config: AccelConfig):
    """A board build's report.json for `config` (built at 25 MHz, 72 MHz achieved)."""
    uses = [("LUT", "TRELLIS_COMB", 4444, 83640), ("DSP", "MULT18X18D", 8, 156)]
    report = BoardReport(
        board="ulx3s-85f",
        device="LFE5U-85F",
        config=dataclasses.replace(config, clock_mhz=25.0).to_dict(),
        memory_bytes=65536,
        clock_mhz=25.0,
        baud=115200,
        divisor=217,
        resources=[ResourceUse(*use) for use in uses],
        fmax_mhz={"clk": 72.0},
        constraint_mhz={"clk": 25.0},
        cells={},
        elaborate_s=1.0,
        toolchain_s=2.0,
        build_s=3.0,
        bitstream="top.bit",
    )
    path = tmp_path / "report.json"
    path.write_text(report.to_json())
    return path


def test_a_grid_on_the_local_cluster_then_a_rerun_computes_nothing(tmp_path):
    out = tmp_path / "sweep.csv"
    config = grid_points(SPACE)[0]
    report = _board_report(tmp_path, config)
    rows = run(SPACE, GEMMS, out, workers=2, progress=False, fpga_reports=[report])
    assert len(rows) == 8
    first = rows[0]
    assert (first["rows"], first["cols"], first["dataflow"]) == (2, 4, "ws")
    assert (first["fpga_board"], first["fpga_lut"], first["fpga_dsp"]) == ("ulx3s-85f", 4444, 8)
    assert first["fpga_fmax_mhz"] == 72.0 and first["fpga_ff"] is None
    assert all(row["fpga_board"] is None for row in rows[1:])
    assert first["cycles"] == sum(
        gemm_estimate(m, n, k, config, requant=True).cycles
        for m, n, k in [(40, 24, 36), (8, 10, 64)]
    )
    assert first["macs"] == 40 * 24 * 36 + 8 * 10 * 64
    for row in rows:
        assert 0 < row["utilization"] <= 1
        assert row["energy_pj"] > row["energy_dram_pj"] > 0
        assert row["area_mm2"] > 0 and row["rtl_cycles"] is None
        assert [layer[:4] for layer in row["layers"]] == [
            ["gemm0", 40, 24, 36],
            ["gemm1", 8, 10, 64],
        ]
    # Everything is in the file: a rerun needs no cluster (this scheduler does not exist).
    again = run(SPACE, GEMMS, out, scheduler=_unreachable(), timeout=1, progress=False)
    assert again == rows


def test_model_workloads_are_derived_from_the_offloaded_layers():
    cnn = workload_gemms("cnn", [4, 8], batch=2)
    assert cnn[4] == cnn[8]
    assert [(g.name, g.m, g.n, g.k, g.int8) for g in cnn[4]] == [
        ("conv1", 128, 8, 9, True),  # im2col: 2 images x 8 x 8 positions, 3x3 x 1 channel
        ("conv2", 32, 16, 72, True),
        ("fc", 2, 10, 256, True),
    ]
    # a depthwise conv runs in chunks of groups as wide as the array
    mobilenet = workload_gemms("mobilenet", [4, 8])
    assert len(mobilenet[4]) > len(mobilenet[8])
    assert workload_name("cnn", None) == "cnn, batch 1"


def test_a_separately_started_scheduler_and_two_workers(tmp_path):
    with external_cluster(workers=2) as address:
        rows = run(
            {"rows": [2, 4], "cols": [4]},
            GEMMS,
            tmp_path / "s.csv",
            scheduler=address,
            progress=False,
        )
    assert [(r["rows"], r["cols"]) for r in rows] == [(2, 4), (4, 4)]
    assert all(r["cycles"] > 0 for r in rows)


def test_an_unreachable_scheduler_is_named(tmp_path):
    address = _unreachable()
    with pytest.raises(
        ConnectionError, match=rf"^no Dask scheduler answers at {address} within 1 s"
    ):
        run({"rows": [2]}, GEMMS, tmp_path / "s.csv", scheduler=address, timeout=1)
    with pytest.raises(
        ValueError, match=r"^scheduler must be an address tcp://HOST:PORT, not 'x'$"
    ):
        run({"rows": [2]}, GEMMS, tmp_path / "t.csv", scheduler="x")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "depth=4"], "AccelConfig has no field 'depth'"),
        (
            ["--grid", "rows=0,4"],
            r"sweep point {'rows': 0}: AccelConfig.rows must be in \[1, 256\], not 0",
        ),
        (["--grid", "rows="], "'rows=' gives rows no values"),
        (["--grid", "rows=4", "--workload", "resnet"], "workload must be one of 'mlp', 'cnn'"),
        (["--grid", "rows=4", "--workload", "gemm:4x4"], "a GEMM workload is gemm:MxNxK"),
        (["--grid", "rows=4", "--batch", "2"], "batch applies to the reference models, not"),
        (
            ["--grid", "rows=4", "--batch", "0", "--workload", "cnn"],
            r"batch must be an int in \[1, 359\]",
        ),
    ],
)
def test_bad_input_exits_with_the_reason(tmp_path, capsys, argv, message):
    argv = ["--workload", GEMMS, *argv] if "--workload" not in argv else argv
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "s.csv"), "--no-progress"])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_an_empty_space_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^the sweep space is empty"):
        run({}, GEMMS, tmp_path / "s.csv")


def _data_rows(path) -> int:
    return max(0, path.read_text().count("\n") - 1) if path.exists() else 0


def test_a_killed_sweep_resumes_without_losing_or_repeating_a_point(tmp_path):
    out = tmp_path / "sweep.csv"
    grid = ["rows=1..6", "cols=2,4", "dataflow=ws,os"]  # 24 points
    workload = "gemm:64x32x96"  # about 0.1 s per point on these small arrays
    command = [
        sys.executable,
        "-m",
        "sim.sweep",
        "--workload",
        workload,
        "--grid",
        *grid,
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while _data_rows(out) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the CLI and its cluster's worker processes
        process.wait()
    killed_at = _data_rows(out)
    assert 3 <= killed_at < 24, f"the sweep was not killed mid-way ({killed_at} rows)"
    with out.open("a") as file:
        file.write("0123abcd,gemm:64x32x9")  # and as if the kill had cut a row short
    space = dict(parse_field(spec) for spec in grid)
    rows = run(space, workload, out, workers=1, progress=False)
    keys = [row["key"] for row in read_results(out)]
    expected = {point_key(config, workload_name(workload, None)) for config in grid_points(space)}
    assert len(keys) == len(set(keys)) == 24
    assert set(keys) == expected == {row["key"] for row in rows}


def test_a_user_pt2e_program_is_a_workload(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao's notices, XNNPACKQuantizer's deprecation
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.testing.pt2e._xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
        x = torch.randn(3, 16)
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), quantizer)
        prepared(x)
        path = tmp_path / "tiny.pt2"
        torch.export.save(torch.export.export(convert_pt2e(prepared), (x,)), path)
    (gemm,) = workload_gemms(path, [4])[4]
    assert (gemm.m, gemm.n, gemm.k, gemm.macs) == (3, 8, 16, 3 * 8 * 16)
    assert workload_name(path, None).startswith("tiny.pt2@")
    with pytest.raises(ValueError, match=r"^a \.pt2 program runs at the input shapes it records"):
        workload_gemms(path, [4], batch=2)


def test_the_command_line_prints_the_front_and_writes_the_plots(tmp_path, capsys):
    out, plots = tmp_path / "s.csv", tmp_path / "plots"
    argv = ["--workload", GEMMS, "--grid", "rows=2,4", "cols=4,8", "--out", str(out)]
    assert main([*argv, "--workers", "1", "--no-progress", "--plot", str(plots)]) == 0
    printed = capsys.readouterr().out
    assert "Pareto front:" in printed and "least energy x latency" in printed
    assert sorted(p.name for p in plots.iterdir()) == [
        "pareto.png",
        "roofline.png",
        "utilization.png",
    ]
    assert len(read_results(out)) == 4


def test_a_point_failing_on_a_worker_is_named(tmp_path):
    too_deep = "gemm:1x1x200000"  # beyond the int32 accumulation limit of sim.schedule
    message = r"^sweep point AccelConfig\(rows=2, .*\): k must be at most 131071"
    with pytest.raises(RuntimeError, match=message):
        run({"rows": [2]}, too_deep, tmp_path / "s.csv", workers=1, progress=False)
