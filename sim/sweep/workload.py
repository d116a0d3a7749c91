"""What a sweep evaluates: a workload as the list of GEMMs it puts on the accelerator.

`workload_gemms(workload, cols, batch)` returns, for each array width in `cols`, the GEMMs
(`sim.sweep.evaluate.Gemm`) of one of

- a reference model of `models` (``"mlp"``, ``"cnn"``, ``"transformer"``, ``"mobilenet"``): loaded
  (trained on first use, then cached), quantized with `host.quantize` (qnnpack) and offloaded to a
  golden `host.device.Device`, then `batch` digits test images are run through it once; each
  offloaded layer's GEMM (M x K by K x N, a conv's im2col patches included) and whether its
  output is requantized (one byte written per output, not four) are read off that run's
  report. Only a grouped conv's GEMMs depend on the array
  (its chunks of groups fill ``cols`` columns), so the model runs once per distinct width;
- a user's PT2E program (a ``.pt2`` path, as ``python -m sim.run --model``): the same, on the
  seeded inputs of the shapes it records (`sim.exported_run.random_inputs`; `batch` does not
  apply);
- a list of GEMMs: ``"gemm:MxNxK,MxNxK,..."`` or a list of (M, N, K) tuples (int8 output).

`workload_name` is the stable name stored with each result row.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from hdl.config import AccelConfig
from sim.sweep.evaluate import Gemm

__all__ = ["MODELS", "workload_gemms", "workload_name"]

#: The reference models a sweep can take by name.
MODELS = ("mlp", "cnn", "transformer", "mobilenet")


def _parse_gemms(workload) -> list[Gemm]:
    if isinstance(workload, str):
        text = workload.removeprefix("gemm:")
        try:
            shapes = [tuple(int(v) for v in part.split("x")) for part in text.split(",")]
        except ValueError:
            shapes = [()]
    else:
        shapes = [tuple(shape) for shape in workload]
    if not shapes or any(len(s) != 3 or min(s) < 1 for s in shapes):
        raise ValueError(
            f"a GEMM workload is gemm:MxNxK[,MxNxK...] or a list of (M, N, K) with each >= 1, "
            f"not {workload!r}"
        )
    return [Gemm(f"gemm{i}", m, n, k, m * n * k) for i, (m, n, k) in enumerate(shapes)]


def _is_gemms(workload) -> bool:
    return not isinstance(workload, str | Path) or str(workload).startswith("gemm:")


def _check_batch(workload, batch: int | None) -> None:
    if batch is None:
        return
    if _is_gemms(workload):
        raise ValueError("batch applies to the reference models, not to a GEMM list")
    if str(workload).endswith(".pt2"):
        raise ValueError("a .pt2 program runs at the input shapes it records; drop batch")


def workload_name(workload, batch: int | None) -> str:
    """The name of `workload` in result rows: the model and batch, the GEMM list, or the
    program file's name and a hash of its bytes (so an edited file is a new workload); raises
    as `workload_gemms` for a bad workload or a `batch` it does not take."""
    _check_batch(workload, batch)
    if _is_gemms(workload):
        return "gemm:" + ",".join(f"{g.m}x{g.n}x{g.k}" for g in _parse_gemms(workload))
    if str(workload).endswith(".pt2"):
        path = Path(workload)
        if not path.is_file():
            raise ValueError(f"workload {str(path)!r}: no such file")
        return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    _require_model(workload)
    return f"{workload}, batch {batch or 1}"


def _require_model(workload) -> None:
    if workload not in MODELS:
        raise ValueError(
            f"workload must be one of {', '.join(map(repr, MODELS))}, a .pt2 program or "
            f"gemm:MxNxK[,...], not {workload!r}"
        )


def workload_gemms(workload, cols, batch: int | None = None) -> dict[int, list[Gemm]]:
    """The GEMMs of `workload` for each array width in `cols` (module doc).

    Raises
    ------
    ValueError
        An unknown workload, a malformed GEMM list, a missing or bad program file, a `batch`
        below 1 or above the test split, a `batch` given with a GEMM list or a program file.
    """
    cols = sorted(set(cols))
    _check_batch(workload, batch)
    if _is_gemms(workload):
        return dict.fromkeys(cols, _parse_gemms(workload))
    if str(workload).endswith(".pt2"):
        return {width: _exported_gemms(Path(workload), width) for width in cols}
    _require_model(workload)
    return _model_gemms(workload, cols, 1 if batch is None else batch)


def _model_gemms(workload: str, cols: list[int], batch: int) -> dict[int, list[Gemm]]:
    import models
    from host.quant import quantize

    model, data, _ = models.load(workload)
    images = data.test_x.shape[0]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= images:
        raise ValueError(f"batch must be an int in [1, {images}] (the test split), not {batch!r}")
    with warnings.catch_warnings():
        # torch 2.13 deprecates the quantized tensors its eager models are made of (sim.run).
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per")
        qmodel = quantize(model, data.calibration_x, engine="qnnpack")
        return {width: _offloaded_gemms(qmodel, (data.test_x[:batch],), width) for width in cols}


def _exported_gemms(path: Path, width: int) -> list[Gemm]:
    from sim.exported_run import load_program, random_inputs

    program = load_program(path)
    return _offloaded_gemms(program.module(), random_inputs(program, path, 0, None), width)


def _offloaded_gemms(qmodel, inputs, width: int) -> list[Gemm]:
    """The GEMMs one forward of `qmodel` on `inputs` runs on a golden accelerator `width` wide,
    every layer on the dense array (the sweep evaluates dense schedules; `host.offload` would
    otherwise put a layer on the sparse engine when that is predicted faster); a GEMM's output
    is int8 (requantized) when it wrote one byte per output."""
    import torch

    from host.device import Device
    from host.offload import OffloadWarning, offload

    with Device("golden", AccelConfig(cols=width)) as device:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffloadWarning)
            offloaded = offload(qmodel, device, engine="dense")
        with torch.no_grad():
            offloaded(*inputs)
        rows = offloaded.report()
    return [
        Gemm(
            row.name.removeprefix("module."),
            row.m,
            row.n,
            row.k,
            row.macs,
            row.bytes_written == row.m * row.n,
        )
        for row in rows
    ]
