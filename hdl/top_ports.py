"""The accelerator top's ports: what a host, a simulation harness or an FPGA shell connects to.

`accelerator_signature(config)` is the contract between `hdl.top` (the accelerator) and the
things that drive it (the native Verilator harness, cocotb, an FPGA shell):

``cmd``
    The command stream: one 128-bit instruction word per beat (docs/isa.md), least significant
    bit first. Taken in order; back-pressure while the dispatcher waits (full queue, FENCE).
``cmd_last``
    High with a program's final word on ``cmd`` (read as the word is taken). Once a program's
    final word is in, the accelerator knows no later word can push a token: a program whose
    instructions wait for tokens then ends with DEADLOCK instead of waiting for more words. A
    driver that cannot mark the end (the board's bridge) holds it low; a deadlock behind a
    FENCE or a full queue is found either way.
``mem``
    The main-memory port (`hdl.memport.memory_port_signature`, the accelerator is the master).
``idle``
    High when every accepted instruction has finished and no memory traffic is outstanding.
``error`` / ``error_index``
    `hdl.isa.ErrorCode` and the index (0-based, counted over accepted ``cmd`` beats) of the first
    bad instruction (DEADLOCK: the dispatcher's position, docs/isa.md); once ``error`` is
    nonzero the accelerator accepts no more commands, lets the running instructions finish and
    then reports ``idle``.
``counters``
    `COUNTERS`, each `COUNTER_BITS` wide, counting from reset (`counter_layout`) modulo
    ``2 ** config.counter_bits`` (48 by default; the bits above are 0).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from hdl.config import AccelConfig
from hdl.isa import WORD_BITS, ErrorCode
from hdl.memport import memory_port_signature

#: Width of every performance counter on the ``counters`` port (and in the bridge's answer);
#: `hdl.config.AccelConfig.counter_bits` of them count, the rest are 0.
COUNTER_BITS = 48

#: The performance counters, in `counter_layout` order.
COUNTERS: dict[str, str] = {
    "cycles": "cycles since reset",
    "load_busy": "cycles the load queue had an instruction running",
    "compute_busy": "cycles the compute queue had an instruction running",
    "store_busy": "cycles the store queue had an instruction running",
    "macs": "multiply-accumulates issued (array and sparse engine, useful ones only)",
    "bytes_read": "bytes of main memory read",
    "bytes_written": "bytes of main memory written",
    "memory_stall": "cycles a DMA waited on the memory port (request or data not ready)",
    "dependency_stall": "cycles a queue's head waited for a dependency token or FENCE",
    "backpressure_stall": "cycles an engine's output could not move (scratchpad/accumulator/DMA)",
    "instructions": "instructions accepted on cmd",
}


def counter_layout() -> data.StructLayout:
    """The ``counters`` output: one `COUNTER_BITS` field per entry of `COUNTERS`."""
    return data.StructLayout({name: unsigned(COUNTER_BITS) for name in COUNTERS})


def accelerator_signature(config: AccelConfig) -> wiring.Signature:
    """The top's ports, seen from the accelerator (`wiring.Signature.flip` for a driver)."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    return wiring.Signature(
        {
            "cmd": wiring.In(stream.Signature(unsigned(WORD_BITS))),
            "cmd_last": wiring.In(1),
            "mem": Out(memory_port_signature(config.bus_bytes)),
            "idle": Out(1),
            "error": Out(ErrorCode),
            "error_index": Out(32),
            "counters": Out(counter_layout()),
        }
    )
