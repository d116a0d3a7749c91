"""Quantized layers run on a `host.device.Device`, and the report of one forward.

`LayerRunner` is what `host.offload` (torch.ao eager / FX models) and `host.pt2e` (torch.export
models) share: a Linear on an int8 matrix already in device memory, a Conv1d/Conv2d (any groups)
by im2col on the host, an int32-output GEMM for a dynamic-quantized Linear (`host.dynamic`),
each GEMM recorded with the layer's own MACs, and the MACs the model left on the CPU. After a
forward, `report()` gives one `LayerReport` per GEMM and `summary()` the model's
`OffloadSummary`.

A grouped conv (depthwise included) runs as one GEMM per chunk of groups whose output channels
fill the array's columns, with a block-diagonal weight (`sim.golden.grouped_conv`); each chunk
is one report row.

Each int8-output GEMM (a Linear, a conv or a chunk of one) runs on the engine
`host.engine_choice.choose_engine` picks from the predicted cycles, or the one the ``engine``
argument forces (one for every layer, or per layer name): the systolic array with the
requantizer, or the sparse engine (`host.device.Device.spmm_int32`: W @ X^T on the layer's
packed nonzeros, the int32 accumulators requantized on the host by the requantizer's own
integer procedure, `sim.isa_model.requantize_lanes`, so the int8 result is the same either way).
Each report row names its engine and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import numpy as np

from hdl.isa import PARAM_RECORD_BYTES
from host.device import Device, DeviceBuffer
from host.engine_choice import EngineChoice, choose_engine, padded_columns, require_engine
from sim.alloc import PoolExhaustedError
from sim.golden.conv import col2im_output
from sim.golden.grouped_conv import GroupChunk, group_chunks, groups_per_chunk
from sim.golden.layers import QuantLayer, conv_patches
from sim.golden.param_records import pack_param_records
from sim.isa_model import decode_param_records, requantize_lanes

__all__ = ["LayerReport", "LayerRunner", "OffloadSummary", "OffloadWarning"]

T = TypeVar("T")


class OffloadWarning(UserWarning):
    """An operation of an offloaded model runs on the CPU, not on the accelerator."""


@dataclass(frozen=True)
class LayerReport:
    """One offloaded layer in the last forward: the GEMM M x K by K x N it became, and the
    layer's own MACs in it (`macs`: M x N x K but for a chunk of groups, whose block-diagonal
    zeros are not the layer's work). `engine` ran it (``"dense"``: the systolic array;
    ``"sparse"``: the sparse engine) for `engine_reason`; `engine_macs` are the MACs the engine
    did (M x N x K dense; M x the weight's nonzeros sparse), `utilization` those per cycle over
    the array's MACs."""

    name: str
    kind: str
    m: int
    n: int
    k: int
    macs: int
    cycles: int
    cycle_model: str
    utilization: float
    bytes_read: int
    bytes_written: int
    modeled_us: float
    engine: str = "dense"
    engine_reason: str = ""
    engine_macs: int = 0


@dataclass(frozen=True)
class OffloadSummary:
    """A whole forward of an offloaded model (`OffloadedModel.summary`).

    Attributes
    ----------
    accelerator_macs, cpu_macs : int
        The layers' MACs run by the accelerator and by torch on the CPU.
    cpu_macs_by_operation : dict[str, int]
        The CPU's MACs by operation (as the offload warning names them), those with any.
    accelerator_cycles : int
        Sum of the offloaded layers' cycles.
    bytes_to_device, bytes_from_device : int
        Bytes the host wrote into device memory (inputs, im2col patches, and on a layer's first
        use its weights and parameter records) and read back.
    """

    accelerator_macs: int
    cpu_macs: int
    cpu_macs_by_operation: dict[str, int]
    accelerator_cycles: int
    bytes_to_device: int
    bytes_from_device: int

    @property
    def accelerator_share(self) -> float:
        """Fraction of the model's MACs on the accelerator (1.0 for a model without any)."""
        total = self.accelerator_macs + self.cpu_macs
        return self.accelerator_macs / total if total else 1.0


class LayerRunner:
    """Runs int8 layers on `device` and keeps what the current forward ran (module doc)."""

    def __init__(self, device: Device, engine: str | Mapping[str, str] = "auto"):
        if not isinstance(device, Device):
            raise TypeError(f"device must be a host.device.Device, not {type(device)!r}")
        self.device = device
        self.engine = _engine_policy(engine)
        # name, kind, the layer's own MACs, the engine choice (None: an int32 GEMM, dense)
        self._runs: list[tuple[str, str, int, EngineChoice | None]] = []
        self._choices: dict[tuple[str, int, int], tuple[np.ndarray, EngineChoice]] = {}
        self._lanes: dict[int, tuple[QuantLayer, np.ndarray]] = {}
        self._cpu_macs: dict[str, int] = {}
        self._first_run = 0
        self._bytes_at_start = (0, 0)
        self._group_chunks: dict[int, tuple[QuantLayer, list[GroupChunk]]] = {}

    def start(self) -> None:
        """Begin a forward: the report and summary cover what runs from now on."""
        self._runs, self._cpu_macs = [], {}
        self._first_run = len(self.device.runs)
        self._bytes_at_start = (self.device.bytes_to_device, self.device.bytes_from_device)

    def count_cpu(self, operation: str, macs: int) -> None:
        """Record `macs` MACs that `operation` ran on the CPU."""
        if macs:
            self._cpu_macs[operation] = self._cpu_macs.get(operation, 0) + macs

    def linear(self, name: str, x: DeviceBuffer, layer: QuantLayer) -> DeviceBuffer:
        """int8 `x` [M, K] in device memory through `layer`: int8 [M, N] in device memory (on
        the sparse engine: brought to the host and back, module docstring)."""
        (m, k), n = x.shape, layer.out_features
        if k != layer.in_features:
            raise ValueError(
                f"{name}: the input has {k} features, the layer expects {layer.in_features}"
            )
        rows, choice = self._on_sparse_engine(name, layer, m, lambda: self.device.download(x))
        out = self.device.linear(x, layer, name=name) if rows is None else self.device.upload(rows)
        self._runs.append((name, "linear", m * n * k, choice))
        return out

    def conv(
        self,
        name: str,
        x: np.ndarray,
        layer: QuantLayer,
        kind: str,
        macs_per_channel: int | None = None,
        *,
        int32: bool = False,
    ) -> np.ndarray:
        """int8 NCHW `x` through the conv `layer` (im2col here, GEMMs and requantization on the
        device): int8 NCHW. `kind` ("conv2d", "conv1d", ...) names the report rows;
        `macs_per_channel` replaces the GEMM's M x K as the layer's own MACs per output channel
        (a transposed conv's, whose zero-inserted input adds MACs of its own). With `int32`,
        the GEMMs' int32 accumulators come back instead (NCHW, the patches as they are: the
        caller folds in the input zero point, which pads them)."""
        chunks = self._chunks(layer)
        outputs = []
        for index, chunk in enumerate(chunks):
            part = x if len(chunks) == 1 else x[:, chunk.in_channels.start : chunk.in_channels.stop]
            try:
                patches, out_hw = conv_patches(np.ascontiguousarray(part), chunk.layer)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
            row_kind = kind
            if len(chunks) > 1:
                row_kind = f"{kind} chunk {index + 1}/{len(chunks)} of {layer.conv.groups} groups"
            per_channel = patches.shape[0] * layer.in_features
            if macs_per_channel is not None:
                per_channel = macs_per_channel
            macs = per_channel * len(chunk.out_channels)
            if int32:
                out = self.matmul_int32(name, patches, chunk.layer.weight, row_kind, macs)
            else:
                out = self.host_gemm(name, row_kind, patches, chunk.layer, macs)
            outputs.append(out)
        rows = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
        return col2im_output(rows, x.shape[0], out_hw)

    def conv1d(self, name: str, x: np.ndarray, layer: QuantLayer, *, int32=False) -> np.ndarray:
        """int8 NCL `x` through a Conv1d `layer` (a Conv2d of height 1): int8 NCL (`conv`'s
        `int32`: the accumulators)."""
        if x.ndim != 3:
            shape = list(x.shape)
            raise ValueError(f"{name}: a Conv1d takes [batch, channels, length], not {shape}")
        return self.conv(name, x[:, :, None, :], layer, "conv1d", int32=int32)[:, :, 0, :]

    def matmul_int32(
        self,
        name: str,
        rows: np.ndarray,
        weight: np.ndarray,
        kind: str = "dynamic linear",
        macs: int | None = None,
    ) -> np.ndarray:
        """int8 `rows` [M, K] from the host times the int8 `weight` [N, K] transposed on the
        device: the int32 [M, N] accumulators back on the host (a dynamic-quantized Linear's
        GEMM, `host.dynamic`; a PT2E layer with a float output, `host.pt2e`); `macs` as in
        `host_gemm`."""
        if macs is None:
            macs = rows.shape[0] * weight.shape[0] * rows.shape[1]
        out = self._from_host(rows, lambda x: self.device.matmul_int32(x, weight, name=name))
        self._runs.append((name, kind, macs, None))
        return out

    def report(self) -> list[LayerReport]:
        """The GEMMs since `start`, in order."""
        config = self.device.config
        runs = self.device.runs[self._first_run :]
        reports = []
        for (name, kind, macs, choice), run in zip(self._runs, runs, strict=True):
            engine, reason, done = "dense", "int32 output (the dense array)", run.m * run.n * run.k
            if choice is not None:
                engine, reason = choice.engine, choice.reason
                if engine == "sparse":
                    done = run.m * choice.nonzeros
            reports.append(
                LayerReport(
                    name=name,
                    kind=kind,
                    m=run.m,
                    n=run.n,
                    k=run.k,
                    macs=macs,
                    cycles=run.cycles,
                    cycle_model=run.cycle_model,
                    utilization=done / (run.cycles * config.macs),
                    bytes_read=run.counters.get("bytes_read", 0),
                    bytes_written=run.counters.get("bytes_written", 0),
                    modeled_us=run.cycles / config.clock_mhz,
                    engine=engine,
                    engine_reason=reason,
                    engine_macs=done,
                )
            )
        return reports

    def summary(self) -> OffloadSummary:
        """MACs on each side, cycles and host<->device bytes since `start`."""
        layers = self.report()
        to_device, from_device = self._bytes_at_start
        return OffloadSummary(
            accelerator_macs=sum(layer.macs for layer in layers),
            cpu_macs=sum(self._cpu_macs.values()),
            cpu_macs_by_operation=dict(sorted(self._cpu_macs.items())),
            accelerator_cycles=sum(layer.cycles for layer in layers),
            bytes_to_device=self.device.bytes_to_device - to_device,
            bytes_from_device=self.device.bytes_from_device - from_device,
        )

    def _chunks(self, layer: QuantLayer) -> list[GroupChunk]:
        """`layer` as ungrouped convs: itself, or its chunks of groups (made once per layer)."""
        if layer.conv.groups == 1:
            channels = range(layer.conv.in_channels)
            return [GroupChunk(channels, range(layer.out_features), layer)]
        key = id(layer)
        if key not in self._group_chunks or self._group_chunks[key][0] is not layer:
            per_chunk = groups_per_chunk(layer, self.device.config.cols)
            self._group_chunks[key] = (layer, group_chunks(layer, per_chunk))
        return self._group_chunks[key][1]

    def host_gemm(
        self, name: str, kind: str, rows: np.ndarray, layer: QuantLayer, macs: int | None = None
    ) -> np.ndarray:
        """int8 `rows` [M, K] from the host through `layer` on the device, its int8 [M, N] back
        to the host; `macs` of the GEMM are the layer's own (default M x N x K)."""
        if macs is None:
            macs = rows.shape[0] * layer.out_features * layer.in_features
        out, choice = self._on_sparse_engine(name, layer, rows.shape[0], lambda: rows)
        if out is None:
            buffer = self._from_host(rows, lambda x: self.device.linear(x, layer, name=name))
            out = self.device.download(buffer)
            self.device.release(buffer)
        self._runs.append((name, kind, macs, choice))
        return out

    def _on_sparse_engine(
        self, name: str, layer: QuantLayer, m: int, rows: Callable[[], np.ndarray]
    ) -> tuple[np.ndarray | None, EngineChoice]:
        """The engine choice for `m` rows through `layer` (made once per layer and M) and, when
        it is the sparse engine, the int8 [M, N] result computed there from `rows()` (the int8
        [M, K] input); None for the dense array, whose run is the caller's. A sparse layer whose
        operands do not fit in the device memory left turns dense for good (its packed
        nonzeros freed)."""
        key = (name, id(layer.weight), m)
        cached = self._choices.get(key)
        if cached is None or cached[0] is not layer.weight:
            requested = self.engine.get(name, self.engine.get("*", "auto"))
            choice = choose_engine(layer.weight, m, self.device.config, requested)
            self._choices[key] = cached = (layer.weight, choice)
        choice = cached[1]
        if choice.engine == "dense":
            return None, choice
        try:
            return self._sparse_rows(name, rows(), layer), choice
        except PoolExhaustedError as error:
            self.device.drop_sparse(layer.weight)
            fallback = f"operands did not fit in device memory ({error})"
            choice = replace(choice, engine="dense", fallback=fallback)
            self._choices[key] = (layer.weight, choice)
            return None, choice

    def _sparse_rows(self, name: str, rows: np.ndarray, layer: QuantLayer) -> np.ndarray:
        """int8 `rows` [M, K] through `layer` on the sparse engine: int8 [M, N] on the host,
        the accumulators requantized as the device's requantizer does (`PoolExhaustedError`
        when its operands do not fit in device memory)."""
        # X^T's rows start on bus words (its columns padded with zeros to whole words), so the
        # X loads move one word per C-byte row instead of two.
        m = rows.shape[0]
        xt = np.zeros((rows.shape[1], padded_columns(m, self.device.config)), np.int8)
        xt[:, :m] = rows.T
        run = partial(self.device.spmm_int32, weight=layer.weight, name=name, columns=m)
        acc = self._from_host(xt, run)
        key = id(layer)
        if key not in self._lanes or self._lanes[key][0] is not layer:
            records = pack_param_records(layer.bias32, layer.requant)
            lanes = decode_param_records(records.reshape(-1, PARAM_RECORD_BYTES))
            self._lanes[key] = (layer, lanes)
        return requantize_lanes(acc.T, self._lanes[key][1])

    def _from_host(self, rows: np.ndarray, run: Callable[[DeviceBuffer], T]) -> T:
        """`run` on `rows` uploaded into a device buffer, which is released after."""
        buffer = self.device.upload(np.ascontiguousarray(rows))
        try:
            return run(buffer)
        finally:
            self.device.release(buffer)


def _engine_policy(engine: str | Mapping[str, str]) -> dict[str, str]:
    """`engine` as {layer name: engine}, ``"*"`` for every other layer (ValueError naming a bad
    value)."""
    if isinstance(engine, str):
        return {"*": require_engine("every layer", engine)}
    if not isinstance(engine, Mapping):
        raise TypeError(f"engine must be a str or a mapping of layer names, not {engine!r}")
    return {str(name): require_engine(repr(name), value) for name, value in engine.items()}
