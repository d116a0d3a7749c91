"""sim.sweep.area and sim.sweep.synth_area: the analytical model, its fit, a cached Yosys run."""

import json
import subprocess

import pytest

from hdl.config import AccelConfig
from sim.sweep import area as area_module
from sim.sweep.area import CALIBRATION, LOGIC_TERMS, MEMORY_TERMS, area, calibrate, load_model
from sim.sweep.synth_area import synth_area


def test_calibrate_recovers_a_linear_model():
    logic = {term: 1000.0 / (i + 1) for i, term in enumerate(LOGIC_TERMS)}
    bits = {term: 3.0 * (i + 1) for i, term in enumerate(MEMORY_TERMS)}
    truth = {"sram_bit_um2": 0.5, "logic_um2": logic, "memory_bits": bits}

    def measure(config):
        figures = area(config, truth)
        return {"logic_um2": figures["logic_um2"], "memory_bits": figures["memory_bits"]}

    model, fits = calibrate(CALIBRATION, measure)
    for name in ("logic_um2", "memory_bits"):
        for term, value in truth[name].items():
            assert model[name][term] == pytest.approx(value, abs=1e-2)
    assert len(fits) == len(CALIBRATION)


def test_area_grows_with_the_array_and_the_memories():
    small = area(AccelConfig(rows=4, cols=4))
    assert area(AccelConfig(rows=8, cols=8))["logic_um2"] > small["logic_um2"]
    bigger = area(AccelConfig(rows=4, cols=4, spad_bytes=1 << 18))
    assert bigger["memory_bits"] > small["memory_bits"]
    assert bigger["logic_um2"] > small["logic_um2"]  # wider addresses
    assert small["area_mm2"] == pytest.approx(
        (small["logic_um2"] + small["memory_bits"] * area_module.SRAM_BIT_UM2) / 1e6
    )


def test_a_user_model_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(load_model(None)))
    assert load_model(path) == load_model(None)
    path.write_text(json.dumps({"logic_um2": {}}))
    with pytest.raises(ValueError, match=r"^area model '.*m.json': KeyError: 'fixed'$"):
        load_model(path)


def test_synth_area_of_a_tiny_accelerator_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    config = AccelConfig(
        rows=1, cols=1, spad_bytes=256, acc_rows=16, sparse_lanes=0, mem_bytes=256, counter_bits=16
    )
    result = synth_area(config)
    assert result["cells"]["$_NAND_"] > 100 and result["flip_flops"] > 100
    assert 10_000 < result["logic_um2"] < 1_000_000
    assert result["memory_bits"] >= 2 * 256 * 8 + 16 * 32  # two scratchpads, the accumulator

    def no_yosys(*args, **kwargs):
        raise AssertionError("Yosys ran again for a cached configuration")

    monkeypatch.setattr(subprocess, "run", no_yosys)
    assert synth_area(config) == result
