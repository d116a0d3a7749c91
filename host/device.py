"""The accelerator as the host sees it: main memory, a command stream and counters.

`Device(backend, config)` is the host driver's one handle on an accelerator. It talks to the
hardware only through a `Transport` (DESIGN.md §7 item 7: write and read main memory, push a
program and wait for it, read the counters), so the same driver runs on

- ``"golden"`` (`GoldenTransport`): the functional ISA model `sim.isa_model.IsaModel` holds the
  memory and executes programs; cycles come from the analytical model `sim.perf`;
- ``"verilator"`` (`VerilatorTransport`): `hdl.top.Accelerator` in the native Verilator harness
  (`sim.drivers.accel_native`), cycle by cycle, memory latency ``config.mem_latency`` and
  ``config.bus_bytes`` bytes per cycle;

and later on a board, through a transport that moves the same bytes over a bus.

On top of the transport the device allocates main memory (first fit in 16-byte granules,
`sim.alloc.RowPool`: freed regions are reused) and runs quantized layers: `Device.linear`
multiplies an int8 activation matrix already in device memory by a layer's weights (uploaded
once per layer) and requantizes the result to int8 in the accelerator's requantizer
(`sim.schedule.gemm_schedule`), so consecutive layers hand their activations over in device
memory. Each run is recorded in `Device.runs` (`LayerRun`: shape, cycles, counters).

Example::

    device = Device("golden", AccelConfig(rows=8, cols=8))
    x = device.upload(np.ones((4, 64), np.int8))          # a DeviceBuffer
    y = device.linear(x, layer, name="fc1")               # layer: sim.golden.layers.QuantLayer
    device.download(y)                                    # int8 [4, layer.out_features]
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.isa import ErrorCode, Instruction, ProgramError, encode_program
from sim.alloc import RowPool
from sim.golden.checks import require_array
from sim.golden.layers import QuantLayer
from sim.golden.param_records import pack_param_records
from sim.isa_model import IsaModel
from sim.perf import program_estimate
from sim.schedule import gemm_schedule
from sim.spmm_schedule import PackedSparseWeight, pack_sparse_weight, spmm_layout, spmm_schedule

__all__ = [
    "BACKENDS",
    "Device",
    "DeviceBuffer",
    "DeviceError",
    "GoldenTransport",
    "LayerRun",
    "ProgramRun",
    "Transport",
    "VerilatorTransport",
]

#: Bytes of one allocation granule of main memory (regions start at multiples of it).
GRANULE = 16


class DeviceError(RuntimeError):
    """The accelerator stopped a program with an error status (`hdl.isa.ErrorCode`)."""

    def __init__(self, code: ErrorCode, index: int, message: str):
        super().__init__(message)
        self.code = code
        self.index = index


@dataclass(frozen=True)
class ProgramRun:
    """What a transport reports for one program: cycles (and how they were obtained) and the
    hardware counters (`hdl.top_ports.COUNTERS`; the golden transport has those `sim.perf`
    predicts)."""

    cycles: int
    counters: dict[str, int]
    cycle_model: str


class Transport(abc.ABC):
    """Main memory and the command stream of one accelerator of `config`."""

    config: AccelConfig

    @property
    @abc.abstractmethod
    def memory_bytes(self) -> int:
        """Size of main memory in bytes."""

    @abc.abstractmethod
    def write(self, address: int, data: np.ndarray) -> None:
        """Copy the bytes of `data` (uint8) to main memory at `address`."""

    @abc.abstractmethod
    def read(self, address: int, count: int) -> np.ndarray:
        """`count` bytes of main memory from `address`, as a uint8 copy."""

    @abc.abstractmethod
    def execute(self, program: list[Instruction]) -> ProgramRun:
        """Push `program` on the command stream and wait until the accelerator is idle.

        Raises `DeviceError` when the accelerator stops with an error status."""

    def close(self) -> None:  # noqa: B027 - optional: most transports hold nothing to release
        """Release what the transport holds (a simulation model)."""


class _ArrayMemory:
    """Range-checked byte access to a numpy memory image (for the simulated transports)."""

    def _memory(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def memory_bytes(self) -> int:
        return self._memory().size

    def write(self, address: int, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        self._check(address, data.size)
        self._memory()[address : address + data.size] = data

    def read(self, address: int, count: int) -> np.ndarray:
        self._check(address, count)
        return self._memory()[address : address + count].copy()

    def _check(self, address: int, count: int) -> None:
        if not 0 <= address <= address + count <= self.memory_bytes:
            raise ValueError(
                f"bytes [{address}, {address + count}) are outside main memory "
                f"[0, {self.memory_bytes})"
            )


class GoldenTransport(_ArrayMemory, Transport):
    """The functional ISA model as the accelerator; cycles from `sim.perf`."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self._model = IsaModel(config, config.mem_bytes)

    def _memory(self) -> np.ndarray:
        return self._model.memory

    def execute(self, program: list[Instruction]) -> ProgramRun:
        try:
            self._model.run(program, check_races=False)
        except ProgramError as error:
            raise DeviceError(error.code, error.index, str(error)) from None
        estimate = program_estimate(program, self.config)
        return ProgramRun(estimate.cycles, estimate.counters(), "perf")


class VerilatorTransport(_ArrayMemory, Transport):
    """`hdl.top.Accelerator` in the native Verilator harness (built on first use, cached)."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self._memory_image = np.zeros(config.mem_bytes, np.uint8)
        self._simulator = None

    def _memory(self) -> np.ndarray:
        return self._memory_image

    def execute(self, program: list[Instruction]) -> ProgramRun:
        from sim.drivers.accel_native import NativeAccelerator

        if self._simulator is None:
            self._simulator = NativeAccelerator(self.config)
        run = self._simulator.run(self._memory_image, encode_program(program))
        if run.error is not ErrorCode.NONE:
            raise DeviceError(
                run.error,
                run.error_index,
                f"the accelerator stopped with {run.error.name} at instruction "
                f"{run.error_index} of {len(program)}",
            )
        return ProgramRun(run.cycles, dict(run.counters), "rtl")

    def close(self) -> None:
        if self._simulator is not None:
            self._simulator.close()
            self._simulator = None


#: Transports by backend name.
BACKENDS = {"golden": GoldenTransport, "verilator": VerilatorTransport}


@dataclass(frozen=True)
class DeviceBuffer:
    """A region of device memory holding a row-major int8 matrix."""

    address: int
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class LayerRun:
    """One layer's run on the device: its GEMM shape (M x K by K x N), cycles, counters."""

    name: str
    m: int
    n: int
    k: int
    cycles: int
    cycle_model: str
    counters: dict[str, int] = field(default_factory=dict)


@dataclass
class _SparseWeights:
    """A sparse weight's packed nonzeros (`sim.spmm_schedule.pack_sparse_weight`), resident in
    device memory at `addresses`, and the array they were made from (`owner`)."""

    packed: PackedSparseWeight
    addresses: list[int]
    owner: object


@dataclass
class _Weights:
    """A layer's weights (K x N) and parameter records (None for an int32-output GEMM),
    resident in device memory, and the object they were made from (`owner`)."""

    weights: int
    params: int | None
    owner: object


class Device:
    """An accelerator behind a transport (module docstring).

    Parameters
    ----------
    backend : str
        ``"golden"`` or ``"verilator"`` (`BACKENDS`); ignored when `transport` is given.
    config : AccelConfig
        The hardware (default ``AccelConfig()``: 16x16, 16 bytes/cycle, 64-cycle latency).
    transport : Transport, optional
        Use this transport instead of making one for `backend` (a board, a test double).

    Raises
    ------
    TypeError, ValueError
        An unknown backend (the message lists the known ones), a config that is not an
        AccelConfig, a transport that is not a Transport.
    """

    def __init__(
        self,
        backend: str = "golden",
        config: AccelConfig | None = None,
        *,
        transport: Transport | None = None,
    ):
        config = AccelConfig() if config is None else config
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        if transport is None:
            if backend not in BACKENDS:
                choices = ", ".join(repr(name) for name in BACKENDS)
                raise ValueError(f"unknown backend {backend!r}; available: {choices}")
            transport = BACKENDS[backend](config)
        elif not isinstance(transport, Transport):
            raise TypeError(f"transport must be a host.device.Transport, not {transport!r}")
        self.backend = backend
        self.config = config
        self.transport = transport
        self.runs: list[LayerRun] = []
        #: Bytes written into device memory from the host (activations, weights, parameter
        #: records) and read back from it, since the device was made.
        self.bytes_to_device = 0
        self.bytes_from_device = 0
        self._pool = RowPool(transport.memory_bytes // GRANULE, name="main memory")
        self._weights: dict[int, _Weights] = {}
        self._sparse: dict[int, _SparseWeights] = {}

    # Memory -------------------------------------------------------------------------------
    def allocate(self, nbytes: int) -> int:
        """Address of a fresh region of at least `nbytes` bytes (`free` gives it back)."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
            raise ValueError(f"nbytes must be a positive int, not {nbytes!r}")
        return self._pool.allocate(-(-nbytes // GRANULE)) * GRANULE

    def free(self, address: int) -> None:
        """Give back the region `allocate` returned at `address`."""
        self._pool.free(address // GRANULE)

    def upload(self, matrix: np.ndarray) -> DeviceBuffer:
        """Copy an int8 matrix into a new region of device memory."""
        matrix = require_array("matrix", matrix, np.int8, 2)
        buffer = DeviceBuffer(self.allocate(max(1, matrix.size)), matrix.shape)
        self.transport.write(buffer.address, np.ascontiguousarray(matrix))
        self.bytes_to_device += matrix.size
        return buffer

    def download(self, buffer: DeviceBuffer) -> np.ndarray:
        """The int8 matrix in `buffer`."""
        data = self.transport.read(buffer.address, buffer.nbytes)
        self.bytes_from_device += buffer.nbytes
        return data.view(np.int8).reshape(buffer.shape)

    def release(self, buffer: DeviceBuffer) -> None:
        """Free `buffer`'s memory."""
        self.free(buffer.address)

    # Layers -------------------------------------------------------------------------------
    def linear(self, x: DeviceBuffer, layer: QuantLayer, *, name: str = "linear") -> DeviceBuffer:
        """int8 ``x`` [M, K] (in device memory) through a quantized layer -> int8 [M, N] in
        device memory: requantize(x @ W.T + bias32), all on the accelerator.

        The layer's weights and parameter records are uploaded on its first use and stay.
        Output-stationary configurations need A transposed in memory, so ``x`` is transposed
        through the host first (weight-stationary ones use it in place).

        Raises
        ------
        TypeError, ValueError
            ``x`` is not a DeviceBuffer, or its K differs from the layer's; K beyond the int32
            accumulation limit (`sim.schedule.gemm_schedule`).
        DeviceError
            The accelerator stopped with an error.
        """
        if not isinstance(x, DeviceBuffer):
            raise TypeError(f"x must be a DeviceBuffer, not {x!r}")
        if not isinstance(layer, QuantLayer):
            raise TypeError(f"layer must be a sim.golden.layers.QuantLayer, not {layer!r}")
        (m, k), n = x.shape, layer.out_features
        if k != layer.in_features:
            raise ValueError(
                f"{name}: the input has {k} features, the layer expects {layer.in_features}"
            )
        resident = self._resident(layer)
        return DeviceBuffer(self._gemm(name, x, resident, n), (m, n))

    def matmul_int32(
        self, x: DeviceBuffer, weight: np.ndarray, *, name: str = "matmul"
    ) -> np.ndarray:
        """int8 ``x`` [M, K] (in device memory) times int8 ``weight`` [N, K] transposed: the
        int32 [M, N] accumulators ``x @ weight.T``, brought back to the host (no bias, no
        requantization: a dynamic-quantized layer's float epilogue runs on the host).

        The weight is uploaded on its first use (per array object) and stays. Raises as
        `linear`.
        """
        if not isinstance(x, DeviceBuffer):
            raise TypeError(f"x must be a DeviceBuffer, not {x!r}")
        weight = require_array("weight", weight, np.int8, 2)
        (m, k), n = x.shape, weight.shape[0]
        if k != weight.shape[1]:
            raise ValueError(f"{name}: the input has {k} features, the weight {weight.shape[1]}")
        resident = self._resident_weight(weight)
        address = self._gemm(name, x, resident, n)
        try:
            data = self.transport.read(address, 4 * m * n)
        finally:
            self.free(address)
        self.bytes_from_device += 4 * m * n
        return data.view(np.dtype("<i4")).reshape(m, n).astype(np.int32)

    def spmm_int32(
        self,
        xt: DeviceBuffer,
        weight: np.ndarray,
        *,
        name: str = "spmm",
        columns: int | None = None,
    ) -> np.ndarray:
        """int8 ``weight`` [N, K] times int8 ``xt`` [K, M] (in device memory) on the sparse
        engine, which multiplies only the weight's nonzeros: the int32 [N, M] accumulators
        ``weight @ xt``, brought back to the host (`sim.spmm_schedule.spmm_schedule`). With
        `columns`, only xt's first `columns` columns are the operand (the rest pad its rows to
        whole bus words): the result has those columns and the run records that M.

        The weight's nonzeros are packed into the engine's beats and uploaded on its first use
        (per array object) and stay.

        Raises
        ------
        TypeError, ValueError
            ``xt`` is not a DeviceBuffer, its K differs from the weight's, K > 65536, or the
            configuration has no sparse engine.
        DeviceError
            The accelerator stopped with an error.
        """
        if not isinstance(xt, DeviceBuffer):
            raise TypeError(f"xt must be a DeviceBuffer, not {xt!r}")
        weight = require_array("weight", weight, np.int8, 2)
        (k, m), n = xt.shape, weight.shape[0]
        if k != weight.shape[1]:
            raise ValueError(
                f"{name}: the input has {k} rows, the weight {weight.shape[1]} columns"
            )
        used = m if columns is None else columns
        if isinstance(used, bool) or not isinstance(used, int) or not 1 <= used <= m:
            raise ValueError(f"{name}: columns must be an int in [1, {m}], not {columns!r}")
        resident = self._resident_sparse(weight)
        out = self.allocate(4 * n * m)
        try:
            layout = spmm_layout(resident.packed, m, xt.address, out, resident.addresses)
            self._run(name, (used, n, k), spmm_schedule(layout))
            data = self.transport.read(out, 4 * n * m)
        finally:
            self.free(out)
        self.bytes_from_device += 4 * n * m
        return data.view(np.dtype("<i4")).reshape(n, m)[:, :used].astype(np.int32)

    def _gemm(self, name: str, x: DeviceBuffer, resident: _Weights, n: int) -> int:
        """Run ``x @ weights`` into a new region (int8 requantized with the resident parameter
        records, else int32) and return its address."""
        m, k = x.shape
        source = x
        if self.config.dataflow is Dataflow.OS:
            source = self.upload(np.ascontiguousarray(self.download(x).T))
        out = self.allocate(m * n * (1 if resident.params is not None else 4))
        try:
            program = gemm_schedule(
                source.address,
                resident.weights,
                out,
                m,
                n,
                k,
                self.config,
                requant=resident.params,
            )
            self._run(name, (m, n, k), program)
        except Exception:
            self.free(out)
            raise
        finally:
            if source is not x:
                self.release(source)
        return out

    def _resident(self, layer: QuantLayer) -> _Weights:
        """The layer's weights (B = W.T, K x N) and parameter records in device memory."""
        key = id(layer)
        if key not in self._weights or self._weights[key].owner is not layer:
            weights = self.upload(np.ascontiguousarray(layer.weight.T))
            records = pack_param_records(layer.bias32, layer.requant)
            params = self.allocate(records.size)
            self.transport.write(params, records)
            self.bytes_to_device += records.size
            self._weights[key] = _Weights(weights.address, params, layer)
        return self._weights[key]

    def _resident_weight(self, weight: np.ndarray) -> _Weights:
        """An int8 weight [N, K] as B = weight.T (K x N) in device memory, no records."""
        key = id(weight)
        if key not in self._weights or self._weights[key].owner is not weight:
            uploaded = self.upload(np.ascontiguousarray(weight.T))
            self._weights[key] = _Weights(uploaded.address, None, weight)
        return self._weights[key]

    def drop_sparse(self, weight: np.ndarray) -> None:
        """Free the packed nonzeros `spmm_int32` keeps for `weight` (nothing if none)."""
        entry = self._sparse.pop(id(weight), None)
        if entry is not None:
            for address in entry.addresses:
                self.free(address)

    def _resident_sparse(self, weight: np.ndarray) -> _SparseWeights:
        """An int8 weight [N, K]'s packed nonzeros in device memory."""
        key = id(weight)
        entry = self._sparse.get(key)
        if entry is None or entry.owner is not weight:
            packed = pack_sparse_weight(weight, self.config)
            entry = _SparseWeights(packed, [], weight)
            self._sparse[key] = entry
            try:
                for piece in packed.pieces:
                    entry.addresses.append(self.allocate(max(1, piece.size)))
                    self.transport.write(entry.addresses[-1], piece)
                    self.bytes_to_device += piece.size
            except BaseException:
                self.drop_sparse(weight)  # never keep a partly uploaded weight
                raise
        return entry

    def _run(self, name: str, shape: tuple[int, int, int], program: list[Instruction]) -> None:
        run = self.transport.execute(program)
        m, n, k = shape
        self.runs.append(LayerRun(name, m, n, k, run.cycles, run.cycle_model, run.counters))

    def close(self) -> None:
        """Release the transport."""
        self.transport.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
