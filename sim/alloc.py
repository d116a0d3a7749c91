"""Pool allocators for rows of the accelerator's on-chip memories (host side).

A `RowPool` hands out contiguous runs of rows of one memory (a scratchpad or the accumulator
memory) first fit, takes them back in any order and coalesces adjacent free runs, so a scheduler
can reuse rows without tracking addresses by hand. Each scratchpad is two banks, the lower and
the upper half of its rows (docs/isa.md); `RowPool.allocate` can be confined to one bank, which
is how double-buffered tiles are placed in opposite banks.

Example::

    pool = RowPool.accumulator(config)
    first = pool.allocate(16)
    second = pool.allocate(16)
    pool.free(first)
    assert pool.allocate(8) == first  # first fit reuses the freed run
"""

from __future__ import annotations

import bisect

from hdl.config import AccelConfig
from hdl.isa import Geometry

#: Banks of each scratchpad (docs/isa.md: lower and upper half of its rows).
SCRATCHPAD_BANKS = 2


def _require_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    return value


class PoolExhaustedError(ValueError):
    """`RowPool.allocate` found no free run of the rows asked for."""


class RowPool:
    """First-fit allocator of the rows [0, `rows`) of one memory, optionally split into banks.

    Parameters
    ----------
    rows : int
        Rows of the memory, at least 1.
    banks : int
        Equal banks the rows are split into: bank b holds rows [b * size, (b + 1) * size) with
        size = rows // banks (at least 1). Rows past the last bank (when `banks` does not divide
        `rows`) are only handed out by an allocation without a bank.
    name : str
        What the rows belong to, for messages (e.g. ``"weight scratchpad"``).

    Raises
    ------
    TypeError
        `rows` or `banks` is not an int, or `name` is not a str.
    ValueError
        `rows` < 1, `banks` < 1, or `banks` > `rows`.
    """

    def __init__(self, rows: int, *, banks: int = 1, name: str = "memory"):
        rows = _require_int("rows", rows)
        banks = _require_int("banks", banks)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {name!r}")
        if rows < 1:
            raise ValueError(f"rows must be at least 1, not {rows!r}")
        if not 1 <= banks <= rows:
            raise ValueError(f"banks must be in [1, {rows}] for {rows} rows, not {banks!r}")
        self.rows = rows
        self.banks = banks
        self.name = name
        self._free: list[tuple[int, int]] = [(0, rows)]  # sorted, disjoint, never adjacent
        self._allocated: dict[int, int] = {}  # start -> stop

    @classmethod
    def activations(cls, config: AccelConfig) -> RowPool:
        """The activation scratchpad's rows (R bytes each), in its two banks."""
        rows = Geometry.of(config).act_rows
        return cls(rows, banks=SCRATCHPAD_BANKS, name="activation scratchpad")

    @classmethod
    def weights(cls, config: AccelConfig) -> RowPool:
        """The weight scratchpad's rows (C bytes each), in its two banks."""
        rows = Geometry.of(config).wgt_rows
        return cls(rows, banks=SCRATCHPAD_BANKS, name="weight scratchpad")

    @classmethod
    def accumulator(cls, config: AccelConfig) -> RowPool:
        """The accumulator memory's rows (C int32 each), one bank."""
        return cls(config.acc_rows, name="accumulator")

    def bank_rows(self, bank: int) -> range:
        """The rows of `bank` (0 is the lowest).

        Raises
        ------
        TypeError, ValueError
            `bank` is not an int in [0, `banks`).
        """
        bank = _require_int("bank", bank)
        if not 0 <= bank < self.banks:
            raise ValueError(f"bank must be in [0, {self.banks}), not {bank!r}")
        size = self.rows // self.banks
        return range(bank * size, (bank + 1) * size)

    @property
    def free_rows(self) -> int:
        """Rows not allocated, in total."""
        return sum(stop - start for start, stop in self._free)

    @property
    def allocated(self) -> dict[int, int]:
        """Allocated runs: start row -> number of rows (a copy)."""
        return {start: stop - start for start, stop in self._allocated.items()}

    def allocate(self, n_rows: int, *, bank: int | None = None) -> int:
        """Allocate `n_rows` contiguous rows, the lowest run that fits, and return its first row.

        Parameters
        ----------
        n_rows : int
            Rows wanted, at least 1.
        bank : int or None
            Confine the run to this bank's rows (`bank_rows`); None: anywhere.

        Raises
        ------
        TypeError
            `n_rows` or `bank` is not an int.
        ValueError
            `n_rows` < 1, `bank` out of range, or no free run of `n_rows` rows
            (`PoolExhaustedError`; the message names the request, the rows free and the largest
            free run there).
        """
        n_rows = _require_int("n_rows", n_rows)
        if n_rows < 1:
            raise ValueError(f"n_rows must be at least 1, not {n_rows!r}")
        span = range(self.rows) if bank is None else self.bank_rows(bank)
        for index, (start, stop) in enumerate(self._free):
            first = max(start, span.start)
            if min(stop, span.stop) - first >= n_rows:
                pieces = [(start, first), (first + n_rows, stop)]
                self._free[index : index + 1] = [(a, b) for a, b in pieces if b > a]
                self._allocated[first] = first + n_rows
                return first
        raise PoolExhaustedError(self._full_message(n_rows, bank, span))

    def _full_message(self, n_rows: int, bank: int | None, span: range) -> str:
        """Why `n_rows` rows do not fit in `span`."""
        pieces = [min(stop, span.stop) - max(start, span.start) for start, stop in self._free]
        pieces = [size for size in pieces if size > 0]
        where = self.name if bank is None else f"{self.name} bank {bank}"
        return (
            f"no {n_rows} free contiguous rows in {where} (rows [{span.start}, {span.stop})): "
            f"{sum(pieces)} rows free, the largest free run is {max(pieces, default=0)} rows"
        )

    def free(self, start: int) -> None:
        """Return the run that `allocate` returned as `start`; adjacent free runs merge.

        Raises
        ------
        TypeError
            `start` is not an int.
        ValueError
            No allocated run starts at `start` (freed twice, or never allocated).
        """
        start = _require_int("start", start)
        if start not in self._allocated:
            raise ValueError(
                f"{self.name} has no allocated run starting at row {start!r} "
                "(freed twice, or never allocated)"
            )
        stop = self._allocated.pop(start)
        index = bisect.bisect(self._free, (start, stop))
        if index < len(self._free) and self._free[index][0] == stop:
            stop = self._free.pop(index)[1]
        if index > 0 and self._free[index - 1][1] == start:
            index -= 1
            start = self._free.pop(index)[0]
        self._free.insert(index, (start, stop))
