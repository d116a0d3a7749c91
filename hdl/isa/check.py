"""Check a program against every rule of docs/isa.md before it runs.

`check_program` applies each rule against an `AccelConfig` and a memory size, and replays the
token protocol of the three queues to find programs that would deadlock, raising `ProgramError`
with the index and the `ErrorCode` the hardware would report (the gateware's dispatcher checks
the same rules in the same order).
"""

from __future__ import annotations

from dataclasses import dataclass

from hdl.config import AccelConfig, Dataflow
from hdl.isa.instruction import Instruction
from hdl.isa.layout import PARAM_RECORD_BYTES, ErrorCode, Op, Queue, scratchpad_rows
from hdl.sparse import nonzero_beat_bytes


class ProgramError(ValueError):
    """A program breaks a rule of docs/isa.md.

    Attributes
    ----------
    index: the offending instruction's position in the program.
    code: the `hdl.isa.ErrorCode` the accelerator reports for it.
    """

    def __init__(self, index: int, code: ErrorCode, message: str):
        super().__init__(f"instruction {index}: {message}")
        self.index = index
        self.code = code


@dataclass(frozen=True)
class Geometry:
    """Sizes the checker needs, from an `AccelConfig`: rows and row widths of each memory."""

    act_row_bytes: int
    act_rows: int
    wgt_row_bytes: int
    wgt_rows: int
    acc_rows: int
    cols: int
    rows: int
    dataflow: Dataflow
    sparse_depth: int

    @classmethod
    def of(cls, config: AccelConfig) -> Geometry:
        """Activation rows are R bytes (a K-slice of an A row), weight rows C bytes."""
        act_rows, wgt_rows = scratchpad_rows(config)
        return cls(
            act_row_bytes=config.rows,
            act_rows=act_rows,
            wgt_row_bytes=config.cols,
            wgt_rows=wgt_rows,
            acc_rows=config.acc_rows,
            cols=config.cols,
            rows=config.rows,
            dataflow=config.dataflow,
            sparse_depth=config.sparse_depth,
        )


def check_program(
    program: list[Instruction], config: AccelConfig, memory_bytes: int | None = None
) -> None:
    """Raise `ProgramError` for the first instruction that breaks a rule of docs/isa.md.

    Checks every field against the configuration's memories and `memory_bytes` of main memory
    (default ``config.mem_bytes``),
    the token flags against the queues that exist, and replays the token protocol (each queue in
    order, an instruction starting once its pops are available, FENCE waiting for all earlier
    instructions) to find a pop that can never be satisfied.
    """
    geometry = Geometry.of(config)
    if memory_bytes is None:
        memory_bytes = config.mem_bytes
    for index, instruction in enumerate(program):
        if not isinstance(instruction, Instruction):
            raise TypeError(f"program[{index}] is not an Instruction: {instruction!r}")
        _check_fields(index, instruction, geometry, config, memory_bytes)
        _check_deps(index, instruction)
    _check_tokens(program)


def _fail(index: int, code: ErrorCode, message: str):
    raise ProgramError(index, code, message)


def _check_range(index, code, what, start, count, limit):
    if start + count > limit:
        _fail(index, code, f"{what} [{start}, {start + count}) is past the end ({limit})")


def _check_dram(index, what, address, rows, stride, row_bytes, memory_bytes):
    end = address + (rows - 1) * stride + row_bytes
    if end > memory_bytes:
        _fail(
            index,
            ErrorCode.DRAM_RANGE,
            f"{what} bytes up to {end} are past the end of memory ({memory_bytes})",
        )


def _check_fields(index, ins: Instruction, g: Geometry, config, memory_bytes) -> None:
    f = ins.fields
    if ins.op is Op.SPMM and not config.has_sparse_engine:
        _fail(index, ErrorCode.BAD_OPCODE, "SPMM: this accelerator has no sparse engine")
    for name in ("rows", "width", "lanes", "k", "nz_beats"):
        if name in f and f[name] == 0:
            _fail(index, ErrorCode.BAD_FIELD, f"{ins.op.name}.{name} is 0")
    if ins.op in (Op.LOAD_ACT, Op.LOAD_WGT):
        act = ins.op is Op.LOAD_ACT
        row_bytes, rows = (g.act_row_bytes, g.act_rows) if act else (g.wgt_row_bytes, g.wgt_rows)
        name = "activation" if act else "weight"
        if f["width"] > row_bytes:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"width {f['width']} > {name} row {row_bytes}")
        _check_range(index, ErrorCode.SPAD_RANGE, f"{name} rows", f["spad_row"], f["rows"], rows)
        _check_dram(
            index, "load", f["dram_addr"], f["rows"], f["dram_stride"], f["width"], memory_bytes
        )
    elif ins.op is Op.LOAD_PARAMS:
        if f["lanes"] > g.cols:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"lanes {f['lanes']} > cols {g.cols}")
        size = f["lanes"] * PARAM_RECORD_BYTES
        _check_dram(index, "parameter", f["dram_addr"], 1, 0, size, memory_bytes)
    elif ins.op is Op.MATMUL:
        ws = g.dataflow is Dataflow.WS
        weight_rows = g.rows if ws else f["rows"]  # WS: one R-row tile; OS: K rows of B
        out_rows = f["rows"] if ws else g.rows  # WS: M rows; OS: R rows of the tile
        _check_range(
            index, ErrorCode.SPAD_RANGE, "activation rows", f["act_row"], f["rows"], g.act_rows
        )
        _check_range(
            index, ErrorCode.SPAD_RANGE, "weight rows", f["wgt_row"], weight_rows, g.wgt_rows
        )
        _check_range(
            index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], out_rows, g.acc_rows
        )
    elif ins.op is Op.SPMM:
        if f["k"] > g.sparse_depth:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"k {f['k']} > sparse_depth {g.sparse_depth}")
        _check_range(index, ErrorCode.SPAD_RANGE, "weight rows", f["x_row"], f["k"], g.wgt_rows)
        _check_range(index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], 1, g.acc_rows)
        size = f["nz_beats"] * nonzero_beat_bytes(config)
        _check_dram(index, "nonzeros", f["nz_addr"], 1, 0, size, memory_bytes)
    elif ins.op is Op.STORE:
        if f["width"] > g.cols:
            _fail(index, ErrorCode.TILE_TOO_LARGE, f"width {f['width']} > cols {g.cols}")
        _check_range(
            index, ErrorCode.ACC_RANGE, "accumulator rows", f["acc_row"], f["rows"], g.acc_rows
        )
        row_bytes = f["width"] * (1 if f["int8"] else 4)
        _check_dram(
            index, "store", f["dram_addr"], f["rows"], f["dram_stride"], row_bytes, memory_bytes
        )


def _check_deps(index: int, ins: Instruction) -> None:
    queue = ins.queue
    on = [flag for flag, value in ins.deps.items() if value]
    if queue is None and on:
        _fail(index, ErrorCode.BAD_DEPS, f"FENCE cannot carry token flags ({', '.join(on)})")
    for flag in on:
        toward_prev = flag.endswith("prev")
        if (toward_prev and queue is Queue.LOAD) or (not toward_prev and queue is Queue.STORE):
            side = "previous" if toward_prev else "next"
            _fail(index, ErrorCode.BAD_DEPS, f"{ins.op.name} has no {side} queue for {flag}")


def _check_tokens(program: list[Instruction]) -> None:
    """Replay the three queues with instant instructions; a stall with work left deadlocks."""
    queues: dict[Queue, list[int]] = {queue: [] for queue in Queue}
    tokens: dict[tuple[Queue, Queue], int] = {}  # (from, to) -> tokens available
    dispatched = 0
    done: set[int] = set()  # always a subset of range(dispatched)
    while True:
        # Dispatch in program order; a FENCE waits until everything before it is done.
        while dispatched < len(program):
            queue = program[dispatched].queue
            if queue is None:
                if len(done) < dispatched:
                    break
                done.add(dispatched)
            else:
                queues[queue].append(dispatched)
            dispatched += 1
        progressed = False
        for queue, waiting in queues.items():
            while waiting:
                ins = program[waiting[0]]
                needs = _token_edges(queue, ins, "pop")
                if any(tokens.get(edge, 0) < 1 for edge in needs):
                    break
                for edge in needs:
                    tokens[edge] -= 1
                for edge in _token_edges(queue, ins, "push"):
                    tokens[edge] = tokens.get(edge, 0) + 1
                done.add(waiting.pop(0))
                progressed = True
        if dispatched == len(program) and not any(queues.values()):
            return
        if not progressed:
            stuck = min(waiting[0] for waiting in queues.values() if waiting)
            _fail(stuck, ErrorCode.DEADLOCK, "waits for a token that no instruction will push")


def _token_edges(queue: Queue, ins: Instruction, kind: str) -> list[tuple[Queue, Queue]]:
    """(from, to) token channels an instruction pops (kind="pop") or pushes ("push")."""
    edges = []
    for side in ("prev", "next"):
        if not ins.deps[f"{kind}_{side}"]:
            continue
        other = Queue(queue + (-1 if side == "prev" else 1))
        edges.append((other, queue) if kind == "pop" else (queue, other))
    return edges
