"""The Dask client a sweep runs on: an embedded local cluster, or an existing scheduler.

`dask_client(None)` starts a `distributed.LocalCluster` (one single-threaded worker process per
core: the cycle model is pure Python, so threads would share one GIL) and closes it with the
client. `dask_client("tcp://HOST:PORT")` connects to a scheduler started with ``dask scheduler``
and ``dask worker`` (its workers must import this checkout's ``sim`` package); an address that
does not answer within `timeout` seconds is a `ConnectionError` naming it.
"""

from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(scheduler: str | None, *, workers: int | None = None, timeout: float = 10.0):
    """A `distributed.Client` for `scheduler` (module doc), closed on exit.

    Raises
    ------
    ValueError
        `scheduler` is not a ``tcp://HOST:PORT`` address, or `workers` is below 1.
    ConnectionError
        No scheduler answers at `scheduler` within `timeout` seconds.
    """
    from distributed import Client, LocalCluster

    if scheduler is None:
        workers = workers or os.cpu_count() or 1
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            # A free port for the scheduler's HTTP routes: with None they still take 8787, and
            # a second sweep on the machine would fail to start.
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        with cluster, Client(cluster) as client:
            yield client
        return
    if not isinstance(scheduler, str) or not scheduler.startswith("tcp://"):
        raise ValueError(f"scheduler must be an address tcp://HOST:PORT, not {scheduler!r}")
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ConnectionError(
            f"no Dask scheduler answers at {scheduler} within {timeout:g} s ({error}); start "
            "one with `dask scheduler` and workers with `dask worker ADDRESS`, or leave out "
            "--scheduler for a local cluster"
        ) from None
    with client:
        yield client
