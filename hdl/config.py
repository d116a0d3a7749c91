"""The single source of hardware parameters: a frozen, validated `AccelConfig`.

Gateware (`hdl`), golden and analytical models (`sim`) and the host driver (`host`) all read this
one object; `python -m hdl.gen` writes it as JSON beside the Verilog so a host can drive a
bitstream it did not build (`AccelConfig.from_json`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any


class Dataflow(enum.StrEnum):
    """How the systolic array keeps its operands.

    ``WS`` (weight-stationary): a K x N weight tile is preloaded into the PEs, activation rows
    stream through and int32 partial sums flow down and out. ``OS`` (output-stationary): both
    operands stream, each PE keeps its accumulator, results drain out at the end of a tile.
    """

    WS = "ws"
    OS = "os"


#: Inclusive bounds of every integer field: (minimum, maximum, must be a power of two).
_INT_FIELDS: dict[str, tuple[int, int, bool]] = {
    "rows": (1, 256, False),
    "cols": (1, 256, False),
    "spad_bytes": (256, 1 << 24, True),
    "acc_rows": (16, 1 << 20, True),
    "bus_bytes": (1, 128, True),
    "mem_latency": (0, 10_000, False),
    "mem_bytes": (256, 1 << 32, False),
    "sparse_lanes": (0, 65536, False),
    "sparse_depth": (2, 1 << 16, True),
    "requant_lanes": (1, 256, False),
    "counter_bits": (16, 48, False),
}


def address_bits(size: int) -> int:
    """Bits of a byte address below `size` (at least 1)."""
    return max(1, (size - 1).bit_length())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one accelerator instance; every instance is validated on construction.

    Parameters
    ----------
    rows, cols:
        Systolic array size R x C (1..256 each).
    dataflow:
        ``"ws"`` or ``"os"`` (see `Dataflow`).
    spad_bytes:
        Capacity of each operand scratchpad (activations, weights) in bytes, a power of two; each is
        split into two banks for double buffering.
    acc_rows:
        Entries of the accumulator memory, each one row of ``cols`` int32 values; a power of two.
    bus_bytes:
        Width of the main-memory data bus in bytes per cycle, a power of two (1..128).
    mem_latency:
        Cycles from a memory read request to its first data beat (0..10000).
    mem_bytes:
        Size of main memory in bytes (256..2**32); an instruction reaching past it is an error
        (docs/isa.md, DRAM_RANGE).
    sparse_lanes:
        Parallel MAC lanes P of the sparse engine, a multiple of ``cols``: each cycle it multiplies
        G = P / C nonzeros, each by C activations (`sparse_groups`). Default (``None``):
        ``rows * cols``, the systolic array's MAC count. 0: no sparse engine (a build for a
        small FPGA); SPMM is then an invalid opcode (BAD_OPCODE) to the hardware and the host
        alike, and sparse products run as dense ones.
    sparse_depth:
        Activation rows (the K extent) one sparse-engine pass holds in each of its two buffer
        banks, a power of two (2..65536); longer K is split into passes by the host.
    requant_lanes:
        Lanes L of the requantizer, a divisor of ``cols``: it takes a row of C accumulators in
        C / L cycles. Default (``None``): the fewest lanes with C / L <= 3, which keep up with
        the store DMA (it needs at least 3 cycles per row, `sim.perf`), so int8 stores lose no
        throughput (C / 2 lanes for an even C).
    counter_bits:
        Width of each performance counter (16..48): the counters count modulo
        ``2 ** counter_bits`` and are reported zero-extended to 48 bits (`hdl.top_ports`). A
        small FPGA saves a flip-flop and an adder bit per counter and bit (the iCEBreaker keeps
        32); a host taking differences of two readings (`host.serial_transport`) stays exact
        while a run adds less than ``2 ** counter_bits`` to every counter.
    clock_mhz:
        Clock used to turn cycles into modeled time (0 < f <= 2000 MHz).

    Raises
    ------
    TypeError
        A field has the wrong type (for example a float or bool where an int is required).
    ValueError
        A field is out of range; the message names the field and the value.
    """

    rows: int = 16
    cols: int = 16
    dataflow: Dataflow = Dataflow.WS
    spad_bytes: int = 1 << 16
    acc_rows: int = 1 << 10
    bus_bytes: int = 16
    mem_latency: int = 64
    mem_bytes: int = 1 << 28
    sparse_lanes: int | None = None
    sparse_depth: int = 512
    requant_lanes: int | None = None
    counter_bits: int = 48
    clock_mhz: float = 100.0

    def __post_init__(self) -> None:
        if self.sparse_lanes is None and _is_int(self.rows) and _is_int(self.cols):
            object.__setattr__(self, "sparse_lanes", self.rows * self.cols)
        if self.requant_lanes is None and _is_int(self.cols) and self.cols >= 1:
            lanes = next(
                n for n in range(1, self.cols + 1) if not self.cols % n and self.cols <= 3 * n
            )
            object.__setattr__(self, "requant_lanes", lanes)
        for name, (low, high, power_of_two) in _INT_FIELDS.items():
            value = getattr(self, name)
            if not _is_int(value):
                raise TypeError(f"AccelConfig.{name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"AccelConfig.{name} must be in [{low}, {high}], not {value!r}")
            if power_of_two and value & (value - 1):
                raise ValueError(f"AccelConfig.{name} must be a power of two, not {value!r}")
        if self.sparse_lanes % self.cols:
            raise ValueError(
                f"AccelConfig.sparse_lanes must be a multiple of cols ({self.cols}), "
                f"not {self.sparse_lanes!r}"
            )
        if self.cols % self.requant_lanes:
            raise ValueError(
                f"AccelConfig.requant_lanes must divide cols ({self.cols}), "
                f"not {self.requant_lanes!r}"
            )
        try:
            object.__setattr__(self, "dataflow", Dataflow(self.dataflow))
        except ValueError:
            choices = ", ".join(repr(d.value) for d in Dataflow)
            raise ValueError(
                f"AccelConfig.dataflow must be one of {choices}, not {self.dataflow!r}"
            ) from None
        clock = self.clock_mhz
        if isinstance(clock, bool) or not isinstance(clock, int | float):
            raise TypeError(f"AccelConfig.clock_mhz must be a number, not {clock!r}")
        if not 0 < clock <= 2000:
            raise ValueError(f"AccelConfig.clock_mhz must be in (0, 2000], not {clock!r}")
        object.__setattr__(self, "clock_mhz", float(clock))

    @property
    def macs(self) -> int:
        """Multiply-accumulate units of the systolic array (R * C)."""
        return self.rows * self.cols

    @property
    def address_bits(self) -> int:
        """Bits of a main-memory byte address below ``mem_bytes`` (the DMAs' address width)."""
        return address_bits(self.mem_bytes)

    @property
    def requant_chunks(self) -> int:
        """Cycles the requantizer takes per row of C accumulators: C / ``requant_lanes``."""
        return self.cols // self.requant_lanes

    @property
    def has_sparse_engine(self) -> bool:
        """Whether the accelerator has a sparse engine (``sparse_lanes`` > 0), so runs SPMM."""
        return self.sparse_lanes > 0

    def require_sparse_engine(self, what: str) -> None:
        """Raise `ValueError` naming `what` when this accelerator has no sparse engine."""
        if not self.has_sparse_engine:
            raise ValueError(
                f"{what} needs the sparse engine, and this AccelConfig has sparse_lanes=0 "
                "(none); run the product as a dense GEMM"
            )

    @property
    def sparse_cache_beats(self) -> int:
        """``nonzeros`` beats the sparse engine's cache holds (SPMM ``nz_cache``, docs/isa.md):
        4 * ``sparse_depth`` with a sparse engine, 0 without one. That holds a K-chunk of W
        with ``sparse_depth`` rows of up to 4G nonzeros each (4 beats a row): at the 16x16
        defaults a 256 x 256 W up to about 75 % zeros (measured: 90 % needs 531 beats, 75 %
        1,144, 50 % 2,166), in 2,048 x 274 bits of block RAM."""
        return 4 * self.sparse_depth if self.has_sparse_engine else 0

    @property
    def sparse_groups(self) -> int:
        """Nonzeros the sparse engine multiplies per cycle: G = sparse_lanes / cols."""
        return self.sparse_lanes // self.cols

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field (the dataflow as its string value)."""
        fields = dataclasses.asdict(self)
        fields["dataflow"] = self.dataflow.value
        return fields

    def to_json(self) -> str:
        """JSON text of `to_dict`, one field per line."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> AccelConfig:
        """Inverse of `to_dict`; an unknown key is a `ValueError` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"AccelConfig has no field {unknown[0]!r}")
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> AccelConfig:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))
