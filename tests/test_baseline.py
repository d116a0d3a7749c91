"""host.baseline: torch timings on CPU fp32/int8 and CUDA fp32/fp16, skipped with a reason when
there is no GPU; argument errors name the offending value. No wall time is asserted."""

import pytest
import torch
from torch import nn

import host
from host.baseline import Timing, baselines, is_quantized, time_model


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.fixture(scope="module")
def workload():
    model = small_model()
    torch.manual_seed(1)
    x = torch.rand(8, 16)
    return model, host.quantize(model, x, engine="qnnpack"), x


def check_measured(timing: Timing, *, device, dtype, repeats, batch=8):
    assert timing.measured and timing.skipped is None
    assert (timing.device, timing.dtype, timing.iterations, timing.batch) == (
        device,
        dtype,
        repeats,
        batch,
    )
    assert 0 < timing.min_s <= timing.median_s
    assert timing.per_sample_s == pytest.approx(timing.median_s / batch)
    assert timing.threads >= 1


def test_cpu_fp32_and_int8_timings_are_positive(workload):
    model, qmodel, x = workload
    check_measured(time_model(model, x, repeats=4, warmup=1), device="cpu", dtype="fp32", repeats=4)
    check_measured(time_model(qmodel, x, repeats=3), device="cpu", dtype="int8", repeats=3)
    timing = time_model(model, x, dtype=torch.bfloat16, repeats=2, warmup=0, label="mine")
    check_measured(timing, device="cpu", dtype="bf16", repeats=2)
    assert timing.label == "mine"
    assert "median" in str(timing) and "us/sample" in str(timing)


def test_the_callers_model_is_not_cast_or_switched_to_eval(workload):
    model, _, x = workload
    model.train()
    time_model(model, x, dtype=torch.bfloat16, repeats=1)
    assert model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_baselines_time_cpu_and_skip_cuda_with_a_reason(workload, monkeypatch):
    model, qmodel, x = workload
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.quantized, "engine", "x86")
    timings = baselines(model, qmodel, x, repeats=3, warmup=1)
    assert torch.backends.quantized.engine == "x86"  # qnnpack for the int8 run, then restored
    assert [t.label for t in timings] == ["cpu fp32", "cpu int8", "cuda fp32", "cuda fp16"]
    check_measured(timings[0], device="cpu", dtype="fp32", repeats=3)
    check_measured(timings[1], device="cpu", dtype="int8", repeats=3)
    assert timings[1].engine == "qnnpack" and timings[0].engine is None
    assert str(timings[1]).startswith("cpu int8 (qnnpack): median ")
    for timing in timings[2:]:
        assert not timing.measured and timing.median_s is None and timing.min_s is None
        assert timing.per_sample_s is None
        assert timing.skipped.startswith("torch.cuda.is_available() is False: torch ")
        assert str(timing).startswith(f"{timing.label}: skipped (torch.cuda.is_available()")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_baselines_time_cuda_when_available(workload):
    model, qmodel, x = workload
    timings = baselines(model, qmodel, x, repeats=3, warmup=1)
    check_measured(timings[2], device="cuda", dtype="fp32", repeats=3)
    check_measured(timings[3], device="cuda", dtype="fp16", repeats=3)


def test_baselines_without_a_quantized_model_skip_int8(workload, monkeypatch):
    model, _, x = workload
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    timings = baselines(model, None, x, repeats=1)
    assert timings[1].label == "cpu int8" and timings[1].skipped == "no quantized model given"


def test_is_quantized(workload):
    model, qmodel, _ = workload
    assert is_quantized(qmodel) and not is_quantized(model)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"repeats": -1}, ValueError, r"^repeats must be an integer >= 1, not -1$"),
        ({"repeats": 0}, ValueError, r"^repeats must be an integer >= 1, not 0$"),
        ({"repeats": True}, ValueError, r"^repeats must be an integer >= 1, not True$"),
        ({"warmup": -2}, ValueError, r"^warmup must be an integer >= 0, not -2$"),
        ({"device": "tpu"}, ValueError, r"^device must be one of 'cpu', 'cuda', not 'tpu'$"),
        ({"dtype": torch.int8}, ValueError, r"^dtype must be None or one of .*, not torch\.int8$"),
    ],
)
def test_time_model_rejects_bad_arguments(workload, arguments, error, message):
    model, _, x = workload
    with pytest.raises(error, match=message):
        time_model(model, x, **arguments)


def test_time_model_rejects_bad_models_and_inputs(workload):
    model, qmodel, x = workload
    with pytest.raises(TypeError, match=r"^model must be a torch\.nn\.Module, not <class 'str'>$"):
        time_model("model", x)
    with pytest.raises(TypeError, match=r"^example_input must be a float torch\.Tensor, not "):
        time_model(model, torch.ones(2, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^example_input must have a non-empty batch dimension"):
        time_model(model, torch.ones(0, 16))
    with pytest.raises(ValueError, match=r"^a quantized \(int8\) model cannot be cast to "):
        time_model(qmodel, x, dtype=torch.float16)


def test_cuda_requested_without_a_gpu_is_an_error_naming_it(workload, monkeypatch):
    model, _, x = workload
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        RuntimeError, match=r"^device 'cuda' requested but torch\.cuda\.is_available\(\) is False"
    ):
        time_model(model, x, device="cuda")


def test_a_quantized_model_cannot_run_on_cuda(workload, monkeypatch):
    _, qmodel, x = workload
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match=r"^a quantized \(int8\) torch model runs on the CPU only"):
        time_model(qmodel, x, device="cuda")


def test_baselines_reject_swapped_models_and_unknown_engines(workload):
    model, qmodel, x = workload
    with pytest.raises(ValueError, match=r"^float_model is a quantized model"):
        baselines(qmodel, qmodel, x)
    with pytest.raises(ValueError, match=r"^quantized_model holds no torch\.ao quantized module"):
        baselines(model, model, x)
    with pytest.raises(ValueError, match=r"^engine must be one of this torch build's quantized "):
        baselines(model, qmodel, x, engine="onednn-nope")
