"""Plots of sweep results and of one run, written as PNG files (matplotlib, Agg; never shown).

Each function draws on a fresh `matplotlib.figure.Figure` (no pyplot state, no window), saves it
to `path` and returns it, so a caller (or a test) can inspect what was drawn:

- `utilization_plot`: the workload's utilization (its own MACs / (cycles x R x C)) of every
  point against its array shape R x C, shapes ordered by MAC count;
- `roofline_plot`: MACs per DRAM byte against achieved MACs per cycle for every point, under
  each configuration's roofs (compute: R x C MACs per cycle; bandwidth: ``bus_bytes`` x
  intensity), with the layers of the `best` point (least energy x latency) and its roof in red;
- `pareto_plot`: latency against energy, area as colour; the points no other point beats in all
  three (`pareto_front`) ringed and the latency-energy front drawn as a line;
- `layer_utilization_plot`: one run's offloaded layers (``python -m sim.run --plot DIR``).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

__all__ = [
    "best",
    "layer_utilization_plot",
    "pareto_front",
    "pareto_plot",
    "roofline_plot",
    "utilization_plot",
]

#: The objectives `pareto_front` minimizes by default.
OBJECTIVES = ("latency_us", "energy_pj", "area_mm2")


def _require(rows: list[dict]) -> None:
    if not rows:
        raise ValueError("no results to plot")


def _save(figure: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return figure


def pareto_front(rows: list[dict], objectives=OBJECTIVES) -> list[dict]:
    """The rows no other row is at least as good as in every objective and better in one."""

    def dominates(a, b):
        pairs = [(a[o], b[o]) for o in objectives]
        return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    return [r for r in rows if not any(dominates(other, r) for other in rows)]


def best(rows: list[dict]) -> dict:
    """The row of least energy x latency."""
    _require(rows)
    return min(rows, key=lambda r: r["energy_pj"] * r["latency_us"])


def _shape(row: dict) -> str:
    return f"{row['rows']}x{row['cols']}"


def utilization_plot(rows: list[dict], path: str | Path) -> Figure:
    """Utilization of each point against its array shape (module doc)."""
    _require(rows)
    shapes = sorted({(r["rows"] * r["cols"], r["rows"], _shape(r)) for r in rows})
    position = {label: i for i, (_, _, label) in enumerate(shapes)}
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for dataflow, marker in (("ws", "o"), ("os", "s")):
        chosen = [r for r in rows if r["dataflow"] == dataflow]
        if chosen:
            axes.scatter(
                [position[_shape(r)] for r in chosen],
                [100 * r["utilization"] for r in chosen],
                marker=marker,
                alpha=0.6,
                label=dataflow.upper(),
            )
    axes.set_xticks(range(len(shapes)), [label for *_, label in shapes], rotation=45)
    axes.set_xlabel("array R x C")
    axes.set_ylabel("utilization (%)")
    axes.set_title(f"{rows[0]['workload']}: utilization vs array shape")
    axes.legend()
    return _save(figure, path)


def roofline_plot(rows: list[dict], path: str | Path) -> Figure:
    """Achieved MACs per cycle against MACs per DRAM byte, under the roofs (module doc)."""
    _require(rows)
    figure = Figure(figsize=(7, 5))
    axes = figure.add_subplot()
    axes.set_xscale("log")
    axes.set_yscale("log")
    chosen = best(rows)
    layers = [
        (macs / dram, macs / cycles) for _, _, _, _, cycles, macs, dram in chosen["layers"] if dram
    ]
    intensities = [r["macs_per_dram_byte"] for r in rows] + [x for x, _ in layers]
    low, high = min(intensities) / 2, max(intensities) * 2
    roofs = sorted({(r["rows"] * r["cols"], r["bus_bytes"]) for r in rows})
    for peak, bus in [*roofs, (chosen["rows"] * chosen["cols"], chosen["bus_bytes"])]:
        xs = [low, min(max(peak / bus, low), high), high]  # the knee between the roofs
        mine = (peak, bus) == (chosen["rows"] * chosen["cols"], chosen["bus_bytes"])
        axes.plot(xs, [min(peak, bus * x) for x in xs], color="C3" if mine else "0.75", lw=1)
    axes.scatter(
        [r["macs_per_dram_byte"] for r in rows],
        [r["macs_per_cycle"] for r in rows],
        s=12,
        label="sweep points (whole workload)",
    )
    axes.scatter(
        [x for x, _ in layers],
        [y for _, y in layers],
        marker="x",
        color="C3",
        label=f"layers of {_shape(chosen)} {chosen['dataflow'].upper()}, "
        f"{chosen['bus_bytes']} B/cycle",
    )
    axes.set_xlabel("MACs per DRAM byte")
    axes.set_ylabel("achieved MACs per cycle")
    axes.set_title(f"{rows[0]['workload']}: roofline (roofs: R*C and bus_bytes x intensity)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def pareto_plot(rows: list[dict], path: str | Path) -> Figure:
    """Latency against energy, area as colour, the Pareto-optimal points ringed."""
    _require(rows)
    figure = Figure(figsize=(7, 5))
    axes = figure.add_subplot()
    axes.set_xscale("log")
    axes.set_yscale("log")
    dots = axes.scatter(
        [r["latency_us"] for r in rows],
        [r["energy_per_inference_pj"] / 1e6 for r in rows],
        c=[r["area_mm2"] for r in rows],
        cmap="viridis",
        s=18,
    )
    figure.colorbar(dots, ax=axes, label="area (mm^2, 45 nm model)")
    front = pareto_front(rows)
    axes.scatter(
        [r["latency_us"] for r in front],
        [r["energy_per_inference_pj"] / 1e6 for r in front],
        s=80,
        facecolors="none",
        edgecolors="C3",
        label=f"Pareto-optimal in latency, energy, area ({len(front)})",
    )
    two = sorted(pareto_front(rows, ("latency_us", "energy_pj")), key=lambda r: r["latency_us"])
    axes.step(
        [r["latency_us"] for r in two],
        [r["energy_per_inference_pj"] / 1e6 for r in two],
        where="post",
        color="C3",
        linewidth=1,
        label="latency-energy front",
    )
    axes.set_xlabel("latency of one run of the workload (us)")
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"{rows[0]['workload']}: {len(rows)} configurations")
    axes.legend(fontsize="small")
    return _save(figure, path)


def layer_utilization_plot(layers: list[dict], array_macs: int, title: str, path) -> Figure:
    """Bars of each layer's utilization, all MAC slots used and the layer's own MACs, from a
    run's ``layers`` (`sim.model_run.layer_totals`) on an array of `array_macs` MACs."""
    if not layers:
        raise ValueError("the run offloaded no layer: nothing to plot")
    figure = Figure(figsize=(max(5, 0.9 * len(layers) + 2), 4))
    axes = figure.add_subplot()
    names = [layer["name"].removeprefix("module.") for layer in layers]
    slots = [layer["cycles"] * array_macs for layer in layers]
    every = [100 * layer["array_macs"] / s for layer, s in zip(layers, slots, strict=True)]
    useful = [100 * layer["macs"] / s for layer, s in zip(layers, slots, strict=True)]
    positions = range(len(layers))
    axes.bar([p - 0.2 for p in positions], every, width=0.4, label="MAC slots used")
    axes.bar([p + 0.2 for p in positions], useful, width=0.4, label="the layer's own MACs")
    axes.set_xticks(list(positions), names, rotation=30)
    axes.set_ylabel("utilization (%)")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return _save(figure, path)
