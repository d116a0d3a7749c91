"""The floors of docs/architecture.md hold: no module imports a package above its own floor.

Every import statement (top-level or inside a function) of every module under hdl/, sim/,
host/ and models/ is read from its source with `ast`; an import of a first-party package that
the importing module's floor may not use fails, naming the file, the line and the rule.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The packages each floor may import, besides its own and third-party libraries.
ALLOWED = {
    "hdl": set(),
    "sim": {"hdl"},
    "host": {"hdl", "sim"},
    "models": {"hdl", "sim"},
}

#: The application layer: `python -m sim.run` and the runs it drives, and `python -m sim.sweep`
#: with its workload derivation (it quantizes and offloads the models), which may use everything.
APPLICATION = {
    "sim/run.py",
    "sim/model_run.py",
    "sim/exported_run.py",
    "sim/pruned_run.py",
    "sim/sweep/__init__.py",
    "sim/sweep/__main__.py",
    "sim/sweep/workload.py",
}

FIRST_PARTY = set(ALLOWED) | {"bench", "tests"}


def _imported_packages(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def _violations(relative: str, source: str) -> list[str]:
    """The upward imports in `source`, the text of the module at `relative` (a POSIX path)."""
    floor = relative.split("/")[0]
    if relative in APPLICATION:
        return []
    allowed = sorted(ALLOWED[floor] | {floor})
    found = []
    for line, package in _imported_packages(ast.parse(source, relative)):
        if package in FIRST_PARTY and package not in allowed:
            found.append(f"{relative}:{line} imports {package} (floor {floor} may use {allowed})")
    return found


def _modules(floor: str) -> list[Path]:
    return sorted((ROOT / floor).rglob("*.py"))


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_no_module_imports_a_floor_above_its_own(floor):
    modules = _modules(floor)
    assert modules, f"no modules found under {floor}/"
    violations = [
        v
        for path in modules
        for v in _violations(path.relative_to(ROOT).as_posix(), path.read_text())
    ]
    assert not violations, "\n".join(violations)


def test_the_check_finds_an_upward_import():
    source = "import numpy\nfrom hdl.isa import Op\n\ndef f():\n    from host.device import D\n"
    assert _violations("sim/probe.py", source) == [
        "sim/probe.py:5 imports host (floor sim may use ['hdl', 'sim'])"
    ]
    assert _violations("hdl/probe.py", "import sim.golden\n") == [
        "hdl/probe.py:1 imports sim (floor hdl may use ['hdl'])"
    ]
    assert _violations("sim/run.py", "import host, models\n") == []
