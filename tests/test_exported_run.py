"""``python -m sim.run --model PATH.pt2`` (sim/exported_run.py): a saved PT2E program on the
accelerator beside torch's own run of it, and the errors for files that are not one."""

import json
import re
import warnings

import pytest
import torch
from accel_checks import native_config
from torch import nn

from sim import run
from sim.exported_run import run_exported

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchao's notices about its CUDA kernels and XNNPACK's move
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

#: The 4x4 array of the native-harness tests, on the golden backend here.
SMALL = ["--backend", "golden", "--rows", "4", "--cols", "4"]


class Separable(nn.Module):
    """Conv 3->4 + ReLU, depthwise 3x3 + ReLU, Linear: 2 x 36 x (36 + 9) + 2 x 144 x 5 MACs on
    [2, 3, 6, 6]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(21)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.head = nn.Linear(4 * 36, 5)

    def forward(self, x):
        y = torch.relu(self.depthwise(torch.relu(self.conv(x))))
        return self.head(y.flatten(1))


EXPECTED_MACS = 2 * 36 * 4 * (27 + 9) + 2 * 5 * 144


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """Saved programs: ``static`` (PT2E, XNNPACK, example inputs [2, 3, 6, 6] recorded),
    ``dynamic`` (the same with a dynamic batch and no example inputs), ``float`` (exported,
    never quantized) and ``unlowered`` (one conv quantized by XNNPACK to activations in
    [-127, 127], not the full int8 range the accelerator's layers take)."""
    folder = tmp_path_factory.mktemp("programs")
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    model = Separable().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "XNNPACKQuantizer is deprecated!"
        quantizer = XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True)
        )
    batch = ({0: torch.export.Dim("batch", min=1, max=16)},)
    exported = torch.export.export(model, (x,), dynamic_shapes=batch)
    prepared = prepare_pt2e(exported.module(), quantizer)
    prepared(x)
    converted = convert_pt2e(prepared)
    paths = {name: folder / f"{name}.pt2" for name in ("static", "dynamic", "float", "unlowered")}
    torch.export.save(torch.export.export(converted, (x,)), paths["static"])
    dynamic = torch.export.export(converted, (x,), dynamic_shapes=batch)
    dynamic.example_inputs = None
    torch.export.save(dynamic, paths["dynamic"])
    torch.export.save(torch.export.export(model, (x,)), paths["float"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "XNNPACKQuantizer is deprecated!"
        narrow = XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True, act_qmin=-127, act_qmax=127)
        )
    prepared = prepare_pt2e(torch.export.export(model.conv, (x,)).module(), narrow)
    prepared(x)
    torch.export.save(torch.export.export(convert_pt2e(prepared), (x,)), paths["unlowered"])
    return paths


def test_a_pt2e_program_runs_beside_torch(programs, tmp_path, capsys):
    path = tmp_path / "report.json"
    assert run.main(["--model", str(programs["static"]), *SMALL, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "outputs equal to torch's run" in out and "offloaded layers" in out
    report = json.loads(path.read_text())
    assert report["inputs"] == [{"shape": [2, 3, 6, 6], "dtype": "torch.float32"}]
    assert report["accelerator_macs"] == EXPECTED_MACS and report["cpu_macs"] == 0
    assert report["outputs"] == 10 and report["equal_outputs"] >= 9
    assert report["max_step_difference"] <= 1.0
    assert report["cycles"] == sum(layer["cycles"] for layer in report["layers"]) > 0
    # the depthwise conv's 4 groups fill the 4 columns: one GEMM of K = 4 x 9
    assert [(layer["kind"], layer["gemms"]) for layer in report["layers"]] == [
        ("conv2d", 1),
        ("conv2d", 1),
        ("linear", 1),
    ]
    assert report["layers"][1]["shape"] == {"m": 72, "n": 4, "k": 36}


def test_the_rtl_gives_the_golden_outputs(programs):
    """Integer results do not depend on the backend: same agreement, cycles within 5 %."""
    golden = run_exported(programs["static"], "golden", native_config(), seed=3)
    rtl = run_exported(programs["static"], "verilator", native_config(), seed=3)
    assert rtl["equal_outputs"] == golden["equal_outputs"]
    assert rtl["max_abs_difference"] == golden["max_abs_difference"]
    assert abs(rtl["cycles"] - golden["cycles"]) <= 0.05 * rtl["cycles"]


def test_a_dynamic_program_without_example_inputs_needs_an_input_shape(programs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--model", str(programs["dynamic"]), *SMALL])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "records no example inputs and its input 0 has a dynamic shape" in error
    assert "--input-shape" in error
    report = run_exported(programs["dynamic"], "golden", native_config(), input_shape=(5, 3, 6, 6))
    assert report["inputs"][0]["shape"] == [5, 3, 6, 6] and report["outputs"] == 25


def _written(name: str, write):
    """A maker of a file `name` in a folder, written by `write(path)`."""

    def make(folder):
        path = folder / name
        write(path)
        return path

    return make


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda folder: folder / "missing.pt2", [], r"--model '.*missing\.pt2': no such file"),
        (_written("model.pt", lambda p: p.write_bytes(b"x")), [], r"a \.pt2 file .*not a \.pt "),
        (
            _written("garbage.pt2", lambda p: p.write_bytes(b"not a zip")),
            [],
            r"garbage\.pt2 is not a program written by torch.export.save \(RuntimeError: .*ZIP",
        ),
        (
            _written("weights.pt2", lambda p: torch.save({"weight": torch.ones(2)}, p)),
            [],
            r"weights\.pt2 is not a program written by torch.export.save \(.*archive_format",
        ),
        ("float", [], r"float\.pt2 holds no quantized layer: .*\(found: .*conv2d\.default"),
        (
            "unlowered",
            [],
            r"unlowered\.pt2: GraphModule holds no PT2E-quantized Linear or Conv layer "
            r"\(conv2d: activation range \[-127, 127\] is not the full torch.int8 range\)",
        ),
        ("static", ["--workload", "cnn"], r"--model runs your program; --workload apply to"),
        ("static", ["--input-shape", "4,x"], r"--input-shape: expected positive integers"),
    ],
    ids=["missing", "suffix", "garbage", "torch-save", "float", "unlowered", "workload", "shape"],
)
def test_files_and_options_that_cannot_run_exit_2(make, extra, message, programs, tmp_path, capsys):
    path = programs[make] if isinstance(make, str) else make(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--model", str(path), *SMALL, *extra])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
