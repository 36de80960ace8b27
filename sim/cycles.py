"""Layer-level cycle and traffic model of the output-stationary systolic array (DESIGN §5, §7).

A GEMM ``C[M, N] = A[M, K] @ B[K, N]`` runs on an R x C array as ``ceil(M/R) * ceil(N/C)``
folds. Each fold is one output tile: A rows stream in from the left and B columns from the top,
skewed by one cycle per row/column; every PE accumulates its output over K, then the tile
drains. The cycles of ONE tile come from the RTL's own timing function,
``hw.array.timing.tile_phases`` (the function the array testbenches check against the measured
RTL), so the model and the hardware agree tile by tile; this module only adds folds, edge tiles
(a partial tile takes a full tile's cycles: skew and drain depend on R and C only), the overlap
of one tile's drain with the next tile's compute, utilization and traffic.

Traffic is counted in elements here and turned into **bits** by the energy model with each
design's widths: every fold streams its ``r x K`` slice of A and ``K x c`` slice of B from the
operand SRAMs and writes its ``r x c`` outputs once (output-stationary: partial sums never
leave the PE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw.array.timing import tile_phases

from .workloads import Gemm

__all__ = ["DATAFLOWS", "ArrayConfig", "GemmCycles", "gemm_cycles", "network_cycles", "tile_timing",
           "ws_fold_phases"]

DATAFLOWS = ("os", "ws")


@dataclass(frozen=True)
class ArrayConfig:
    """An R x C array. ``dataflow`` ``"os"`` (output-stationary, the RTL) or ``"ws"``
    (weight-stationary, model only: no RTL implements it). ``overlap_drain`` overlaps a fold's
    drain (OS: double-buffered results) or its weight load (WS: double-buffered weights) with the
    neighbouring fold's compute."""

    rows: int = 16
    cols: int = 16
    overlap_drain: bool = True
    dataflow: str = "os"

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"array {name} must be an int, not {value!r}")
            if not 1 <= value <= 4096:
                raise ValueError(f"array {name} must be in [1, 4096], got {value}")

    @classmethod
    def parse(cls, text: str | ArrayConfig) -> ArrayConfig:
        """``"16x16"`` -> ArrayConfig(16, 16); ``"16x16-ws"`` is weight-stationary."""
        if isinstance(text, ArrayConfig):
            return text
        size, _, flow = str(text).lower().strip().partition("-")
        parts = size.split("x")
        try:
            rows, cols = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"array size {text!r} must look like RxC[-os|-ws], e.g. 16x16") from None
        return cls(rows, cols, dataflow=flow or "os")

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}" + ("" if self.dataflow == "os" else f"-{self.dataflow}")


@dataclass(frozen=True)
class GemmCycles:
    cycles: int
    folds: int
    macs: int
    pe_count: int
    a_reads: int  # elements streamed from the A buffer
    b_reads: int
    c_writes: int
    psum_reads: int = 0  # WS only: partial sums read back / written between K folds
    psum_writes: int = 0

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * self.pe_count)


def tile_timing(k: int, rows: int, cols: int) -> tuple[int, int]:
    """``(compute, drain)`` cycles of one tile: ``hw.array.timing.tile_phases``, the RTL's own
    timing function (one tile costs compute + drain)."""
    return tile_phases(k, rows, cols)


def gemm_cycles(gemm: Gemm, array: ArrayConfig) -> GemmCycles:
    """Cycles and element traffic of one GEMM on an output-stationary array.

    Cycles run from the first input beat to the last output row of the GEMM. With
    ``overlap_drain`` the folds go back to back (the RTL's double-buffered results), so each
    fold after the first adds ``max(compute, drain)``: ``hw.array.timing.tiles_cycles`` of
    ``folds`` equal tiles in closed form. Without it every fold pays ``compute + drain``. Each
    GEMM starts on an empty array: the next layer's GEMM needs this one's outputs."""
    if array.dataflow == "ws":
        return _ws_gemm_cycles(gemm, array)
    R, C = array.rows, array.cols
    fm, fn = math.ceil(gemm.m / R), math.ceil(gemm.n / C)
    folds = fm * fn
    compute, drain = tile_timing(gemm.k, R, C)
    if array.overlap_drain:
        cycles = (folds - 1) * max(compute, drain) + compute + drain
    else:
        cycles = folds * (compute + drain)
    return GemmCycles(cycles, folds, gemm.macs, R * C,
                      a_reads=fn * gemm.m * gemm.k, b_reads=fm * gemm.k * gemm.n, c_writes=gemm.m * gemm.n)


def ws_fold_phases(m: int, rows: int, cols: int) -> tuple[int, int, int]:
    """``(load, stream, drain)`` of one weight-stationary fold streaming ``m`` rows of A.

    A K x N slice of W (R x C, zero-padded) is shifted in from the top, one row per cycle (R
    cycles). Row m of A enters array row i at cycle ``start + m + i`` (skew) and moves right one
    PE per cycle; partial sums move down one PE per cycle (a one-cycle MAC per PE), so column j
    of A-row m leaves the bottom at ``start + m + R + j``: after the last row enters, the fold
    drains for ``R + C - 1`` cycles."""
    return rows, m, rows + cols - 1


def _ws_gemm_cycles(gemm: Gemm, array: ArrayConfig) -> GemmCycles:
    """Weight-stationary: folds over (K / R) x (N / C) weight tiles, each streaming all M rows.

    With double-buffered weights the next fold's load overlaps this fold's streaming, so a fold
    starts ``max(M, R)`` cycles after the previous one; the partial sums of all K folds but the
    first are read back and re-written at accumulator width."""
    R, C = array.rows, array.cols
    fk, fn = math.ceil(gemm.k / R), math.ceil(gemm.n / C)
    folds = fk * fn
    load, stream, drain = ws_fold_phases(gemm.m, R, C)
    if array.overlap_drain:
        cycles = load + (folds - 1) * max(stream, load) + stream + drain
    else:
        cycles = folds * (load + stream + drain)
    partial = (fk - 1) * gemm.m * gemm.n
    return GemmCycles(cycles, folds, gemm.macs, R * C, a_reads=fn * gemm.m * gemm.k,
                      b_reads=gemm.k * gemm.n, c_writes=gemm.m * gemm.n,
                      psum_reads=partial, psum_writes=partial)


def network_cycles(gemms: list[Gemm], array: ArrayConfig) -> list[GemmCycles]:
    return [gemm_cycles(g, array) for g in gemms]
