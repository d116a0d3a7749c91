"""CPU and GPU baselines: time a torch model the way the accelerator's figures are compared.

`time_model` times one model on one device and dtype: the model (a copy, moved and cast) and the
input are placed on the device first, then ``warmup`` untimed forward passes run, then
``repeats`` timed ones, each measured alone with ``time.perf_counter`` under ``torch.no_grad``
(on CUDA, with ``torch.cuda.synchronize()`` before the clock starts and before it stops). The
result, a `Timing`, holds the median and the minimum over the repeats and the time per sample.
Only the forward pass is timed: host-to-device copies are not.

`baselines` times the same workload four ways: the float model on the CPU in fp32, the torch.ao
quantized model on the CPU in int8 (with the quantized engine it was converted for, qnnpack by
default), and the float model on CUDA in fp32 and fp16. Without a CUDA device the CUDA entries
come back skipped, with the reason, and hold no times: nothing is estimated.

Example::

    import host, models

    model, data, _ = models.load("mlp")
    qmodel = host.quantize(model, data.calibration_x)
    for timing in host.baselines(model, qmodel, data.test_x):
        print(timing)       # e.g. "cpu fp32: median 181.2 us (0.50 us/sample), ..."
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from host.dynamic import quantized_engine

__all__ = ["DEVICES", "DTYPES", "Timing", "baselines", "is_quantized", "time_model"]

#: Devices `time_model` accepts.
DEVICES = ("cpu", "cuda")

#: Float dtypes a float model may be cast to, with their short names.
DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

#: Where torch keeps the modules of quantized (int8) models; those run on the CPU only.
_QUANTIZED_PACKAGES = (
    "torch.ao.nn.quantized",
    "torch.ao.nn.intrinsic.quantized",
    "torch.ao.nn.quantizable",
)


@dataclass(frozen=True)
class Timing:
    """Forward-pass times of one model on one device and dtype.

    Attributes
    ----------
    label:
        What was timed, e.g. ``"cpu fp32"``, ``"cpu int8"``, ``"cuda fp16"``.
    device:
        ``"cpu"`` or ``"cuda"``.
    dtype:
        ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (a torch.ao quantized model).
    batch:
        Samples per forward pass (the input's first dimension).
    warmup, iterations:
        Untimed and timed forward passes.
    threads:
        ``torch.get_num_threads()`` during the run (CPU timings depend on it).
    median_s, min_s:
        Median and minimum seconds per forward pass; None when the entry was skipped.
    skipped:
        Why the entry was not measured (e.g. no CUDA device), else None.
    engine:
        For int8 timings, the quantized engine that ran (``torch.backends.quantized.engine``).
    """

    label: str
    device: str
    dtype: str
    batch: int
    warmup: int
    iterations: int
    threads: int
    median_s: float | None
    min_s: float | None
    skipped: str | None = None
    engine: str | None = None

    @property
    def measured(self) -> bool:
        """True when the entry holds times (it was not skipped)."""
        return self.skipped is None

    @property
    def per_sample_s(self) -> float | None:
        """Median seconds per sample (``median_s / batch``); None when skipped."""
        return None if self.median_s is None else self.median_s / self.batch

    def __str__(self) -> str:
        if self.median_s is None or self.min_s is None:
            return f"{self.label}: skipped ({self.skipped})"
        engine = f" ({self.engine})" if self.engine else ""
        return (
            f"{self.label}{engine}: median {self.median_s * 1e6:.1f} us "
            f"({self.median_s / self.batch * 1e6:.2f} us/sample), min {self.min_s * 1e6:.1f} us, "
            f"batch {self.batch}, {self.iterations} runs after {self.warmup} warm-up, "
            f"{self.threads} threads"
        )


def time_model(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    warmup: int = 5,
    repeats: int = 30,
    label: str | None = None,
) -> Timing:
    """Time ``model(example_input)`` on `device`, as median and minimum over `repeats` runs.

    Parameters
    ----------
    model:
        A float ``nn.Module`` (copied, then moved to `device` and cast to `dtype`; the caller's
        model is not modified) or a torch.ao quantized model (run as it is, on the CPU).
    example_input:
        One float batch; its first dimension is the batch size.
    device:
        ``"cpu"`` or ``"cuda"``.
    dtype:
        For a float model, the dtype to cast the model and input to (a key of `DTYPES`); None
        keeps the model's own dtype. Must be None for a quantized model (int8 already).
    warmup:
        Untimed forward passes first (>= 0).
    repeats:
        Timed forward passes (>= 1).
    label:
        Name of the entry; ``f"{device} {dtype}"`` by default.

    Raises
    ------
    TypeError
        `model` is not an ``nn.Module`` or `example_input` not a float tensor.
    ValueError
        Unknown `device` or `dtype`, `warmup`/`repeats` out of range, or a quantized model asked
        to run on CUDA or be cast.
    RuntimeError
        ``device="cuda"`` while torch sees no CUDA device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model)!r}")
    if not isinstance(example_input, torch.Tensor) or not example_input.is_floating_point():
        raise TypeError(
            f"example_input must be a float torch.Tensor, not "
            f"{getattr(example_input, 'dtype', type(example_input))}"
        )
    if example_input.dim() == 0 or example_input.shape[0] == 0:
        raise ValueError(
            f"example_input must have a non-empty batch dimension, not shape "
            f"{tuple(example_input.shape)}"
        )
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))}, not {device!r}")
    if dtype is not None and dtype not in DTYPES:
        names = ", ".join(str(d) for d in DTYPES)
        raise ValueError(f"dtype must be None or one of {names}, not {dtype!r}")
    for name, value, least in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, not {value!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device 'cuda' requested but {_no_cuda_reason()}")

    quantized = is_quantized(model)
    if quantized:
        if device != "cpu":
            raise ValueError(
                f"a quantized (int8) torch model runs on the CPU only, not on {device!r}"
            )
        if dtype is not None:
            raise ValueError(f"a quantized (int8) model cannot be cast to {dtype}; pass dtype=None")
        runner, dtype_name = model, "int8"
        inputs = example_input.to(device="cpu", dtype=torch.float32)
    else:
        runner = copy.deepcopy(model).to(device=device, dtype=dtype)
        model_dtype = dtype or _float_dtype(runner) or example_input.dtype
        dtype_name = DTYPES.get(model_dtype, str(model_dtype).removeprefix("torch."))
        inputs = example_input.to(device=device, dtype=model_dtype)

    was_training = runner.training
    runner.eval()
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                runner(inputs)
            for _ in range(repeats):
                _synchronize(device)
                start = time.perf_counter()
                runner(inputs)
                _synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        runner.train(was_training)
    return Timing(
        label=label or f"{device} {dtype_name}",
        device=device,
        dtype=dtype_name,
        batch=int(example_input.shape[0]),
        warmup=warmup,
        iterations=repeats,
        threads=torch.get_num_threads(),
        median_s=statistics.median(times),
        min_s=min(times),
        engine=torch.backends.quantized.engine if quantized else None,
    )


def baselines(
    float_model: nn.Module,
    quantized_model: nn.Module | None,
    inputs: torch.Tensor,
    *,
    engine: str = "qnnpack",
    warmup: int = 5,
    repeats: int = 30,
) -> list[Timing]:
    """Time a workload in torch: CPU fp32, CPU int8, CUDA fp32 and CUDA fp16, in that order.

    Parameters
    ----------
    float_model:
        The float model.
    quantized_model:
        Its torch.ao quantized form (e.g. from `host.quantize`), or None to skip ``cpu int8``.
    inputs:
        One float batch, the same for every entry.
    engine:
        The quantized engine the model was converted for (``torch.backends.quantized.engine``
        is set to it while the int8 model runs, then restored).
    warmup, repeats:
        As in `time_model`.

    Returns
    -------
    list of Timing
        Four entries; those that could not run are skipped with the reason (no CUDA device, no
        quantized model), never estimated.
    """
    if engine not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"engine must be one of this torch build's quantized engines "
            f"{torch.backends.quantized.supported_engines}, not {engine!r}"
        )
    if is_quantized(float_model):
        raise ValueError("float_model is a quantized model; pass the float model it came from")
    if quantized_model is not None and not is_quantized(quantized_model):
        raise ValueError(
            "quantized_model holds no torch.ao quantized module; quantize it first (host.quantize)"
        )
    common = {"warmup": warmup, "repeats": repeats}
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) and inputs.dim() else 0
    timings = [time_model(float_model, inputs, device="cpu", dtype=torch.float32, **common)]
    if quantized_model is None:
        timings.append(_skipped("cpu int8", "cpu", "int8", batch, "no quantized model given"))
    else:
        with quantized_engine(engine):
            timings.append(time_model(quantized_model, inputs, device="cpu", **common))
    for dtype in (torch.float32, torch.float16):
        if torch.cuda.is_available():
            timings.append(time_model(float_model, inputs, device="cuda", dtype=dtype, **common))
        else:
            name = DTYPES[dtype]
            timings.append(_skipped(f"cuda {name}", "cuda", name, batch, _no_cuda_reason()))
    return timings


def is_quantized(model: nn.Module) -> bool:
    """True when `model` holds a torch.ao quantized module (which runs on the CPU only)."""
    return any(type(m).__module__.startswith(_QUANTIZED_PACKAGES) for m in model.modules())


def _float_dtype(model: nn.Module) -> torch.dtype | None:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _no_cuda_reason() -> str:
    build = torch.version.cuda
    what = f"a CUDA {build} build, but no usable GPU" if build else "a CPU-only build"
    return f"torch.cuda.is_available() is False: torch {torch.__version__} is {what}"


def _skipped(label: str, device: str, dtype: str, batch: int, reason: str) -> Timing:
    return Timing(
        label=label,
        device=device,
        dtype=dtype,
        batch=batch,
        warmup=0,
        iterations=0,
        threads=torch.get_num_threads(),
        median_s=None,
        min_s=None,
        skipped=reason,
    )
