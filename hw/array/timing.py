"""Exact cycle counts of the output-stationary MLS array (pure Python, no Amaranth).

This is THE timing function: ``sim/cycles.py`` builds the layer-level model on it, and the array
testbenches check every tile they run against it, cycle for cycle.

Tile protocol (``hw/array/array.py``)
-------------------------------------
- Input streams ``a`` and ``w``: one *beat* is one reduction step k. ``a.payload`` holds column
  k of the A tile (R elements with their group exponents) plus ``last`` (k = K - 1); ``w.payload``
  holds row k of the W tile (C elements with their group exponents). The two streams are joined:
  a beat *transfers* in a cycle where ``a.valid & a.ready & w.valid & w.ready`` (the array drives
  both readies together). The first beat after reset or after a ``last`` beat starts a new tile
  (its PEs restart their accumulators; no separate clear is needed).
- Output stream ``c``: R beats per tile, row 0 first; each beat is one row of C accumulators
  (``acc_bits`` two's complement) with per-PE sticky overflow flags, ``last`` on row R - 1.
- Double buffering: each PE copies its accumulator into a result register on the tile's last
  beat, so tile n + 1 computes while tile n drains. Only the LAST beat of tile n + 1 waits (its
  ``ready`` is held low) until the final row of tile n transfers (that same cycle is allowed).

What is counted
---------------
Cycles are clock cycles counted *inclusively* from the cycle in which the first input beat of
the first tile transfers to the cycle in which the last output beat (row R - 1) of the last tile
transfers, when the producers are always valid and the consumer is always ready. Row r of a tile
transfers exactly ``drain_cycles - (R - 1 - r)`` cycles after the cycle of that tile's last input
beat: rows leave one per cycle in the same order the skew completes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ArrayTiming", "PE_LATENCY", "tile_phases", "tile_cycles", "tiles_cycles"]

#: Cycles from a PE seeing an operand pair to its accumulator/result register holding the sum:
#: one product register (multiply + align) and one accumulator register.
PE_LATENCY = 2


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class ArrayTiming:
    """Timing of an R x C output-stationary array whose PEs have ``pe_latency`` stages."""

    rows: int
    cols: int
    pe_latency: int = PE_LATENCY

    def __post_init__(self) -> None:
        _check_positive("rows", self.rows)
        _check_positive("cols", self.cols)
        _check_positive("pe_latency", self.pe_latency)

    @property
    def drain_cycles(self) -> int:
        """Cycles from a tile's last input beat to its last output beat (exclusive of the former).

        Skew to the far corner (R - 1 + C - 1), the PE pipeline (``pe_latency``) and one register
        that marks a row complete; row r leaves in the cycle after PE(r, C - 1) holds its result,
        one row per cycle.
        """
        return self.rows + self.cols + self.pe_latency - 1

    @property
    def macs_per_cycle(self) -> int:
        """Steady-state throughput: one MAC per PE per cycle."""
        return self.rows * self.cols

    def tile_cycles(self, k: int) -> int:
        """Cycles of ONE tile of reduction length ``k`` (first input transfer .. last output transfer, inclusive)."""
        _check_positive("reduction length k", k)
        return k + self.drain_cycles

    def last_beat_interval(self, k: int) -> int:
        """Cycles between the last input beats of two back-to-back tiles, the second of length ``k``."""
        _check_positive("reduction length k", k)
        return max(k, self.drain_cycles)

    def tiles_cycles(self, ks: Iterable[int]) -> int:
        """Cycles of back-to-back tiles of reduction lengths ``ks`` (first input transfer of the first
        tile .. last output transfer of the last tile, inclusive), inputs always valid, output always ready."""
        ks = list(ks)
        if not ks:
            raise ValueError("tiles_cycles needs at least one tile")
        last_beat = _check_positive("reduction length k", ks[0]) - 1
        for k in ks[1:]:
            last_beat += self.last_beat_interval(k)
        return last_beat + self.drain_cycles + 1

    def phases(self, k: int) -> tuple[int, int]:
        """``(compute, drain)`` = ``(k, drain_cycles)``: one tile costs ``compute + drain``; N equal
        back-to-back tiles cost ``N * max(compute, drain) + min(compute, drain)``."""
        _check_positive("reduction length k", k)
        return k, self.drain_cycles


def tile_phases(k: int, rows: int, cols: int, pe_latency: int = PE_LATENCY) -> tuple[int, int]:
    """``ArrayTiming(rows, cols, pe_latency).phases(k)`` (the function ``sim/cycles.py`` calls)."""
    return ArrayTiming(rows, cols, pe_latency).phases(k)


def tile_cycles(k: int, rows: int, cols: int, pe_latency: int = PE_LATENCY) -> int:
    """``ArrayTiming(rows, cols, pe_latency).tile_cycles(k)``."""
    return ArrayTiming(rows, cols, pe_latency).tile_cycles(k)


def tiles_cycles(ks: Iterable[int], rows: int, cols: int, pe_latency: int = PE_LATENCY) -> int:
    """``ArrayTiming(rows, cols, pe_latency).tiles_cycles(ks)``."""
    return ArrayTiming(rows, cols, pe_latency).tiles_cycles(ks)
