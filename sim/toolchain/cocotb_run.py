"""Running cocotb tests against a built simulation and reading their results (`run_cocotb`)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from sim.toolchain.cache import cache_dir
from sim.toolchain.errors import CocotbTestError, _log_tail
from sim.toolchain.runner import _new_runner
from sim.toolchain.tools import ensure_verilator_on_path

if TYPE_CHECKING:
    from sim.toolchain.cocotb_build import CocotbBuild


@dataclasses.dataclass(frozen=True)
class CocotbResult:
    """Outcome of one `run_cocotb` call.

    Attributes
    ----------
    passed, failed, skipped : int
        Test counts from the results XML (errors count as failures).
    failed_tests : tuple of str
        Names of the failing cocotb tests.
    results_xml, log_file, run_dir : pathlib.Path
        Where the run left its results, simulator log and working files.
    waveform : pathlib.Path or None
        ``run_dir/dump.vcd`` or ``run_dir/dump.fst`` when the build traces, else ``None``.
    """

    passed: int
    failed: int
    skipped: int
    failed_tests: tuple[str, ...]
    results_xml: Path
    log_file: Path
    run_dir: Path
    waveform: Path | None = None

    @property
    def total(self) -> int:
        """Number of tests that ran (passed + failed; skipped tests are not counted)."""
        return self.passed + self.failed


def _failed_test_names(results_xml: Path) -> tuple[str, ...]:
    """Return the names of the test cases with a failure or error element in *results_xml*."""
    names = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(case.get("name", "?"))
    return tuple(names)


def _skipped_count(results_xml: Path) -> int:
    """Return the number of skipped test cases in *results_xml*."""
    root = ElementTree.parse(results_xml).getroot()
    return sum(1 for case in root.iter("testcase") if case.find("skipped") is not None)


def run_cocotb(
    build: CocotbBuild,
    test_module: str,
    test_dir: Path,
    *,
    run_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    check: bool = True,
) -> CocotbResult:
    """Run the cocotb tests of *test_module* against *build*.

    Uses ``runner.test(...)`` of cocotb's Verilator runner. A fresh runner object is enough: the
    test step only needs the build folder and top-level name, so a cached build costs no Verilator
    or make call (calling ``build()`` again on an unchanged folder would also work, 0.1 s).

    Parameters
    ----------
    build : CocotbBuild
        Result of `build_cocotb`.
    test_module : str
        Name of the cocotb test module (without ``.py``), importable from *test_dir*.
    test_dir : pathlib.Path
        Folder holding *test_module*; it is put first on the simulator's ``PYTHONPATH``.
    run_dir : pathlib.Path, optional
        Working folder of the simulation (results XML, ``sim.log``, waveforms). Defaults to a new
        folder under ``cache_dir()/runs``; pass pytest's ``tmp_path`` in tests.
    extra_env : mapping of str to str, optional
        Extra environment variables for the simulator; they win over ``os.environ``. A
        ``PYTHONPATH`` given here is put after *test_dir* and before this process's path.
    testcase : str or sequence of str, optional
        Run only these cocotb tests (names, matched at the end of the full test name). A test
        marked ``skip=True`` runs when selected this way.
    seed : int, optional
        ``COCOTB_RANDOM_SEED`` for the run; cocotb picks a time-based one if omitted.
    check : bool, optional
        If true (the default), raise `CocotbTestError` when a test failed or none ran.

    Returns
    -------
    CocotbResult
        Counts of passed, failed and skipped tests and where the files are.

    Raises
    ------
    CocotbTestError
        If the simulation left no results file (e.g. the module does not import), or, with
        *check*, if any test failed or no test ran. The message ends with the log tail.
    FileNotFoundError
        If *test_dir* has no ``<test_module>.py`` and no package of that name.
    """
    test_dir = Path(test_dir).resolve()
    module_path = test_dir.joinpath(*test_module.split("."))
    if not (module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file()):
        raise FileNotFoundError(f"No cocotb test module {test_module!r} in {test_dir}")
    if run_dir is None:
        runs = cache_dir() / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{build.toplevel}-{test_module}-", dir=runs))
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    results_xml = run_dir / "results.xml"
    log_file = run_dir / "sim.log"

    env = dict(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(test_dir), env.get("PYTHONPATH", "")) if part
    )
    ensure_verilator_on_path()
    runner = _new_runner()
    # Under pytest the runner calls sys.exit() when a test failed or the simulator exited with an
    # error; the results file (read below) tells which it was.
    with contextlib.suppress(SystemExit):
        runner.test(
            test_module=test_module,
            hdl_toplevel=build.toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=build.build_dir,
            test_dir=run_dir,
            results_xml=str(results_xml),
            extra_env=env,
            testcase=testcase,
            seed=seed,
            waves=build.waves is not None,
            log_file=log_file,
        )

    if not results_xml.is_file():
        raise CocotbTestError(
            f"cocotb run of {test_module!r} on {build.toplevel!r} left no results file "
            f"(did the module import?); log: {log_file}\n" + _log_tail(log_file)
        )
    from cocotb_tools.check_results import get_results

    tests, failed = get_results(results_xml)
    skipped = _skipped_count(results_xml)
    outcome = CocotbResult(
        passed=tests - failed - skipped,
        failed=failed,
        skipped=skipped,
        failed_tests=_failed_test_names(results_xml),
        results_xml=results_xml,
        log_file=log_file,
        run_dir=run_dir,
        waveform=run_dir / f"dump.{build.waves}" if build.waves else None,
    )
    if check and outcome.failed:
        raise CocotbTestError(
            f"{outcome.failed} of {outcome.total} cocotb tests failed in {test_module!r}: "
            f"{', '.join(outcome.failed_tests)}; log: {log_file}\n" + _log_tail(log_file)
        )
    if check and outcome.total == 0:
        raise CocotbTestError(
            f"No cocotb test ran from {test_module!r} (testcase={testcase!r}); log: {log_file}\n"
            + _log_tail(log_file)
        )
    return outcome
