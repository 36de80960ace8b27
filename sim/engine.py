"""Cycles of the engine (``hw.engine.Engine``) per command and per GEMM, exactly as the RTL runs them.

Counting: cycles from the clock edge that samples ``start`` to the edge after which ``done`` is
high (both excluded/included as the testbench counts: ``done`` first seen after edge ``start +
cycles``), with the FP32 streams always valid and the C stream always ready. The testbenches
(tb/test_engine.py) check every command of every GEMM they run against these functions.

- Amax pass of an operand of ``lines x K``: its ``W = lines * K / q`` words transfer one per
  cycle from the edge after ``start``, and ``done`` follows the last one by one register:
  ``W + 1``.
- Convert pass: the same words, then the quantization unit's group buffer (``words_per_group +
  1`` cycles of latency, ``hw.quant_unit``) and one beat-writer register: ``W + words_per_group
  + LOAD_OVERHEAD``.
- GEMM: ``ISSUE_LATENCY`` (command register, synchronous buffer read), the array's tiles back to
  back (``hw.array.timing.ArrayTiming.tiles_cycles_from_beats``: ``ceil(M/R) * ceil(N/C)`` tiles
  of ``(K / group_len) * ceil(group_len / L)`` beats, inclusive count), the converter's
  latency (``done`` is set by the edge that takes the final row).

The buffer refills (the two convert passes) do not overlap the GEMM: an engine GEMM costs the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from hw.array.timing import ArrayTiming
from hw.convert.converter import OutputConverter
from hw.engine.config import EngineConfig
from hw.engine.engine import Engine

__all__ = ["EngineCycles", "GemmCycles"]

#: Cycles of a convert pass beyond its input words and one group's words.
LOAD_OVERHEAD = 2


@dataclass(frozen=True)
class GemmCycles:
    """Cycles of one whole GEMM on the engine, by command, and the array's utilization."""

    amax_a: int
    amax_w: int
    load_a: int
    load_w: int
    gemm: int
    macs: int
    peak_macs_per_cycle: int

    @property
    def quantization(self) -> int:
        return self.amax_a + self.amax_w + self.load_a + self.load_w

    @property
    def total(self) -> int:
        return self.quantization + self.gemm

    @property
    def array_utilization(self) -> Fraction:
        """Useful MACs over the array's peak during the GEMM command alone."""
        return Fraction(self.macs, self.gemm * self.peak_macs_per_cycle)

    @property
    def utilization(self) -> Fraction:
        """Useful MACs over the array's peak over the whole GEMM, quantization included."""
        return Fraction(self.macs, self.total * self.peak_macs_per_cycle)


@dataclass(frozen=True)
class EngineCycles:
    config: EngineConfig
    pe_latency: int

    @classmethod
    def of(cls, config: EngineConfig) -> EngineCycles:
        return cls(config, Engine.pe_latency_of(config))

    @property
    def timing(self) -> ArrayTiming:
        cfg = self.config
        return ArrayTiming(cfg.rows, cfg.cols, self.pe_latency, cfg.lanes)

    def _words(self, lines: int, k: int) -> int:
        if k % self.config.group_len:
            raise ValueError(f"k {k} must be a multiple of group_len {self.config.group_len}")
        return lines * k // self.config.quant_lanes

    def amax(self, lines: int, k: int) -> int:
        return self._words(lines, k) + 1

    def load(self, lines: int, k: int) -> int:
        return self._words(lines, k) + self.config.group_len // self.config.quant_lanes + LOAD_OVERHEAD

    def gemm(self, m: int, n: int, k: int) -> int:
        cfg = self.config
        cfg.check_gemm(m, n, k)
        tiles = -(-m // cfg.rows) * -(-n // cfg.cols)
        beats = cfg.beats_per_line(k)
        array = self.timing.tiles_cycles_from_beats([beats] * tiles)
        # the array's count includes its first-transfer cycle; done is set by the edge of the
        # final row's transfer out of the converter
        return Engine.ISSUE_LATENCY - 1 + array + OutputConverter.LATENCY

    def whole(self, m: int, n: int, k: int) -> GemmCycles:
        return GemmCycles(self.amax(m, k), self.amax(n, k), self.load(m, k), self.load(n, k), self.gemm(m, n, k),
                          m * n * k, self.timing.macs_per_cycle)
