"""sim.sweep.results: rows stream into the CSV, a rerun sees them, a cut-off line is dropped."""

import pytest

from sim.sweep import read_results
from sim.sweep.results import ResultsFile

COLUMNS = ["key", "x", "layers"]


def test_rows_are_appended_and_seen_by_a_reopen(tmp_path):
    path = tmp_path / "out" / "r.csv"
    store = ResultsFile(path, COLUMNS)
    store.append({"key": "a", "x": 1.5, "layers": "[]"})
    store.append({"key": "b", "x": "", "layers": '[["fc",1,2,3]]'})
    again = ResultsFile(path, COLUMNS)
    assert again.done("a") and again.done("b") and not again.done("c")
    rows = read_results(path)
    assert [(r["key"], r["x"], r["layers"]) for r in rows] == [
        ("a", 1.5, []),
        ("b", None, [["fc", 1, 2, 3]]),
    ]


def test_a_half_written_last_line_is_cut_off(tmp_path):
    path = tmp_path / "r.csv"
    store = ResultsFile(path, COLUMNS)
    store.append({"key": "a", "x": 1, "layers": "[]"})
    with path.open("a") as file:
        file.write("b,2,[[")  # a kill in the middle of a row
    assert len(read_results(path)) == 1
    again = ResultsFile(path, COLUMNS)
    assert list(again.rows) == ["a"]
    assert path.read_text().endswith("a,1,[]\n")
    again.append({"key": "b", "x": 2, "layers": "[]"})
    assert [r["key"] for r in read_results(path)] == ["a", "b"]


def test_a_file_of_other_columns_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("key,y\n")
    with pytest.raises(ValueError, match=r"holds a sweep with the columns \['key', 'y'\]"):
        ResultsFile(path, COLUMNS)


def test_a_row_must_have_every_column(tmp_path):
    store = ResultsFile(tmp_path / "r.csv", COLUMNS)
    with pytest.raises(ValueError, match=r"^row 'a' lacks the columns \['layers'\]$"):
        store.append({"key": "a", "x": 1})
