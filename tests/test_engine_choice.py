"""host.engine_choice and the offload path through it: each GEMM on the engine with fewer
predicted cycles (or the one forced), named in the report, bit-exact either way."""

import warnings

import numpy as np
import pytest
import torch
from accel_checks import native_config
from torch import nn

from hdl.config import AccelConfig
from host.device import Device
from host.engine_choice import choose_engine, padded_columns
from host.offload import OffloadWarning, offload
from host.prune import PruneWarning, prune
from host.quant import quantize
from sim.golden.sparse import random_sparse
from sim.perf import gemm_estimate, spmm_estimate

CONFIG = AccelConfig(16, 16)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.75, 0.9, 0.97])
@pytest.mark.parametrize("m", [16, 64, 359])
def test_the_rule_is_the_fewer_predicted_cycles(sparsity, m):
    w = random_sparse(np.random.default_rng(int(sparsity * 100) + m), 128, 300, sparsity)
    choice = choose_engine(w, m, CONFIG)
    assert choice.dense_cycles == gemm_estimate(m, 128, 300, CONFIG, requant=True).cycles
    columns = -(-m // CONFIG.bus_bytes) * CONFIG.bus_bytes  # X^T on whole bus words
    if choice.engine == "sparse":
        assert choice.sparse_cycles == spmm_estimate(w, columns, CONFIG).cycles
        assert choice.sparse_cycles < choice.dense_cycles
    else:  # the full estimate, or the engine's compute alone when that already loses
        assert choice.sparse_cycles >= choice.dense_cycles
        assert choice.sparse_cycles <= spmm_estimate(w, columns, CONFIG).cycles
    assert f"{choice.dense_cycles:,} dense" in choice.reason
    assert choice.nonzeros == np.count_nonzero(w) and choice.entries == w.size


def test_pruned_layers_go_sparse_and_dense_ones_stay_dense_at_a_large_batch():
    rng = np.random.default_rng(1)
    assert choose_engine(random_sparse(rng, 128, 784, 0.9), 256, CONFIG).engine == "sparse"
    assert choose_engine(random_sparse(rng, 128, 784, 0.0), 256, CONFIG).engine == "dense"


def test_forcing_an_engine_and_bad_requests():
    w = random_sparse(np.random.default_rng(2), 64, 64, 0.9)
    forced = choose_engine(w, 256, CONFIG, "dense")
    assert forced.engine == "dense" and "forced" in forced.reason
    assert choose_engine(w, 256, CONFIG, "sparse").engine == "sparse"
    with pytest.raises(ValueError, match="must be one of 'auto', 'dense', 'sparse', not 'fast'"):
        choose_engine(w, 256, CONFIG, "fast")
    with pytest.raises(ValueError, match="m must be a positive int, not 0"):
        choose_engine(w, 0, CONFIG)
    with pytest.raises(TypeError):
        choose_engine(w.astype(np.int16), 4, CONFIG)
    no_engine = AccelConfig(16, 16, sparse_lanes=0)
    plain = choose_engine(w, 256, no_engine)
    assert plain.engine == "dense" and plain.sparse_cycles is None
    assert "no sparse engine" in plain.reason
    with pytest.raises(ValueError, match="sparse_lanes = 0"):
        choose_engine(w, 256, no_engine, "sparse")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))


def cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 3 * 3, 10),
    )


def images(seed: int, batch: int) -> torch.Tensor:
    return torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def pruned_int8(make, sparsity: float, pattern: str = "unstructured") -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PruneWarning)  # 2:4 leaves the CNN's first conv dense
        pruned = prune(make(), sparsity, pattern)
    return quantize(pruned, images(0, 64), engine="qnnpack")


@pytest.mark.parametrize("backend", ["golden", "verilator"])
@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize(("sparsity", "pattern"), [(0.5, "2:4"), (0.9, "unstructured")])
def test_pruned_models_are_bit_exact_with_the_engines_chosen(make, backend, sparsity, pattern):
    qmodel = pruned_int8(make, sparsity, pattern)
    with Device(backend, native_config()) as device:
        offloaded = offload(qmodel, device)
        for seed in (1, 2):
            x = images(seed, 24) * 1.2 - 0.1  # 64 KiB of device memory
            assert torch.equal(offloaded(x), qmodel(x))
        report = offloaded.report()
    engines = {row.name: row.engine for row in report}
    assert "sparse" in engines.values(), engines
    for row in report:
        assert row.engine in row.engine_reason and 0 < row.utilization <= 1
        if row.engine == "sparse":  # int32 accumulators of X^T's padded columns
            assert row.bytes_written == 4 * padded_columns(row.m, device.config) * row.n


def test_a_per_layer_mapping_forces_engines_by_name():
    qmodel = pruned_int8(mlp, 0.9)
    with Device("golden", native_config()) as device:
        offloaded = offload(qmodel, device, engine={"module.1": "sparse", "*": "dense"})
        x = images(3, 16)
        assert torch.equal(offloaded(x), qmodel(x))
        engines = [row.engine for row in offloaded.report()]
    assert engines == ["sparse", "dense"]
    with (
        Device("golden", native_config()) as device,
        pytest.raises(ValueError, match=r"'module\.1'"),
    ):
        offload(qmodel, device, engine={"module.1": "sparser"})


def test_a_sparse_layer_that_does_not_fit_in_memory_runs_dense_and_says_why():
    qmodel = pruned_int8(mlp, 0.5)
    config = native_config(mem_bytes=16 * 1024)  # the dense operands fit, the sparse ones not
    with Device("golden", config) as device:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffloadWarning)
            offloaded = offload(qmodel, device, engine="sparse")
        x = images(4, 64)
        assert torch.equal(offloaded(x), qmodel(x))
        first = offloaded.report()[0]
        assert first.engine == "dense" and "did not fit in device memory" in first.engine_reason
        assert torch.equal(offloaded(x), qmodel(x))  # the choice stays dense, memory intact
        assert offloaded.report()[0].engine == "dense"
