"""The accelerator's instruction set: the opcode enum and the bit layout of every 128-bit word.

Defined once here and used by both sides: the controller's decoder views an instruction word
through `LAYOUTS` (``data.View(LAYOUTS[op], word)``) and the encoder (`hdl.isa.instruction`)
packs fields at the offsets these layouts give. docs/isa.md describes the semantics; its field table
is `field_table()` (a test keeps the two equal).

Every word starts with the same header: the 4-bit `Op` in bits [0, 4) and four dependency-token
flags in [4, 8) (`DEPS`, VTA's scheme: each instruction may wait for a token from the queue
before or after it and may signal one to either when it finishes). Fields are unsigned; the
unused high bits of a word must be zero.
"""

from amaranth.lib import data, enum

#: Bits in one instruction word.
WORD_BITS = 128


class Op(enum.Enum, shape=4):
    """Opcodes. Values not listed are malformed instructions (error status, see docs/isa.md)."""

    FENCE = 0  # wait until every queue is idle
    LOAD_ACT = 1  # DRAM -> activation scratchpad rows (load queue)
    LOAD_WGT = 2  # DRAM -> weight scratchpad rows (load queue)
    LOAD_PARAMS = 3  # DRAM -> requantizer lane parameters (load queue)
    MATMUL = 4  # scratchpads -> systolic array -> accumulator rows (compute queue)
    SPMM = 5  # DRAM nonzeros + weight-scratchpad X block -> sparse engine -> accumulator rows
    STORE = 6  # accumulator rows -> (requantizer ->) DRAM (store queue)


class NzCache(enum.IntEnum):
    """Where an SPMM's ``nonzeros`` beats come from (its ``nz_cache`` field; 3 is malformed).

    ``STREAM``: from main memory at ``nz_addr``. ``FILL``: from main memory, and each beat is
    also written to the sparse engine's cache (beat i at entry i). ``REPLAY``: from the cache,
    entries 0 .. ``nz_beats`` - 1 as the latest FILL left them (zeros after power-on); no
    memory is read, so later column blocks of X reuse one fetch of W's nonzeros.
    """

    STREAM = 0
    FILL = 1
    REPLAY = 2


class Queue(enum.IntEnum):
    """The three instruction queues; loads, compute and stores run concurrently."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2


#: The queue each opcode runs in (FENCE runs in none: it holds the dispatcher).
QUEUE_OF: dict[Op, Queue | None] = {
    Op.FENCE: None,
    Op.LOAD_ACT: Queue.LOAD,
    Op.LOAD_WGT: Queue.LOAD,
    Op.LOAD_PARAMS: Queue.LOAD,
    Op.MATMUL: Queue.COMPUTE,
    Op.SPMM: Queue.COMPUTE,
    Op.STORE: Queue.STORE,
}


def queue_ops(config, queue: Queue) -> list[Op]:
    """The opcodes `config`'s accelerator runs in `queue` (SPMM only with a sparse engine)."""
    return [
        op
        for op, q in QUEUE_OF.items()
        if q is queue and (op is not Op.SPMM or config.has_sparse_engine)
    ]


#: Dependency-token flags. "prev"/"next" are the neighbouring queues in LOAD -> COMPUTE -> STORE
#: order: before starting, ``pop_prev``/``pop_next`` wait for (and consume) a token the
#: previous/next queue pushed; when done, ``push_prev``/``push_next`` give it one.
DEPS = data.StructLayout({"pop_prev": 1, "pop_next": 1, "push_prev": 1, "push_next": 1})

_HEADER = {"op": Op, "deps": DEPS}

#: Instruction words each of the three queues holds (the dispatcher stalls while the target
#: queue is full; `hdl.isa.check_program` replays dispatch with this bound to find deadlocks).
QUEUE_DEPTH = 8

#: Field widths shared by several instructions.
DRAM_ADDRESS_BITS = 32  # byte address in main memory
STRIDE_BITS = 24  # bytes between consecutive rows in main memory
ROWS_BITS = 16  # rows moved or streamed by one instruction (1..65535)
MAX_ROWS = (1 << ROWS_BITS) - 1  # the largest ``rows`` of one instruction
SPAD_ROW_BITS = 24  # row index in a scratchpad (spad_bytes <= 2**24)
ACC_ROW_BITS = 20  # row index in the accumulator memory (acc_rows <= 2**20)
WIDTH_BITS = 9  # valid bytes/values per row (1..256)


def check_dma_widths(address_bits: int, max_rows: int) -> None:
    """`ValueError` unless a DMA's `address_bits` is in [1, 32] and `max_rows` in [1, 65535]."""
    if not 1 <= address_bits <= DRAM_ADDRESS_BITS:
        raise ValueError(f"address_bits must be in [1, {DRAM_ADDRESS_BITS}], not {address_bits!r}")
    if not 1 <= max_rows <= MAX_ROWS:
        raise ValueError(f"max_rows must be in [1, {MAX_ROWS}], not {max_rows!r}")


def dma_command_fields(address_bits: int, max_rows: int) -> dict:
    """A DMA command's address, stride and row-count fields, as narrow as the checks allow:
    every row a checked LOAD or STORE touches starts below ``mem_bytes`` < 2 ** `address_bits`,
    so a stride that is used (more than one row) fits too, and ``rows`` <= `max_rows`."""
    return {
        "dram_addr": address_bits,
        "dram_stride": min(STRIDE_BITS, address_bits),
        "rows": range(max_rows + 1),
    }


_LOAD = data.StructLayout(
    {
        **_HEADER,
        "dram_addr": DRAM_ADDRESS_BITS,
        "dram_stride": STRIDE_BITS,
        "rows": ROWS_BITS,
        "spad_row": SPAD_ROW_BITS,
        "width": WIDTH_BITS,
    }
)

#: The layout of each opcode's word.
LAYOUTS: dict[Op, data.StructLayout] = {
    Op.FENCE: data.StructLayout(_HEADER),
    Op.LOAD_ACT: _LOAD,
    Op.LOAD_WGT: _LOAD,
    Op.LOAD_PARAMS: data.StructLayout(
        {**_HEADER, "dram_addr": DRAM_ADDRESS_BITS, "lanes": WIDTH_BITS}
    ),
    Op.MATMUL: data.StructLayout(
        {
            **_HEADER,
            "act_row": SPAD_ROW_BITS,
            "wgt_row": SPAD_ROW_BITS,
            "rows": ROWS_BITS,
            "acc_row": ACC_ROW_BITS,
            "accumulate": 1,
        }
    ),
    Op.SPMM: data.StructLayout(
        {
            **_HEADER,
            "nz_addr": DRAM_ADDRESS_BITS,
            "nz_beats": 20,
            "x_row": SPAD_ROW_BITS,
            "k": ROWS_BITS,
            "acc_row": ACC_ROW_BITS,
            "accumulate": 1,
            "nz_cache": 2,
        }
    ),
    Op.STORE: data.StructLayout(
        {
            **_HEADER,
            "acc_row": ACC_ROW_BITS,
            "rows": ROWS_BITS,
            "dram_addr": DRAM_ADDRESS_BITS,
            "dram_stride": STRIDE_BITS,
            "int8": 1,
            "width": WIDTH_BITS,
        }
    ),
}


class ErrorCode(enum.Enum, shape=4):
    """Error status of a stopped program (docs/isa.md); the status also holds the index of the
    offending instruction. The program checker (`hdl.isa.check_program`) reports the same codes."""

    NONE = 0
    BAD_OPCODE = 1  # an opcode value with no instruction
    BAD_FIELD = 2  # a zero count or width, or nonzero bits above the opcode's layout
    SPAD_RANGE = 3  # scratchpad rows past the end of a scratchpad
    ACC_RANGE = 4  # accumulator rows past acc_rows
    DRAM_RANGE = 5  # main-memory bytes past the end of memory
    TILE_TOO_LARGE = 6  # a width above the row width, lanes above C, K above sparse_depth
    BAD_DEPS = 7  # a token flag toward a queue that does not exist, or on FENCE
    DEADLOCK = 8  # a token pop that no instruction can ever satisfy
    SPARSE_FORMAT = 9  # the sparse engine flagged its input (index past K)


#: Bytes of one requantizer lane's parameter record in main memory (LOAD_PARAMS): bias int32 at
#: 0, m24 (3 bytes) at 4, shift at 7, zero point (int8) at 8, ReLU flag at 9, zero padding.
PARAM_RECORD_BYTES = 16


def scratchpad_rows(config) -> tuple[int, int]:
    """(activation rows of R bytes, weight rows of C bytes) of `config`'s two scratchpads."""
    return config.spad_bytes // config.rows, config.spad_bytes // config.cols


def field_table() -> str:
    """The Markdown table of every opcode's fields and bit ranges (as in docs/isa.md)."""
    lines = ["| opcode | value | field | bits |", "|---|---|---|---|"]
    for op, layout in LAYOUTS.items():
        for name, field in layout:
            if name in _HEADER:
                continue
            bits = f"[{field.offset}, {field.offset + field.width})"
            lines.append(f"| {op.name} | {op.value} | `{name}` | {bits} |")
    return "\n".join(lines) + "\n"
