"""One sweep point: a workload's GEMMs on one configuration, by the cycle model.

`evaluate(config, gemms, energy_table, area_model)` runs on a Dask worker. For each GEMM (a
layer of the workload, int8-requantized or int32 output) it builds the program
`sim.schedule` makes for it (`sim.schedule.gemm_layout`), estimates it with
`sim.perf.program_estimate` and counts its energy events (`sim.sweep.events`); the point's row
sums them: cycles, latency, useful MACs and utilization, DRAM bytes, energy by part
(`sim.sweep.energy`), area (`sim.sweep.area`), and per layer a compact record for the plots.
With ``rtl=True`` it also runs every GEMM on the RTL (`sim.sweep.rtl`) and records its cycles.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from hdl.config import AccelConfig
from sim.perf import program_estimate
from sim.schedule import gemm_layout
from sim.sweep.area import area
from sim.sweep.energy import ENERGY_PARTS, energy_pj
from sim.sweep.events import Events, count_events

__all__ = ["METRICS", "Gemm", "evaluate"]


class Gemm(NamedTuple):
    """One GEMM of a workload: M x K by K x N, the layer's own MACs (a grouped conv's chunk has
    fewer than M*N*K) and whether its output is requantized to int8."""

    name: str
    m: int
    n: int
    k: int
    macs: int
    int8: bool = True


#: The columns `evaluate` fills, after the config's fields.
METRICS = (
    "cycles",
    "latency_us",
    "macs",
    "mac_slots",
    "utilization",
    "macs_per_cycle",
    "dram_bytes",
    "macs_per_dram_byte",
    *(f"energy_{part}_pj" for part in ENERGY_PARTS),
    "energy_pj",
    "inferences",
    "energy_per_inference_pj",
    "logic_um2",
    "memory_bits",
    "area_mm2",
    "rtl_cycles",
    "rtl_error",
    "layers",
)


def evaluate(
    config: dict,
    gemms: list[Gemm],
    energy_table: dict,
    area_model: dict,
    *,
    inferences: int = 1,
    rtl: bool = False,
) -> dict:
    """The metrics of `gemms` (`inferences` inferences: a model's batch) on the accelerator
    `config` (an `AccelConfig.to_dict`): a dict of `METRICS` (``rtl_*`` empty unless `rtl`;
    ``layers``: JSON of [name, M, N, K, cycles, MACs, DRAM bytes] per GEMM)."""
    config = AccelConfig.from_dict(config)
    events, cycles, layers = Events(), 0, []
    for gemm in gemms:
        program = gemm_layout(gemm.m, gemm.n, gemm.k, config, requant=gemm.int8).schedule()
        estimate = program_estimate(program, config)
        counted = count_events(program, config, estimate)
        events += counted
        cycles += estimate.cycles
        dram = counted.dram_read_bytes + counted.dram_write_bytes
        layers.append([gemm.name, gemm.m, gemm.n, gemm.k, estimate.cycles, gemm.macs, dram])
    macs = sum(gemm.macs for gemm in gemms)
    dram = events.dram_read_bytes + events.dram_write_bytes
    energy = energy_pj(events, config, energy_table)
    row = {
        "cycles": cycles,
        "latency_us": cycles / config.clock_mhz,
        "macs": macs,
        "mac_slots": events.mac_slots,
        "utilization": macs / (cycles * config.macs),
        "macs_per_cycle": macs / cycles,
        "dram_bytes": dram,
        "macs_per_dram_byte": macs / dram,
        **{f"energy_{part}_pj": energy[part] for part in ENERGY_PARTS},
        "energy_pj": energy["total"],
        "inferences": inferences,
        "energy_per_inference_pj": energy["total"] / inferences,
        **area(config, area_model),
        "rtl_cycles": "",
        "rtl_error": "",
        "layers": json.dumps(layers, separators=(",", ":")),
    }
    if rtl:
        from sim.sweep.rtl import rtl_cycles

        measured = rtl_cycles(config, gemms)
        row["rtl_cycles"] = sum(measured)
        row["rtl_error"] = (cycles - row["rtl_cycles"]) / row["rtl_cycles"]
    return row
