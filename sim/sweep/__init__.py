"""Design-space exploration: a workload over a grid or a sample of `AccelConfig`s, on Dask.

``sim.sweep.run(space, workload, out)`` (and ``python -m sim.sweep``, `sim.sweep.__main__`):

1. the points: every combination of `space`'s field values (`sim.sweep.space.grid_points`), or
   ``random`` of them drawn with ``seed``; each is validated as an `AccelConfig` first;
   ``base`` gives the fields that stay fixed (a dict);
2. the workload's GEMMs, derived once (per distinct array width) from the quantized model
   (`sim.sweep.workload`): a reference model, a user's ``.pt2`` program or a GEMM list;
3. each point not already in the results file is one Dask task (`sim.sweep.evaluate`): cycles
   by the cycle model `sim.perf`, energy from counted events (`sim.sweep.energy`), area from the
   calibrated model (`sim.sweep.area`); ``rtl_sample`` points (the smallest arrays) also run on
   the RTL (`sim.sweep.rtl`) to show the cycle model's error;
4. rows stream into the CSV file ``out`` as tasks finish (`sim.sweep.results`), with a progress
   bar; a rerun skips the points already there, so a killed sweep resumes where it stopped.

Tasks run on an embedded `distributed.LocalCluster` (default) or on the scheduler at
``scheduler`` (`sim.sweep.cluster`); with nothing left to compute, no cluster is contacted.
Board reports (``fpga_reports``: ``report.json`` files of ``python -m hdl.gen --board``) add
their LUT / FF / DSP / BRAM use and Fmax to the points of the same configuration. docs/sweep.md
has a worked example.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from hdl.config import AccelConfig

__all__ = ["FPGA_COLUMNS", "columns", "read_results", "run"]

#: Columns filled from a board report of the point's configuration (else empty).
FPGA_COLUMNS = ("fpga_board", "fpga_lut", "fpga_ff", "fpga_dsp", "fpga_bram", "fpga_fmax_mhz")


def columns() -> list[str]:
    """The header of a results file."""
    from sim.sweep.evaluate import METRICS
    from sim.sweep.space import FIELDS

    return ["key", "workload", *FIELDS, *METRICS, *FPGA_COLUMNS]


def run(
    space: Mapping[str, Sequence],
    workload,
    out: str | Path,
    *,
    random: int | None = None,
    seed: int = 0,
    batch: int | None = None,
    base: Mapping | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    timeout: float = 10.0,
    rtl_sample: int = 0,
    energy_table: str | Path | None = None,
    area_model: str | Path | None = None,
    fpga_reports: Sequence[str | Path] = (),
    progress: bool = True,
) -> list[dict]:
    """Sweep `workload` over `space` into the CSV file `out` (module doc); the rows of this
    sweep's points, in point order, as `read_results` types them.

    Raises
    ------
    ValueError, TypeError
        An empty space, an unknown field, a value `AccelConfig` refuses (the message names the
        point), a bad workload, batch, table, model or board report, a results file of another
        sweep's columns.
    ConnectionError
        `scheduler` does not answer within `timeout` seconds.
    RuntimeError
        A point failed on a worker (the message names it).
    """
    from sim.sweep.area import load_model
    from sim.sweep.energy import load_table
    from sim.sweep.results import ResultsFile
    from sim.sweep.space import grid_points, point_key, random_points
    from sim.sweep.workload import workload_gemms, workload_name

    if random is None:
        points = grid_points(space, base)
    else:
        points = random_points(space, random, seed=seed, base=base)
    if isinstance(rtl_sample, bool) or not isinstance(rtl_sample, int) or rtl_sample < 0:
        raise ValueError(f"rtl_sample must be an int >= 0, not {rtl_sample!r}")
    name = workload_name(workload, batch)
    table, model = load_table(energy_table), load_model(area_model)
    boards = _board_reports(fpga_reports)
    keys = [point_key(config, name) for config in points]
    by_size = sorted(zip(points, keys, strict=True), key=lambda p: (p[0].macs, p[1]))
    rtl = set(by_size[:rtl_sample])  # the smallest arrays: the quickest Verilator builds
    store = ResultsFile(out, columns())
    todo = [(c, k) for c, k in zip(points, keys, strict=True) if not store.done(k)]
    if todo:
        from rich.progress import Progress

        gemms = workload_gemms(workload, {config.cols for config, _ in todo}, batch)
        jobs = [(config, key, gemms[config.cols], (config, key) in rtl) for config, key in todo]
        inferences = 1 if batch is None else batch  # a model's batch; 1 for GEMMs and programs
        cluster = {"scheduler": scheduler, "workers": workers, "timeout": timeout}
        with Progress(disable=not progress) as bar:
            task = bar.add_task(
                f"sweep: {name}", total=len(points), completed=len(points) - len(todo)
            )
            for config, key, metrics in _finished(jobs, table, model, inferences, cluster):
                empty = dict.fromkeys(FPGA_COLUMNS, "")
                fpga = boards.get(_board_key(config.to_dict()), empty)
                store.append({"key": key, "workload": name, **config.to_dict(), **metrics, **fpga})
                bar.advance(task)
    typed = {row["key"]: row for row in read_results(out)}
    return [typed[key] for key in keys]


def _finished(jobs, table: dict, model: dict, inferences: int, cluster: dict):
    """Evaluate each (config, key, GEMMs, RTL too) job of `jobs` (`inferences` inferences each)
    as a task on the Dask client `cluster` names (`sim.sweep.cluster.dask_client`'s
    arguments); yield (config, key, metrics) as each finishes. A failed task cancels the rest
    and raises `RuntimeError` naming it."""
    from distributed import as_completed

    from sim.sweep.cluster import dask_client
    from sim.sweep.evaluate import evaluate

    with dask_client(**cluster) as client:
        futures = {
            client.submit(
                evaluate,
                config.to_dict(),
                gemms,
                table,
                model,
                inferences=inferences,
                rtl=rtl,
                key=f"sweep-point-{key}",
                pure=False,
            ): (config, key)
            for config, key, gemms, rtl in jobs
        }
        for future in as_completed(futures):
            config, key = futures[future]
            try:
                metrics = future.result()
            except Exception as error:
                client.cancel(list(futures))
                raise RuntimeError(f"sweep point {config}: {error}") from error
            yield config, key, metrics


def _board_key(config: dict) -> str:
    return json.dumps({k: v for k, v in config.items() if k != "clock_mhz"}, sort_keys=True)


def _board_reports(paths) -> dict[str, dict]:
    """The FPGA columns of each board report, by its configuration (its clock aside)."""
    from hdl.fpga import BoardReport

    found = {}
    for path in paths:
        try:
            report = BoardReport.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"board report {str(path)!r}: {type(error).__name__}: {error}"
            ) from None
        use = {r.kind: r.used for r in report.resources}
        found[_board_key(AccelConfig.from_dict(report.config).to_dict())] = {
            "fpga_board": report.board,
            "fpga_lut": use.get("LUT", ""),
            "fpga_ff": use.get("FF", ""),
            "fpga_dsp": use.get("DSP", ""),
            "fpga_bram": use.get("BRAM", ""),
            "fpga_fmax_mhz": min(report.fmax_mhz.values(), default=""),
        }
    return found


def _typed(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_results(path: str | Path) -> list[dict]:
    """The rows of a results file, numbers as int / float, ``layers`` as a list, empty cells
    as None; a half-written last line is skipped."""
    text = Path(path).read_text()
    text = text[: text.rfind("\n") + 1]
    rows = []
    for row in csv.DictReader(text.splitlines()):
        typed = {k: (None if v == "" else _typed(v)) for k, v in row.items()}
        typed["layers"] = json.loads(row["layers"]) if row.get("layers") else []
        typed.update({k: row[k] for k in ("key", "workload") if k in row})  # names, not numbers
        rows.append(typed)
    return rows
