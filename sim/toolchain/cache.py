"""The build cache: its folder, content-hash keys, and the lock + marker protocol of builds.

A build lives in ``cache_dir()/<kind>/<key>``, where the key is a `content_hash` of everything
the build depends on. `cached_build` (and `sim.toolchain.cocotb_build.build_cocotb`, with the
same `_file_lock` and marker name) builds a folder at most once, under an ``fcntl.flock`` lock,
and writes the marker file ``BUILT.json`` only after the build succeeded. `cached_build` also
records the SHA-256 of each output in the marker and checks it before it reuses a build: an
output changed or truncated since (a disk error, a process that died while copying, a user's
edit) is rebuilt, never loaded. Two processes building one new key: the second waits on the
lock, then finds the first's marker (tests/test_build_cache.py runs two processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_HASH_LENGTH = 16
_MARKER_NAME = "BUILT.json"
#: The marker's record of each output's SHA-256 (file name -> hex digest).
_DIGESTS = "output_sha256"


def cache_dir() -> Path:
    """Return the root of the build cache (the folder is not created here).

    Returns
    -------
    pathlib.Path
        ``$TESSERA_CACHE`` if that is set and not empty, else ``~/.cache/tessera``.
    """
    configured = os.environ.get("TESSERA_CACHE", "")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "tessera"


def _feed(digest: Any, part: object) -> None:
    """Feed one *part* into *digest* with an unambiguous, type-tagged encoding."""

    def chunk(tag: bytes, payload: bytes) -> None:
        digest.update(tag + len(payload).to_bytes(8, "little") + payload)

    if part is None:
        chunk(b"N", b"")
    elif isinstance(part, bool):
        chunk(b"?", b"1" if part else b"0")
    elif isinstance(part, int | float):
        chunk(b"#", repr(part).encode())
    elif isinstance(part, str):
        chunk(b"s", part.encode("utf-8"))
    elif isinstance(part, bytes | bytearray | memoryview):
        chunk(b"b", bytes(part))
    elif isinstance(part, os.PathLike):
        chunk(b"p", os.fspath(part).encode("utf-8"))
    elif isinstance(part, Mapping):
        chunk(b"{", str(len(part)).encode())
        for key in sorted(part, key=str):
            _feed(digest, str(key))
            _feed(digest, part[key])
    elif isinstance(part, list | tuple):
        chunk(b"[", str(len(part)).encode())
        for item in part:
            _feed(digest, item)
    else:
        raise TypeError(f"content_hash cannot hash a {type(part).__name__}: {part!r}")


def content_hash(*parts: object, length: int = _HASH_LENGTH) -> str:
    """Return a SHA-256 hex digest over *parts*, for use as a cache key.

    Parameters
    ----------
    *parts : object
        Strings (Verilog text, names), bytes, numbers, booleans, ``None``, paths, and lists,
        tuples or mappings of those (mappings are hashed in key order). Each part is encoded
        with its type and length, so ``("ab", "c")`` and ``("a", "bc")`` differ, as do a list
        and the same items given as separate parts.
    length : int, optional
        Number of hex digits to keep (1 to 64); 16 by default, i.e. 64 bits.

    Returns
    -------
    str
        Lower-case hex digest, stable across processes, machines and Python versions.

    Raises
    ------
    TypeError
        If a part has a type not listed above.
    ValueError
        If *length* is outside 1..64.
    """
    if not 1 <= length <= 64:
        raise ValueError(f"content_hash length must be in [1, 64], not {length}")
    digest = hashlib.sha256()
    _feed(digest, list(parts))
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on *path* (created if needed) inside the block."""
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cached_build(
    directory: Path,
    outputs: Sequence[Path],
    build: Callable[[], Mapping[str, Any]],
) -> tuple[bool, dict[str, Any]]:
    """Run *build* at most once per cache folder, under a lock, and record it in a marker file.

    The same protocol as `build_cocotb`, for other kinds of builds: under an ``fcntl.flock`` on
    ``directory/.lock``, if the marker ``directory/BUILT.json`` and every path in *outputs*
    exist, nothing is built. Otherwise a stale marker is removed and *build* is called; it must
    raise on failure (no marker is written then, so the next call builds again) and return a
    JSON-serialisable record, which is written atomically as the marker together with
    ``built_at``.

    Parameters
    ----------
    directory : pathlib.Path
        The build's cache folder (created if needed), e.g. ``cache_dir()/<kind>/<key>``.
    outputs : sequence of pathlib.Path
        Files a finished build must have produced.
    build : callable
        Does the build; returns the record to keep in the marker.

    Returns
    -------
    (bool, dict)
        ``True`` and the stored record when an earlier build was reused (its marker and every
        output present, each output's SHA-256 the one recorded), else ``False`` and the new
        record (with ``output_sha256``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / _MARKER_NAME
    with _file_lock(directory / ".lock"):
        if marker.is_file() and all(Path(path).is_file() for path in outputs):
            try:
                record = json.loads(marker.read_text())
            except ValueError:
                record = None
            if isinstance(record, dict) and record.get(_DIGESTS) == _digests(directory, outputs):
                return True, record
        marker.unlink(missing_ok=True)
        record = dict(build())
        record.setdefault("built_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        record[_DIGESTS] = _digests(directory, outputs)
        partial = marker.with_suffix(".tmp")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, marker)
        return False, record


def _digests(directory: Path, outputs: Sequence[Path]) -> dict[str, str]:
    """SHA-256 of each output file, by its path relative to `directory` (so a cache folder
    that moves keeps its builds); absent files are left out."""
    digests = {}
    for path in outputs:
        path = Path(path)
        if path.is_file():
            with path.open("rb") as handle:
                name = os.path.relpath(path, directory)
                digests[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests
