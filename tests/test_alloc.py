"""The row pool allocator: first fit, reuse, coalescing, banks, and its error messages."""

import numpy as np
import pytest

from hdl.config import AccelConfig
from sim.alloc import RowPool


def test_first_fit_hands_out_consecutive_runs_and_reuses_freed_ones():
    pool = RowPool(16)
    assert [pool.allocate(4), pool.allocate(3), pool.allocate(5)] == [0, 4, 7]
    assert pool.free_rows == 4
    pool.free(4)
    assert pool.allocate(2) == 4  # the lowest run that fits: the freed one, split
    assert pool.allocate(2) == 12  # 1 row left at 6 is too small; then the tail
    assert pool.allocate(1) == 6
    assert pool.allocated == {0: 4, 4: 2, 6: 1, 7: 5, 12: 2}
    assert pool.free_rows == 2


def test_freed_neighbours_coalesce_into_one_run():
    pool = RowPool(12)
    starts = [pool.allocate(3) for _ in range(4)]  # 0, 3, 6, 9: full
    with pytest.raises(ValueError, match="no 6 free contiguous rows"):
        pool.allocate(6)
    pool.free(starts[1])
    pool.free(starts[3])
    with pytest.raises(ValueError, match="6 rows free, the largest free run is 3 rows"):
        pool.allocate(6)
    pool.free(starts[2])  # 3..12 merge: the run left of it and the one right of it
    assert pool.allocate(9) == 3
    pool.free(3)
    pool.free(0)
    assert pool.free_rows == 12 and pool.allocate(12) == 0


def test_random_allocations_never_overlap_and_free_everything_back():
    rng = np.random.default_rng(0)
    pool = RowPool(64)
    live: dict[int, int] = {}
    for _ in range(2000):
        if live and (rng.random() < 0.5 or pool.free_rows == 0):
            start = int(rng.choice(list(live)))
            pool.free(start)
            del live[start]
            continue
        size = int(rng.integers(1, 9))
        try:
            start = pool.allocate(size)
        except ValueError:
            continue
        used = np.zeros(64, bool)
        for other, n in live.items():
            used[other : other + n] = True
        assert not used[start : start + size].any()
        live[start] = size
        assert pool.allocated == live
        assert pool.free_rows == 64 - sum(live.values())
    for start in list(live):
        pool.free(start)
    assert pool.allocate(64) == 0  # fully coalesced again


def test_bank_allocations_stay_in_their_half():
    pool = RowPool(10, banks=2, name="weight scratchpad")
    assert (pool.bank_rows(0), pool.bank_rows(1)) == (range(0, 5), range(5, 10))
    assert pool.allocate(2, bank=1) == 5
    assert pool.allocate(3, bank=0) == 0
    assert pool.allocate(3, bank=1) == 7
    assert pool.allocate(2) == 3  # without a bank: anywhere
    with pytest.raises(
        ValueError,
        match=r"^no 1 free contiguous rows in weight scratchpad bank 1 \(rows \[5, 10\)\): "
        r"0 rows free, the largest free run is 0 rows$",
    ):
        pool.allocate(1, bank=1)
    pool.free(0)
    with pytest.raises(ValueError, match=r"bank 0 \(rows \[0, 5\)\): 3 rows free"):
        pool.allocate(4, bank=0)


def test_a_run_straddling_the_bank_border_is_cut_to_the_bank():
    pool = RowPool(8, banks=2)
    pool.allocate(2)  # rows 0-1; the free run 2..8 crosses into bank 1
    assert pool.allocate(3, bank=1) == 4
    assert pool.allocate(2, bank=0) == 2
    assert pool.free_rows == 1 and pool.allocate(1) == 7


def test_odd_rows_leave_the_last_row_outside_both_banks():
    pool = RowPool(7, banks=2)
    assert (pool.bank_rows(0), pool.bank_rows(1)) == (range(0, 3), range(3, 6))
    assert pool.allocate(3, bank=1) == 3
    assert pool.allocate(3, bank=0) == 0
    with pytest.raises(ValueError, match=r"bank 1 \(rows \[3, 6\)\): 0 rows free"):
        pool.allocate(1, bank=1)
    assert pool.allocate(1) == 6  # only an allocation without a bank reaches row 6


def test_pools_of_a_configuration():
    config = AccelConfig(rows=4, cols=8, spad_bytes=1024, acc_rows=64)
    act, wgt, acc = (
        RowPool.activations(config),
        RowPool.weights(config),
        RowPool.accumulator(config),
    )
    assert (act.rows, act.banks, wgt.rows, wgt.banks, acc.rows, acc.banks) == (
        256,
        2,
        128,
        2,
        64,
        1,
    )
    assert wgt.bank_rows(1) == range(64, 128)
    with pytest.raises(ValueError, match=r"^no 65 free contiguous rows in accumulator "):
        acc.allocate(65)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.free(3), ValueError, r"^memory has no allocated run starting at row 3 "),
        (lambda p: p.allocate(0), ValueError, r"^n_rows must be at least 1, not 0$"),
        (lambda p: p.allocate(2.0), TypeError, r"^n_rows must be an int, not 2\.0$"),
        (lambda p: p.allocate(True), TypeError, r"^n_rows must be an int, not True$"),
        (lambda p: p.allocate(1, bank=2), ValueError, r"^bank must be in \[0, 2\), not 2$"),
        (lambda p: p.bank_rows(-1), ValueError, r"^bank must be in \[0, 2\), not -1$"),
        (lambda p: p.free("0"), TypeError, r"^start must be an int, not '0'$"),
    ],
)
def test_bad_calls_name_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call(RowPool(8, banks=2))


def test_double_free_is_refused_and_changes_nothing():
    pool = RowPool(8)
    start = pool.allocate(4)
    pool.free(start)
    with pytest.raises(ValueError, match=r"row 0 \(freed twice, or never allocated\)$"):
        pool.free(start)
    assert pool.free_rows == 8 and pool.allocate(8) == 0
    with pytest.raises(ValueError, match=r"no allocated run starting at row 1 "):
        pool.free(1)  # inside a run, not its start


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rows": 0}, ValueError, r"^rows must be at least 1, not 0$"),
        ({"rows": 4.0}, TypeError, r"^rows must be an int, not 4\.0$"),
        ({"rows": 4, "banks": 5}, ValueError, r"^banks must be in \[1, 4\] for 4 rows, not 5$"),
        ({"rows": 4, "banks": 0}, ValueError, r"^banks must be in \[1, 4\] for 4 rows, not 0$"),
        ({"rows": 4, "name": 3}, TypeError, r"^name must be a str, not 3$"),
    ],
)
def test_constructor_validates(kwargs, error, message):
    with pytest.raises(error, match=message):
        RowPool(**kwargs)
