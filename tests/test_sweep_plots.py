"""sim.sweep.plots: the files are written and hold what the rows say; sim.run --plot."""

import json

import pytest

from sim import run as sim_run
from sim.sweep.area import load_model
from sim.sweep.energy import load_table
from sim.sweep.evaluate import evaluate
from sim.sweep.plots import (
    best,
    pareto_front,
    pareto_plot,
    roofline_plot,
    utilization_plot,
)
from sim.sweep.space import grid_points
from sim.sweep.workload import workload_gemms


@pytest.fixture(scope="module")
def rows():
    """The CNN's metrics on 24 configurations, evaluated in this process (no Dask); the larger
    scratchpad changes nothing at batch 1 but area and energy, so half the points are dominated
    and the Pareto front is a proper subset."""
    grid = {
        "rows": [2, 4, 8],
        "cols": [4, 8],
        "dataflow": ["ws", "os"],
        "spad_bytes": [16384, 65536],
    }
    points = grid_points(grid)
    gemms = workload_gemms("cnn", {p.cols for p in points})
    found = []
    for config in points:
        metrics = evaluate(config.to_dict(), gemms[config.cols], load_table(None), load_model(None))
        found.append(
            {
                "workload": "cnn, batch 1",
                **config.to_dict(),
                **metrics,
                "layers": json.loads(metrics["layers"]),
            }
        )
    return found


def _png(path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    return data


def test_utilization_plot_draws_every_point(rows, tmp_path):
    figure = utilization_plot(rows, tmp_path / "u.png")
    _png(tmp_path / "u.png")
    drawn = sum(len(c.get_offsets()) for c in figure.axes[0].collections)
    assert drawn == len(rows)
    assert len(figure.axes[0].get_xticklabels()) == 6  # 2x4 ... 8x8


def test_roofline_plot_draws_points_layers_and_roofs(rows, tmp_path):
    figure = roofline_plot(rows, tmp_path / "r.png")
    _png(tmp_path / "r.png")
    points, layers = figure.axes[0].collections
    assert len(points.get_offsets()) == len(rows)
    assert len(layers.get_offsets()) == 3  # the CNN's layers on the best point
    roofs = {(r["rows"] * r["cols"], r["bus_bytes"]) for r in rows}
    assert len(figure.axes[0].lines) == len(roofs) + 1  # and the best point's own, in red
    # no point above its compute roof
    assert all(r["macs_per_cycle"] <= r["rows"] * r["cols"] for r in rows)


def test_pareto_plot_rings_the_front(rows, tmp_path):
    figure = pareto_plot(rows, tmp_path / "p.png")
    _png(tmp_path / "p.png")
    front = pareto_front(rows)
    assert 1 <= len(front) < len(rows)
    everything, ringed = figure.axes[0].collections
    assert (len(everything.get_offsets()), len(ringed.get_offsets())) == (len(rows), len(front))
    assert best(rows) in rows
    for kept in front:  # nothing beats a front point in all three
        assert not any(
            o["latency_us"] < kept["latency_us"]
            and o["energy_pj"] < kept["energy_pj"]
            and o["area_mm2"] < kept["area_mm2"]
            for o in rows
        )


def test_plots_refuse_no_rows(tmp_path):
    with pytest.raises(ValueError, match=r"^no results to plot$"):
        pareto_plot([], tmp_path / "p.png")


def test_sim_run_plots_the_layers_of_a_model_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "--workload",
        "cnn",
        "--backend",
        "golden",
        "--rows",
        "4",
        "--cols",
        "4",
        "--images",
        "4",
        "--no-baselines",
        "--plot",
        str(tmp_path / "plots"),
    ]
    assert sim_run.main(argv) == 0
    _png(tmp_path / "plots" / "layer_utilization.png")


def test_sim_run_plot_needs_a_model(capsys):
    with pytest.raises(SystemExit):
        sim_run.main(["--workload", "gemm", "--plot", "x"])
    assert "--plot draws a model's layers; the gemm workload has none" in capsys.readouterr().err
