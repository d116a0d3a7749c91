"""SCALE-Sim convention cycle counts, utilization, and the sparse engine's cycle model."""

import pytest

from hdl.config import AccelConfig
from sim.cycles import scalesim_cycles, sparse_cycles, utilization


def test_single_fold_ws_and_os():
    config = AccelConfig(rows=4, cols=4, dataflow="ws")
    # WS: Sr=K=4, Sc=N=4, T=M=10 -> 1 fold of 2*4 + 4 + 10 - 2 = 20 cycles, minus 1.
    assert scalesim_cycles(10, 4, 4, config) == 19
    config = AccelConfig(rows=4, cols=4, dataflow="os")
    # OS: Sr=M=10 -> 3 row folds, Sc=N=4 -> 1, T=K=4: 3 * (8 + 4 + 4 - 2) - 1.
    assert scalesim_cycles(10, 4, 4, config) == 41


def test_folds_are_ceil_divisions():
    config = AccelConfig(rows=16, cols=8, dataflow="ws")
    # Sr=K=33 -> 3, Sc=N=17 -> 3: 9 folds of 32 + 8 + 5 - 2 = 43.
    assert scalesim_cycles(5, 17, 33, config) == 9 * 43 - 1


def test_utilization():
    config = AccelConfig(rows=2, cols=2)
    assert utilization(4, 4, 4, 32, config) == 0.5
    with pytest.raises(ValueError, match=r"^cycles must be positive, not 0$"):
        utilization(1, 1, 1, 0, config)


def test_bad_dimensions():
    with pytest.raises(ValueError, match=r"^GEMM dimension N must be a positive int, not 0$"):
        scalesim_cycles(1, 0, 1, AccelConfig())


def test_sparse_cycles_closed_forms():
    # One pass: K acts beats, B nonzeros beats, 3 cycles of latency.
    assert sparse_cycles([(10, 7)]) == 10 + 7 + 3
    # Compute-bound (every B >= K): loads hide behind compute after the first.
    assert sparse_cycles([(10, 12)] * 4) == 10 + 4 * 12 + 3
    # Load-bound: each pass waits for its block; the last pass's beats follow the last load.
    assert sparse_cycles([(10, 2)] * 3) == 3 * 10 + 2 + 3


def test_sparse_cycles_refuses_empty_passes():
    with pytest.raises(ValueError, match=r"^a sparse program has at least one pass$"):
        sparse_cycles([])
    with pytest.raises(ValueError, match=r"^pass 1 has 4 acts and 0 nonzeros beats$"):
        sparse_cycles([(4, 1), (4, 0)])
