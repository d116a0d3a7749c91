"""No source file in hdl/, sim/ or host/ is over 600 lines (docs/architecture.md, "File size").

A file that grows past the bound holds more than one purpose: split it by purpose.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ("hdl", "sim", "host")
SUFFIXES = {".py", ".cpp", ".h"}
MAX_LINES = 600


def _oversized(paths: list[Path], root: Path) -> list[str]:
    """`path: N lines` for each file of `paths` over `MAX_LINES`."""
    found = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            found.append(f"{relative}: {lines} lines (limit {MAX_LINES})")
    return found


def test_no_source_file_is_over_the_limit():
    paths = [
        p for floor in FLOORS for p in sorted((ROOT / floor).rglob("*")) if p.suffix in SUFFIXES
    ]
    assert len(paths) > 50, f"found only {len(paths)} source files under {FLOORS}"
    assert not _oversized(paths, ROOT), "\n".join(_oversized(paths, ROOT))


def test_the_check_finds_a_long_file(tmp_path):
    (tmp_path / "sim").mkdir()
    long_file, short_file = tmp_path / "sim" / "long.py", tmp_path / "sim" / "short.py"
    long_file.write_text("x = 1\n" * (MAX_LINES + 1))
    short_file.write_text("x = 1\n" * MAX_LINES)
    assert _oversized([long_file, short_file], tmp_path) == [
        f"sim/long.py: {MAX_LINES + 1} lines (limit {MAX_LINES})"
    ]
