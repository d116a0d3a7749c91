"""Energy per run from counted events (`sim.sweep.events`) times a per-event table.

The table is data: `DEFAULT_TABLE` below, or a JSON file of the same keys (`load_table`; the
``--energy-table`` option of ``python -m sim.sweep``), so a user can substitute figures for
another process. The default figures are 45 nm, 0.9 V, from:

- M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, Figure
  1.1.9 (energy table): 8-bit integer multiply 0.2 pJ, 8-bit add 0.03 pJ, 32-bit add 0.1 pJ,
  32-bit multiply 3.1 pJ; a 64-bit read of an SRAM of 8 KB: 10 pJ, 32 KB: 20 pJ, 1 MB: 100 pJ;
- S. Han, J. Pool, J. Tran, W. Dally, "Learning both Weights and Connections for Efficient
  Neural Networks", NeurIPS 2015, Table 1 (from Horowitz's 45 nm figures): a 32-bit DRAM
  access 640 pJ.

How each event is charged (docs/sweep.md has the table):

- a MAC slot: an 8-bit multiply plus a 32-bit add (int32 accumulation);
- a scratchpad or accumulator byte read or written: 1/8 of a 64-bit read of an SRAM of that
  memory's size (a scratchpad bank: ``spad_bytes / 2``; the accumulator: ``acc_rows x cols x 4``
  bytes), interpolated log-log between the table's sizes (beyond them, the nearest segment's
  slope); a write costs what a read does (Horowitz lists reads only);
- a requantized output: a 32-bit multiply (the 24 x 24-bit mantissa product) and a 32-bit add;
- a DRAM byte: 1/4 of a 32-bit access.

Not counted: registers and wires inside the array, control, clock tree, leakage.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from hdl.config import AccelConfig
from sim.sweep.events import Events

__all__ = ["DEFAULT_TABLE", "ENERGY_PARTS", "energy_pj", "load_table", "sram_byte_pj"]

#: The default per-event energies (pJ) and their sources (module doc).
DEFAULT_TABLE: dict = {
    "name": "Horowitz ISSCC 2014 (45 nm, 0.9 V); DRAM from Han et al. NeurIPS 2015",
    "int8_mult_pj": 0.2,
    "int32_add_pj": 0.1,
    "int32_mult_pj": 3.1,
    "sram_64bit_read_pj": [[8192, 10.0], [32768, 20.0], [1048576, 100.0]],
    "dram_32bit_pj": 640.0,
}

_NUMBERS = ("int8_mult_pj", "int32_add_pj", "int32_mult_pj", "dram_32bit_pj")

#: The parts of `energy_pj`'s breakdown, in order.
ENERGY_PARTS = ("mac", "spad", "acc", "requant", "dram")


def load_table(path: str | Path | None) -> dict:
    """`DEFAULT_TABLE` for None, else the JSON table at `path`, checked.

    Raises
    ------
    ValueError
        The file is missing or not JSON, lacks a key, or holds a negative or non-numeric
        energy or an SRAM list that is not two or more increasing (bytes, pJ) pairs.
    """
    if path is None:
        table = DEFAULT_TABLE
    else:
        try:
            table = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"energy table {str(path)!r}: {error}") from None
    where = "the energy table" if path is None else f"energy table {str(path)!r}"
    for key in _NUMBERS:
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: {key} must be a number >= 0, not {value!r}")
    sram = table.get("sram_64bit_read_pj")
    if (
        not isinstance(sram, list)
        or len(sram) < 2
        or not all(isinstance(p, list) and len(p) == 2 and min(p) > 0 for p in sram)
        or any(a[0] >= b[0] for a, b in itertools.pairwise(sram))
    ):
        raise ValueError(
            f"{where}: sram_64bit_read_pj must be two or more [bytes, pJ] pairs, sizes "
            f"increasing, all > 0, not {sram!r}"
        )
    return table


def sram_byte_pj(table: dict, size_bytes: int) -> float:
    """Energy of reading one byte of an SRAM of `size_bytes` (log-log interpolation)."""
    points = table["sram_64bit_read_pj"]
    x = math.log(size_bytes)
    index = 1
    while index < len(points) - 1 and x > math.log(points[index][0]):
        index += 1
    (s0, e0), (s1, e1) = points[index - 1], points[index]
    slope = (math.log(e1) - math.log(e0)) / (math.log(s1) - math.log(s0))
    return math.exp(math.log(e0) + slope * (x - math.log(s0))) / 8


def energy_pj(events: Events, config: AccelConfig, table: dict) -> dict[str, float]:
    """Energy of `events` on `config`, in pJ, by part (`ENERGY_PARTS`) and ``total``."""
    spad = sram_byte_pj(table, config.spad_bytes // 2)
    acc = sram_byte_pj(table, config.acc_rows * config.cols * 4)
    parts = {
        "mac": events.mac_slots * (table["int8_mult_pj"] + table["int32_add_pj"]),
        "spad": (events.spad_read_bytes + events.spad_write_bytes) * spad,
        "acc": (events.acc_read_bytes + events.acc_write_bytes) * acc,
        "requant": events.requant_ops * (table["int32_mult_pj"] + table["int32_add_pj"]),
        "dram": (events.dram_read_bytes + events.dram_write_bytes) * table["dram_32bit_pj"] / 4,
    }
    return {**parts, "total": sum(parts.values())}
