"""The README's Python example and command lines run as written."""

import re
import shlex
from pathlib import Path

import pytest

from sim import run

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_the_python_api_example_runs(capsys):
    (example,) = [block for block in blocks("python") if "host.offload" in block]
    assert len(example.strip().splitlines()) <= 10
    exec(compile(example, "README.md", "exec"), {})
    assert "fc1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "line",
    [line for block in blocks("sh") for line in block.splitlines() if "sim.run" in line][1:4],
)
def test_the_cli_lines_run(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --json files land here
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "sim.run"]
    assert run.main(argv[3:]) == 0
