"""The build cache under concurrency and corruption (`sim.toolchain.cache.cached_build`).

Two processes building one new key must build it once and both load the finished output; an
output changed after its build must be rebuilt, not reused."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

from sim.toolchain import cached_build

#: Bytes the slow build writes, in chunks, with pauses between (a half-written output is visible
#: for most of its run to anything that reads without the lock).
CHUNKS, CHUNK = 16, 64 * 1024


def slow_build(directory: Path) -> dict:
    """Write ``out.bin`` slowly and log one line per build into ``builds.log``."""
    with (directory / "builds.log").open("a") as log:
        log.write("built\n")
    with (directory / "out.bin").open("wb") as out:
        for index in range(CHUNKS):
            out.write(bytes([index]) * CHUNK)
            out.flush()
            time.sleep(0.02)
    return {"chunks": CHUNKS}


def build_and_read(directory: str, results) -> None:
    """One worker process: build (or reuse) the folder, then read the output back."""
    folder = Path(directory)
    cached, record = cached_build(folder, [folder / "out.bin"], lambda: slow_build(folder))
    results.put((cached, record["chunks"], (folder / "out.bin").read_bytes()))


def expected_output() -> bytes:
    return b"".join(bytes([index]) * CHUNK for index in range(CHUNKS))


def test_two_processes_build_one_new_key_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=build_and_read, args=(str(tmp_path), results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(cached for cached, _, _ in outcomes) == [False, True]
    assert all(data == expected_output() for _, _, data in outcomes)
    assert (tmp_path / "builds.log").read_text() == "built\n"
    marker = json.loads((tmp_path / "BUILT.json").read_text())
    assert marker["chunks"] == CHUNKS and set(marker["output_sha256"]) == {"out.bin"}


def test_an_output_changed_after_its_build_is_rebuilt(tmp_path):
    output = tmp_path / "out.bin"
    builds = []

    def build():
        builds.append(1)
        output.write_bytes(b"good library")
        return {}

    assert cached_build(tmp_path, [output], build)[0] is False
    assert cached_build(tmp_path, [output], build)[0] is True
    output.write_bytes(b"good lib")  # truncated, as by a copy that died
    assert cached_build(tmp_path, [output], build)[0] is False
    assert output.read_bytes() == b"good library" and len(builds) == 2
    (tmp_path / "BUILT.json").write_text("{not json")
    assert cached_build(tmp_path, [output], build)[0] is False
    assert len(builds) == 3
