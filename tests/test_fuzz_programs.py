"""The program fuzzer (sim.fuzz): malformed programs on the native accelerator agree with the model.

A seeded slice of the campaign `bench/fuzz_programs.py` runs 10^5 of: every mutation kind in
turn on the 4x4 builds the native-harness tests share (tests/accel_checks.native_config: both
dataflows, and the build without a sparse engine), each program compared with
`sim.fuzz.expected_outcome` on verdict, error code and index, words accepted, counters and final
memory. The per-kind counts are printed (``pytest -s``) and checked. A second test shows the
comparison fails when the prediction is perturbed.
"""

import dataclasses

import numpy as np
import pytest
from accel_checks import native_config

from hdl.isa import ErrorCode
from sim.drivers.accel_native import NativeAccelerator
from sim.fuzz import ERROR, HANG, KINDS, OK, Campaign, campaign

#: (configuration options, seed, programs): 4,800 programs, about 10 s warm on one core.
SLICES = {
    "ws": ({}, 21, 2400),
    "os": ({"dataflow": "os"}, 22, 1200),
    "ws-no-sparse-engine": ({"sparse_lanes": 0}, 23, 1200),
}


@pytest.fixture(scope="module")
def accelerators():
    sims = {}

    def get(name):
        if name not in sims:
            options = dict(SLICES[name][0])
            sims[name] = NativeAccelerator(native_config(options.pop("dataflow", "ws"), **options))
        return sims[name]

    yield get
    for sim in sims.values():
        sim.close()


@pytest.mark.parametrize("name", list(SLICES))
def test_fuzzed_programs_agree_with_the_model(accelerators, name):
    _, seed, count = SLICES[name]
    report = Campaign(accelerators(name), seed).run(count)
    print(f"\n{name}:\n{report.summary()}")
    assert report.programs == count
    assert all(report.kinds[kind] >= count // len(KINDS) for kind in KINDS), report.kinds
    # Clean runs, errors and deadlocks each occur, nothing hangs, and most programs are
    # compared in full.
    assert all(report.verdicts[v] > count // 20 for v in (OK, ERROR)), report.verdicts
    assert report.codes["DEADLOCK"] > count // 20, report.codes
    assert report.hangs == report.verdicts[HANG] == 0, report.verdicts
    assert report.memory_compared > 0.8 * count and report.counters_compared > 0.9 * count
    assert report.crashes == 0
    shown = "\n".join(str(d) for d in report.disagreements[:5])
    assert not report.disagreements, f"{len(report.disagreements)} disagreements:\n{shown}"


def _perturbed(change):
    """`expected_outcome` with `change(expected)` applied to every prediction."""
    original = campaign.expected_outcome

    def predict(*args):
        expected = original(*args)
        change(expected)
        return expected

    return predict


@pytest.mark.parametrize(
    ("perturb", "what"),
    [
        # An error reported at the wrong index.
        (lambda e: e.verdict == ERROR and setattr(e, "index", e.index + 1), "model says error"),
        # A wrong code.
        (
            lambda e: e.verdict == ERROR and setattr(e, "code", ErrorCode.DRAM_RANGE),
            "model says error",
        ),
        # A clean program predicted to deadlock, a deadlock predicted clean.
        (lambda e: e.verdict == OK and _deadlocked(e), "hardware says ok"),
        (lambda e: e.code is ErrorCode.DEADLOCK and _clean(e), "hardware says error DEADLOCK"),
        # The words the dispatcher took.
        (lambda e: e.accepted is not None and setattr(e, "accepted", e.accepted - 1), "accepted"),
        # One byte of the final memory, one counter.
        (lambda e: e.memory.__setitem__(np.s_[0], e.memory[0] ^ 1), "memory differs"),
        (lambda e: e.counters.__setitem__("macs", e.counters["macs"] + 1), "counter macs"),
    ],
)
def test_the_comparison_catches_a_perturbed_prediction(accelerators, monkeypatch, perturb, what):
    monkeypatch.setattr(campaign, "expected_outcome", _perturbed(perturb))
    report = Campaign(accelerators("ws"), 5).run(120)
    assert report.disagreements, "a perturbed model went unnoticed"
    assert any(what in d.what for d in report.disagreements), report.disagreements[0]


def _deadlocked(expected):
    expected.verdict, expected.code, expected.index = ERROR, ErrorCode.DEADLOCK, 0


def _clean(expected):
    expected.verdict, expected.code, expected.index = OK, ErrorCode.NONE, -1


def test_a_hang_is_a_disagreement(accelerators, monkeypatch):
    """With a quiet bound below the memory latency, runs stop as hangs: each one is reported."""
    monkeypatch.setattr(campaign, "QUIET_CYCLES", 2)
    report = Campaign(accelerators("ws"), 5).run(60)
    assert report.hangs > 0
    hung = [d for d in report.disagreements if "hardware hung" in d.what]
    assert len(hung) == report.hangs, report.disagreements[:3]


def test_a_disagreement_names_the_program():
    found = campaign.Disagreement(7, "flags", "gemm 1x1x1", (0x10, 0x0), "memory differs")
    assert str(found) == "program 7 (flags of gemm 1x1x1): memory differs; words [0x10, 0x0]"
    assert dataclasses.replace(found, number=8).number == 8
