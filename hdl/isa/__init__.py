"""The accelerator's instruction set, defined once for the gateware, the models and the host.

- `hdl.isa.layout`: the opcode enum, the three queues, the bit layout of every 128-bit word,
  the error codes and the field widths (the controller's decoder views words through
  `LAYOUTS`);
- `hdl.isa.instruction`: `Instruction` (opcode, fields, token flags), `encode_program` and
  `decode_program`;
- `hdl.isa.check`: `check_program`, every rule of docs/isa.md and the token-protocol replay
  that finds deadlocks, raising `ProgramError` with the code the hardware reports.

Everything is re-exported here. This package imports nothing above `hdl`
(docs/architecture.md). Example::

    from hdl.config import AccelConfig
    from hdl.isa import Instruction, Op, check_program, encode_program

    program = [
        Instruction(Op.LOAD_WGT, dram_addr=0, dram_stride=16, rows=16, spad_row=0, width=16,
                    push_next=True),
        Instruction(Op.MATMUL, act_row=0, wgt_row=0, rows=64, acc_row=0, accumulate=0,
                    pop_prev=True),
    ]
    check_program(program, AccelConfig(16, 16))
    words = encode_program(program)
"""

from hdl.isa.check import (
    Geometry,
    ProgramError,
    Replay,
    check_instruction,
    check_program,
    check_words,
    decode_word,
    dispatch_error,
    replay_dispatch,
    words_as_ints,
)
from hdl.isa.instruction import DEP_FLAGS, Instruction, decode_program, encode_program
from hdl.isa.layout import (
    ACC_ROW_BITS,
    DEPS,
    DRAM_ADDRESS_BITS,
    LAYOUTS,
    MAX_ROWS,
    PARAM_RECORD_BYTES,
    QUEUE_DEPTH,
    QUEUE_OF,
    ROWS_BITS,
    SPAD_ROW_BITS,
    STRIDE_BITS,
    WIDTH_BITS,
    WORD_BITS,
    ErrorCode,
    NzCache,
    Op,
    Queue,
    check_dma_widths,
    dma_command_fields,
    field_table,
    queue_ops,
    scratchpad_rows,
)

__all__ = [
    "ACC_ROW_BITS",
    "DEPS",
    "DEP_FLAGS",
    "DRAM_ADDRESS_BITS",
    "LAYOUTS",
    "MAX_ROWS",
    "PARAM_RECORD_BYTES",
    "QUEUE_DEPTH",
    "QUEUE_OF",
    "ROWS_BITS",
    "SPAD_ROW_BITS",
    "STRIDE_BITS",
    "WIDTH_BITS",
    "WORD_BITS",
    "ErrorCode",
    "Geometry",
    "Instruction",
    "NzCache",
    "Op",
    "ProgramError",
    "Queue",
    "Replay",
    "check_dma_widths",
    "check_instruction",
    "check_program",
    "check_words",
    "decode_program",
    "decode_word",
    "dispatch_error",
    "dma_command_fields",
    "encode_program",
    "field_table",
    "queue_ops",
    "replay_dispatch",
    "scratchpad_rows",
    "words_as_ints",
]
