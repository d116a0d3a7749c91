"""``python -m hdl.gen``: files written, config round trip, lint-clean Verilog, bad input."""

import json
import subprocess
import sys

import pytest

from hdl.config import AccelConfig
from hdl.gen import ARRAY_TOP, array_verilog, main
from hdl.units import UNITS
from sim.toolchain import verilator_bin_dir


def lint_messages(verilog_path) -> list[str]:
    """Every message of ``verilator --lint-only`` (default warnings, no waivers)."""
    done = subprocess.run(
        [str(verilator_bin_dir() / "verilator"), "--lint-only", str(verilog_path)],
        capture_output=True,
        text=True,
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("%")]


def test_writes_verilog_and_config(tmp_path, capsys):
    assert main(["--rows", "4", "--cols", "8", "--dataflow", "os", "--out", str(tmp_path)]) == 0
    verilog = (tmp_path / f"{ARRAY_TOP}.v").read_text()
    assert f"module {ARRAY_TOP}(" in verilog
    assert "operands__payload" in verilog and "out__ready" in verilog
    config = AccelConfig.from_json((tmp_path / "accel_config.json").read_text())
    assert (config.rows, config.cols, config.dataflow.value) == (4, 8, "os")
    assert str(tmp_path) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("rows", "cols", "dataflow"),
    [(1, 1, "ws"), (1, 1, "os"), (2, 5, "ws"), (4, 4, "os"), (16, 16, "ws"), (16, 16, "os")],
)
def test_verilog_is_lint_clean_without_waivers(tmp_path, rows, cols, dataflow):
    path = tmp_path / "array.v"
    path.write_text(array_verilog(AccelConfig(rows=rows, cols=cols, dataflow=dataflow)))
    assert lint_messages(path) == []


@pytest.mark.parametrize(
    ("cols", "lanes", "depth"), [(1, 1, 2), (2, 4, 8), (3, 9, 16), (2, 10, 4), (16, 256, 512)]
)
def test_sparse_engine_verilog_is_lint_clean_without_waivers(tmp_path, cols, lanes, depth):
    """G = lanes / cols from 1 to 16, odd ones included (the adder tree carries a product up)."""
    config = AccelConfig(rows=2, cols=cols, sparse_lanes=lanes, sparse_depth=depth)
    path = tmp_path / "sparse.v"
    path.write_text(UNITS["sparse"].verilog(config))
    assert lint_messages(path) == []


@pytest.mark.parametrize("cols", [1, 3, 4, 16])
def test_requantizer_verilog_is_lint_clean_without_waivers(tmp_path, cols):
    path = tmp_path / "requantizer.v"
    path.write_text(UNITS["requant"].verilog(AccelConfig(rows=2, cols=cols)))
    assert lint_messages(path) == []


def test_unit_all_writes_every_unit(tmp_path):
    assert main(["--rows", "2", "--cols", "3", "--unit", "all", "--out", str(tmp_path)]) == 0
    for unit in UNITS.values():
        assert f"module {unit.top}(" in (tmp_path / f"{unit.top}.v").read_text()


def test_without_a_sparse_engine_there_is_no_sparse_unit(tmp_path, capsys):
    argv = ["--rows", "2", "--cols", "2", "--sparse-lanes", "0", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*argv, "--unit", "sparse"])
    assert "--sparse-lanes 0 leaves the sparse engine out" in capsys.readouterr().err
    assert main([*argv, "--unit", "all"]) == 0
    assert not (tmp_path / "sparse_engine.v").exists()
    assert (tmp_path / "systolic_array.v").exists()


def test_unit_option_writes_each_unit(tmp_path, capsys):
    argv = ["--rows", "2", "--cols", "2", "--unit", "sparse", "--unit", "array"]
    assert main([*argv, "--sparse-lanes", "6", "--out", str(tmp_path)]) == 0
    assert "module sparse_engine(" in (tmp_path / "sparse_engine.v").read_text()
    assert "module systolic_array(" in (tmp_path / "systolic_array.v").read_text()
    config = AccelConfig.from_json((tmp_path / "accel_config.json").read_text())
    assert (config.sparse_lanes, config.sparse_groups) == (6, 3)


def test_lint_check_can_fail(tmp_path):
    path = tmp_path / "bad.v"
    path.write_text("module bad(input [7:0] a, output [3:0] y); assign y = a; endmodule\n")
    assert any("WIDTHTRUNC" in message for message in lint_messages(path))


def test_verilog_is_reproducible():
    config = AccelConfig(rows=2, cols=3)
    assert array_verilog(config) == array_verilog(config)
    assert "/work" not in array_verilog(config)  # no source paths in the output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rows", "0", "--out", "x"], "AccelConfig.rows must be in [1, 256], not 0"),
        (["--dataflow", "rs", "--out", "x"], "argument --dataflow: invalid choice: 'rs'"),
        (["--rows", "4"], "the following arguments are required: --out"),
        (["--unit", "fpu", "--out", "x"], "argument --unit: invalid choice: 'fpu'"),
        (
            ["--cols", "4", "--sparse-lanes", "6", "--out", "x"],
            "AccelConfig.sparse_lanes must be a multiple of cols (4), not 6",
        ),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "hdl.gen", "--rows", "2", "--cols", "2", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert json.loads((tmp_path / "accel_config.json").read_text())["rows"] == 2
