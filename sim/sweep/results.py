"""The results file of a sweep: one CSV row per finished point, appended as each finishes.

`ResultsFile(path, columns)` opens (or creates) the file. Rows already in it are the points a
rerun does not recompute (`done`, by the ``key`` column). A sweep killed mid-write leaves a last
line without its newline: opening the file cuts it off (that point is computed again), so every
row in the file is whole and appears once. Each `append` writes one line and flushes it, so a
killed process loses at most the row it was writing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

__all__ = ["ResultsFile"]


class ResultsFile:
    """Append-only CSV of sweep rows with a ``key`` column (module doc).

    Raises
    ------
    ValueError
        `columns` lacks ``key``; the file exists with a different header (a sweep of other
        columns: give another file); a row in it is not whole (not a file this class wrote).
    """

    def __init__(self, path: str | Path, columns: list[str]):
        if "key" not in columns:
            raise ValueError(f"columns must include 'key', not {columns!r}")
        self.path = Path(path)
        self.columns = list(columns)
        self.rows: dict[str, dict[str, str]] = {}
        if self.path.exists() and self.path.stat().st_size:
            self._read_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self._line(dict(zip(self.columns, self.columns, strict=True))))

    def _read_existing(self) -> None:
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):  # a row cut short by a kill: drop it
            with self.path.open("r+b") as file:
                file.truncate(len(whole))
        reader = csv.DictReader(io.StringIO(whole.decode()))
        if reader.fieldnames != self.columns:
            raise ValueError(
                f"{self.path} holds a sweep with the columns {reader.fieldnames}, not "
                f"{self.columns}; give another results file or delete it"
            )
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise ValueError(f"{self.path}:{line}: the row does not have every column")
            self.rows[row["key"]] = row

    def done(self, key: str) -> bool:
        """Whether the point named `key` is already in the file."""
        return key in self.rows

    def append(self, row: dict) -> None:
        """Write `row` (every column; floats as Python writes them) as one line and flush it."""
        missing = [column for column in self.columns if column not in row]
        if missing:
            raise ValueError(f"row {row.get('key')!r} lacks the columns {missing}")
        text = self._line(row)
        with self.path.open("a", newline="") as file:
            file.write(text)
            file.flush()
        self.rows[str(row["key"])] = {column: str(row[column]) for column in self.columns}

    def _line(self, row: dict) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([row[c] for c in self.columns])
        return buffer.getvalue()
