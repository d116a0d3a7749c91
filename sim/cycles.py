"""Cycle accounting in SCALE-Sim's convention, and array utilization.

SCALE-Sim (v2) models a GEMM on an R x C array as a number of folds, each of which fills the
array, streams T operand rows through and drains:

    dataflow  Sr  Sc  T
    os        M   N   K      (output-stationary: each PE owns one output)
    ws        K   N   M      (weight-stationary: each PE holds one weight)

    folds          = ceil(Sr / R) * ceil(Sc / C)
    cycles_per_fold = 2R + C + T - 2
    total          = folds * cycles_per_fold - 1

(SCALE-Sim's code uses R + C + T - 2 per fold for OS, a known bug; we use the formula above for
both dataflows.) This is reported beside our true RTL cycle counts so users can compare with
published SCALE-Sim numbers; it is not a model of Tessera's array.
"""

from __future__ import annotations

import math

from hdl.config import AccelConfig, Dataflow
from hdl.sparse import LATENCY as SPARSE_LATENCY


def _check_shape(m: int, n: int, k: int) -> None:
    for name, value in (("M", m), ("N", n), ("K", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"GEMM dimension {name} must be a positive int, not {value!r}")


def scalesim_cycles(m: int, n: int, k: int, config: AccelConfig) -> int:
    """Total cycles of an M x K by K x N GEMM in SCALE-Sim's convention (module docstring)."""
    _check_shape(m, n, k)
    rows, cols = config.rows, config.cols
    if config.dataflow is Dataflow.OS:
        spatial_rows, spatial_cols, temporal = m, n, k
    else:
        spatial_rows, spatial_cols, temporal = k, n, m
    folds = math.ceil(spatial_rows / rows) * math.ceil(spatial_cols / cols)
    return folds * (2 * rows + cols + temporal - 2) - 1


def utilization(m: int, n: int, k: int, cycles: int, config: AccelConfig) -> float:
    """Fraction of the array's MAC slots doing useful work: M*N*K / (cycles * R * C)."""
    _check_shape(m, n, k)
    if cycles < 1:
        raise ValueError(f"cycles must be positive, not {cycles!r}")
    return m * n * k / (cycles * config.macs)


def array_cycles(m: int, n: int, k: int, config: AccelConfig) -> int:
    """Exact RTL cycles of an M x K by K x N GEMM on `hdl.systolic.SystolicArray`.

    Counted from the first cycle inputs are offered (operands always valid, output always
    ready) to the cycle the last output beat transfers, inclusive; the tiling is that of
    `sim.array_program.gemm_program`. See docs/systolic-array.md for the derivation.

    Weight-stationary, T = ceil(K/R) * ceil(N/C) weight tiles of M activation rows each:
    weight tile i loads in R cycles from L_i into bank i mod 2, its rows stream from A_i, and its
    bank is free again at F_i = A_i + M + R + C - 1 (its last row has passed every PE):

        L_0 = 0,  L_i = max(L_{i-1} + R, F_{i-2})
        A_0 = R,  A_i = max(A_{i-1} + M, L_i + R)
        cycles = A_{T-1} + M + R + C + 1

    which for M >= 2R + C - 1 (weight loads fully hidden) is T*M + 2R + C + 1.

    Output-stationary, T = ceil(M/R) * ceil(N/C) output tiles of K beats, one every
    P = max(K, R) cycles:

        cycles = (T - 1) * P + K + 2R + C + 1
    """
    _check_shape(m, n, k)
    rows, cols = config.rows, config.cols
    if config.dataflow is Dataflow.OS:
        tiles = math.ceil(m / rows) * math.ceil(n / cols)
        return (tiles - 1) * max(k, rows) + k + 2 * rows + cols + 1
    tiles = math.ceil(k / rows) * math.ceil(n / cols)
    if m >= 2 * rows + cols - 1:
        return tiles * m + 2 * rows + cols + 1
    load, start, frees = 0, rows, [0, 0]
    for i in range(tiles):
        if i > 0:
            load = max(load + rows, frees[i % 2])
            start = max(start + m, load + rows)
        frees[i % 2] = start + m + rows + cols - 1
    return start + m + rows + cols + 1


def sparse_cycles(passes: list[tuple[int, int]]) -> int:
    """Exact RTL cycles of a program on `hdl.sparse.SparseEngine`, inputs always valid and
    ``out`` always ready, from the first cycle inputs are offered to the last output transfer.

    `passes` lists each pass's (``acts`` beats K_p, ``nonzeros`` beats B_p), as
    `sim.sparse_program.pass_beats` gives them. Pass p's block loads into bank p mod 2 from cycle
    S_p to E_p = S_p + K_p - 1, once the previous load is done and the bank's earlier pass has
    taken its final beat (in cycle D_{p-2}); its beats go in from cycle U_p, after its load and
    the previous pass:

        S_0 = 0,  S_p = max(E_{p-1}, D_{p-2}) + 1
        U_p = max(E_p, D_{p-1}) + 1,  D_p = U_p + B_p - 1
        cycles = D_{last} + 1 + 3        (3 = `hdl.sparse.LATENCY`, beat -> ``out``)

    For one pass that is K + B + 3, and B = sum over rows of max(1, ceil(nnz_row / G)), so
    between nnz / G and nnz / G + N. Once every B_p >= K_p (compute-bound), the loads hide
    behind the compute and the total is K_0 + sum_p B_p + 3.
    """
    if not passes:
        raise ValueError("a sparse program has at least one pass")
    load_end = -1  # E_{p-1}
    done = [-1, -1]  # D_{p-2}, D_{p-1} by parity of p
    for p, (load_beats, beats) in enumerate(passes):
        if load_beats < 1 or beats < 1:
            raise ValueError(f"pass {p} has {load_beats} acts and {beats} nonzeros beats")
        load_end = max(load_end, done[p % 2]) + load_beats
        done[p % 2] = max(load_end, done[1 - p % 2]) + beats
    return done[(len(passes) - 1) % 2] + 1 + SPARSE_LATENCY
