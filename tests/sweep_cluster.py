"""A Dask scheduler and workers started as separate processes on localhost, for the sweep tests.

`external_cluster(workers)` starts ``dask scheduler`` and `workers` ``dask worker`` processes
(one thread each, no dashboard) on a free port, with this checkout first on ``PYTHONPATH`` so
the workers import its ``sim`` package, waits until every worker has joined, yields the
scheduler's address, and ends every process it started (terminate, then kill) however the
test ends.
"""

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on localhost that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Wait a few seconds for each process to exit, then terminate it, then kill it."""
    for process in processes:
        for end in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
            if end is not None:
                end(process)
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue


@contextlib.contextmanager
def external_cluster(workers: int = 2, *, timeout: float = 60.0):
    """The address of a scheduler with `workers` single-threaded workers (module doc)."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    dask = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT, "env": env}
    processes = [
        subprocess.Popen(
            [
                *dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                address.rsplit(":", 1)[1],
                "--no-dashboard",
            ],
            **quiet,
        )
    ]
    try:
        for _ in range(workers):
            processes.append(
                subprocess.Popen(
                    [
                        *dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--no-nanny",
                    ],
                    **quiet,
                )
            )
        client = Client(address, timeout=timeout)
        try:
            client.wait_for_workers(workers, timeout=timeout)
            yield address
        finally:
            # The scheduler and its workers exit at once (they take ~10 s over a SIGTERM); the
            # client closes with them (closing it again waits for the gone scheduler).
            client.shutdown()
    finally:
        _stop(processes)
