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

Beats and lanes
---------------
An array of L-lane dot-product PEs (``hw.pe.dot_pe.MLSDotPE``) takes one *beat* per cycle as
above, but a beat now carries L elements of one *chunk* of the reduction per A row and W column
(plus the chunk's one group exponent per line), so every count above is in beats, not in
elements. A beat never mixes two chunks and the last beat of a chunk is zero-padded (docs/numerics.md
§3.1, ``model.beats``), so a tile of reduction length k whose groups change every ``k_chunk``
elements takes ``model.beats.count_beats(k, k_chunk, L)`` = sum over chunks of ceil(chunk / L)
beats (the one beat formula; ``model.beats.pack_beats`` builds exactly that many). The drain is
unchanged in form; only ``pe_latency`` grows with the dot PE's pipelined adder tree. With
``lanes = 1`` a beat is one element, beats = k whatever the chunks, and every count is the
scalar array's. Lane utilization of a tile is k / (L * beats).

- Element API: ``tile_beats(k, k_chunk)``, ``tile_cycles(k, k_chunk)``, ``tiles_cycles(ks,
  k_chunk)``, ``phases(k, k_chunk)``, ``last_beat_interval(k, k_chunk)``, ``lane_utilization(k,
  k_chunk)``. ``k_chunk`` may be left out only for ``lanes = 1`` (chunks do not matter there);
  pass ``k_chunk=k`` for a tile that is one chunk.
- Beat API, for tiles packed by ``model.beats.pack_beats`` (any chunk structure):
  ``tile_cycles_from_beats(stream.beats)``, ``tiles_cycles_from_beats([...])``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from model.beats import count_beats

__all__ = ["ArrayTiming", "PE_LATENCY", "tile_phases", "tile_cycles", "tiles_cycles"]

#: Cycles from a PE seeing an operand pair to its accumulator/result register holding the sum:
#: one product register (multiply + align) and one accumulator register (the scalar MLS PE and
#: the baseline PEs; ``MLSDotPE.latency`` adds its adder-tree registers).
PE_LATENCY = 2


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class ArrayTiming:
    """Timing of an R x C output-stationary array whose PEs have ``pe_latency`` stages and take
    ``lanes`` element pairs per beat (1: the scalar PE)."""

    rows: int
    cols: int
    pe_latency: int = PE_LATENCY
    lanes: int = 1

    def __post_init__(self) -> None:
        _check_positive("rows", self.rows)
        _check_positive("cols", self.cols)
        _check_positive("pe_latency", self.pe_latency)
        _check_positive("lanes", self.lanes)

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
        """Steady-state peak throughput: one beat per PE per cycle, ``lanes`` MACs per beat."""
        return self.rows * self.cols * self.lanes

    # -- beats -----------------------------------------------------------------------------------
    def tile_beats(self, k: int, k_chunk: int | None = None) -> int:
        """Input beats of ONE tile of reduction length ``k`` whose groups change every ``k_chunk``
        elements: ``model.beats.count_beats(k, k_chunk, lanes)`` (= k for one lane).

        ``k_chunk`` may be omitted only when ``lanes == 1``; ``k_chunk=k`` is a tile of one chunk."""
        if k_chunk is None:
            if self.lanes != 1:
                raise ValueError(f"a {self.lanes}-lane array needs k_chunk (the chunk length along k) to count "
                                 f"beats; pass k_chunk=k for a tile that is one chunk")
            return count_beats(k, _check_positive("reduction length k", k), 1)
        return count_beats(k, k_chunk, self.lanes)

    def lane_utilization(self, k: int, k_chunk: int | None = None) -> Fraction:
        """Useful element pairs over lane slots of a tile, ``k / (lanes * beats)`` (exact)."""
        return Fraction(k, self.lanes * self.tile_beats(k, k_chunk))

    # -- cycles from beat counts (the protocol; any lanes) ----------------------------------------
    def tile_cycles_from_beats(self, beats: int) -> int:
        """Cycles of ONE tile of ``beats`` input beats (first input transfer .. last output transfer, inclusive)."""
        return _check_positive("beats", beats) + self.drain_cycles

    def tiles_cycles_from_beats(self, beats: Iterable[int]) -> int:
        """Cycles of back-to-back tiles of ``beats`` input beats each (first input transfer of the first
        tile .. last output transfer of the last tile, inclusive), inputs always valid, output always ready.

        The last beat of tile n + 1 comes ``max(beats[n + 1], drain_cycles)`` cycles after the last
        beat of tile n: its own beats, or the wait for tile n's final row (double buffering)."""
        beats = list(beats)
        if not beats:
            raise ValueError("tiles_cycles needs at least one tile")
        last_beat = _check_positive("beats", beats[0]) - 1
        for b in beats[1:]:
            last_beat += max(_check_positive("beats", b), self.drain_cycles)
        return last_beat + self.drain_cycles + 1

    # -- cycles from reduction lengths -------------------------------------------------------------
    def tile_cycles(self, k: int, k_chunk: int | None = None) -> int:
        """Cycles of ONE tile of reduction length ``k``: ``tile_beats(k, k_chunk) + drain_cycles``."""
        return self.tile_cycles_from_beats(self.tile_beats(k, k_chunk))

    def last_beat_interval(self, k: int, k_chunk: int | None = None) -> int:
        """Cycles between the last input beats of two back-to-back tiles, the second of length ``k``:
        ``max(tile_beats(k, k_chunk), drain_cycles)``."""
        return max(self.tile_beats(k, k_chunk), self.drain_cycles)

    def tiles_cycles(self, ks: Iterable[int], k_chunk: int | Iterable[int] | None = None) -> int:
        """Cycles of back-to-back tiles of reduction lengths ``ks``: :meth:`tiles_cycles_from_beats`
        of their beats. ``k_chunk`` is one chunk length for every tile or one per tile."""
        ks = list(ks)
        if k_chunk is None or isinstance(k_chunk, int):
            chunks = [k_chunk] * len(ks)
        else:
            chunks = list(k_chunk)
            if len(chunks) != len(ks):
                raise ValueError(f"k_chunk has {len(chunks)} entries for {len(ks)} tiles")
        return self.tiles_cycles_from_beats(self.tile_beats(k, c) for k, c in zip(ks, chunks))

    def phases(self, k: int, k_chunk: int | None = None) -> tuple[int, int]:
        """``(compute, drain)`` = ``(tile_beats(k, k_chunk), drain_cycles)``: one tile costs
        ``compute + drain``; N equal back-to-back tiles cost ``N * max(compute, drain) + min(compute, drain)``."""
        return self.tile_beats(k, k_chunk), self.drain_cycles


def tile_phases(k: int, rows: int, cols: int, pe_latency: int = PE_LATENCY, *, lanes: int = 1,
                k_chunk: int | None = None) -> tuple[int, int]:
    """``ArrayTiming(rows, cols, pe_latency, lanes).phases(k, k_chunk)`` (the function ``sim/cycles.py`` calls)."""
    return ArrayTiming(rows, cols, pe_latency, lanes).phases(k, k_chunk)


def tile_cycles(k: int, rows: int, cols: int, pe_latency: int = PE_LATENCY, *, lanes: int = 1,
                k_chunk: int | None = None) -> int:
    """``ArrayTiming(rows, cols, pe_latency, lanes).tile_cycles(k, k_chunk)``."""
    return ArrayTiming(rows, cols, pe_latency, lanes).tile_cycles(k, k_chunk)


def tiles_cycles(ks: Iterable[int], rows: int, cols: int, pe_latency: int = PE_LATENCY, *, lanes: int = 1,
                 k_chunk: int | Iterable[int] | None = None) -> int:
    """``ArrayTiming(rows, cols, pe_latency, lanes).tiles_cycles(ks, k_chunk)``."""
    return ArrayTiming(rows, cols, pe_latency, lanes).tiles_cycles(ks, k_chunk)
