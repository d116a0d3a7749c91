"""The events of a program that cost energy, counted from its instructions (no simulation).

`count_events(program, config, estimate)` walks a program of `sim.schedule` once and counts
what each instruction makes the accelerator do, by the units of docs/accelerator.md:

- ``mac_slots``: multiply-accumulates the array issues, R x C per streamed row (the ``macs``
  counter: a padded row of a tile costs as much as a full one);
- ``spad_write_bytes``: bytes LOAD_ACT / LOAD_WGT / LOAD_PARAMS write into the scratchpads and
  the parameter memory (rows x width);
- ``spad_read_bytes``: bytes MATMUL reads from them: weight-stationary, a weight tile (R rows of
  C bytes) and the M activation rows (R bytes each); output-stationary, K rows of R activation
  bytes and K rows of C weight bytes;
- ``acc_write_bytes`` / ``acc_read_bytes``: int32 accumulator traffic: each MATMUL writes its
  output rows (WS: M rows, OS: the R drained rows) of C words, and reads them first when it
  accumulates; each STORE reads the rows it stores;
- ``requant_ops``: outputs the requantizer converts (int8 STOREs, one per value);
- ``dram_read_bytes`` / ``dram_write_bytes``: what the memory port moves (`sim.perf`: whole bus
  words read, strobed bytes written), taken from `estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from hdl.config import AccelConfig, Dataflow
from hdl.isa import PARAM_RECORD_BYTES, Instruction, Op
from sim.perf import PerfEstimate

__all__ = ["Events", "count_events"]


@dataclass(frozen=True)
class Events:
    """Counts of the energy-costing events of a program (module doc)."""

    mac_slots: int = 0
    spad_read_bytes: int = 0
    spad_write_bytes: int = 0
    acc_read_bytes: int = 0
    acc_write_bytes: int = 0
    requant_ops: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0

    def __add__(self, other: Events) -> Events:
        return Events(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def count_events(program: list[Instruction], config: AccelConfig, estimate: PerfEstimate) -> Events:
    """The events of `program` on `config`; DRAM bytes from its `estimate` (module doc)."""
    rows, cols = config.rows, config.cols
    counts = dict.fromkeys(("spad_read", "spad_write", "acc_read", "acc_write", "requant"), 0)
    for instruction in program:
        op = instruction.op
        if op in (Op.LOAD_ACT, Op.LOAD_WGT):
            counts["spad_write"] += instruction.rows * instruction.width
        elif op is Op.LOAD_PARAMS:
            counts["spad_write"] += instruction.lanes * PARAM_RECORD_BYTES
        elif op is Op.MATMUL:
            streamed = instruction.rows  # WS: the M activation rows; OS: the K steps
            if config.dataflow is Dataflow.WS:
                counts["spad_read"] += rows * cols + streamed * rows
                written = streamed
            else:
                counts["spad_read"] += streamed * (rows + cols)
                written = rows
            counts["acc_write"] += 4 * written * cols
            if instruction.accumulate:
                counts["acc_read"] += 4 * written * cols
        elif op is Op.STORE:
            counts["acc_read"] += 4 * instruction.rows * instruction.width
            if instruction.int8:
                counts["requant"] += instruction.rows * instruction.width
    return Events(
        mac_slots=estimate.macs,
        spad_read_bytes=counts["spad_read"],
        spad_write_bytes=counts["spad_write"],
        acc_read_bytes=counts["acc_read"],
        acc_write_bytes=counts["acc_write"],
        requant_ops=counts["requant"],
        dram_read_bytes=estimate.bytes_read,
        dram_write_bytes=estimate.bytes_written,
    )
