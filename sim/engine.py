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

__all__ = ["EngineCycles", "GemmCycles", "EnginePlan", "plan", "render_report", "main"]

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


# -- GEMMs larger than the buffers ------------------------------------------------------------
@dataclass(frozen=True)
class EnginePlan:
    """How a host runs ``C[M, N] = A[M, K] x W[K, N]`` on an engine whose buffers hold less:
    one amax pass over each whole operand (the tensor scale is per tensor), then for every block
    of at most ``n_block`` columns of W: load it, and for every block of at most ``m_block`` rows
    of A: load it and run the GEMM. Nothing overlaps (the engine runs one command at a time)."""

    m: int
    n: int
    k: int
    m_block: int
    n_block: int
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


def plan(cycles: EngineCycles, m: int, n: int, k: int) -> EnginePlan:
    """The cycles of a GEMM of any M and N (K must fit one buffer line: ``k <= max_k``)."""
    cfg = cycles.config
    if k % cfg.group_len:
        raise ValueError(f"k {k} must be a multiple of group_len {cfg.group_len}")
    if not 1 <= k <= cfg.max_k:
        raise ValueError(f"k {k} must be in [1, {cfg.max_k}] (one line per buffer bank; a longer K needs a "
                         f"partial-sum path the engine does not have)")
    bpl = cfg.beats_per_line(k)
    m_block = min(cfg.rows * (cfg.a_depth // bpl), cfg.max_m)
    n_block = min(cfg.cols * (cfg.w_depth // bpl), cfg.max_n)
    quant = cycles.amax(m, k) + cycles.amax(n, k)
    gemm = 0
    for nb in _blocks(n, n_block):
        quant += cycles.load(nb, k)
        for mb in _blocks(m, m_block):
            quant += cycles.load(mb, k)
            gemm += cycles.gemm(mb, nb, k)
    return EnginePlan(m, n, k, m_block, n_block, quant + gemm, quant, gemm, m * n * k, cycles.timing.macs_per_cycle)


# -- report (reports/engine.md, reports/engine.csv) -------------------------------------------
#: The engine configurations of the report: the e2m1g3 preset's 8 x 8 array, scalar PEs and
#: 9-lane dot PEs (a beat = one input channel's 3 x 3 taps), groups of 9 along K, 4096-beat banks.
REPORT_CONFIGS = {
    "scalar 8x8 L=1 q=1": dict(rows=8, cols=8, lanes=1, group_len=9, quant_lanes=1, a_depth=4096, w_depth=4096),
    "dot 8x8 L=9 q=9": dict(rows=8, cols=8, lanes=9, group_len=9, quant_lanes=9, a_depth=4096, w_depth=4096),
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
            if g.k % cfg.group_len or g.k > cfg.max_k:
                if name == next(iter(REPORT_CONFIGS)):
                    skipped.append(f"{g.layer} {g.pass_} (M={g.m}, N={g.n}, K={g.k})")
                continue
            p = plan(model, g.m, g.n, g.k)
            rows.append({"engine": name, "layer": g.layer, "pass": g.pass_, "m": g.m, "n": g.n, "k": g.k,
                         "m_block": p.m_block, "n_block": p.n_block, "quant_cycles": p.quant_cycles,
                         "gemm_cycles": p.gemm_cycles, "cycles": p.cycles, "macs": p.macs,
                         "array_utilization": _pct(p.array_utilization), "utilization": _pct(p.utilization)})
    return rows, skipped


def render_report(network: str = "resnet20") -> tuple[str, str]:
    from sim.report_io import csv_text, markdown_table

    rows, skipped = report_rows(network)
    lines = [
        "# The engine: cycles per ResNet-20 GEMM",
        "",
        "Generated by `python -m sim.engine --out reports` from `sim/engine.py` (the cycle model that",
        "tb/test_engine.py checks command by command against the RTL). Format "
        f"{REPORT_FORMAT} for A and W, groups of 9 along K,",
        "batch 128, one GEMM at a time: an amax pass over each whole operand, then per block that fits the",
        "buffers a convert pass (load) and the GEMM; nothing overlaps. `array util` is useful MACs over the",
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
        lines += [f"## {name}", "",
                  f"{len(mine)} GEMMs, {total} cycles, of which {quant} ({_pct(Fraction(quant, total))}) quantization; "
                  f"utilization {_pct(Fraction(macs, total * peak))} of {peak} MACs/cycle.", ""]
        lines += markdown_table(["layer", "pass", "M", "N", "K", "M block", "quant cycles", "GEMM cycles",
                                 "array util", "util"],
                                [[r["layer"], r["pass"], r["m"], r["n"], r["k"], r["m_block"], r["quant_cycles"],
                                  r["gemm_cycles"], r["array_utilization"], r["utilization"]] for r in mine])
        lines.append("")
    lines += ["## Not run on the engine", "",
              "K longer than one buffer line (or not a multiple of 9): the engine has no FP32 partial-sum path, "
              "so these backward-weight GEMMs would need a K split the bit-exact contract does not cover:", ""]
    lines += [f"- {s}" for s in skipped]
    lines += ["", "## Area", "",
              "The engine's synthesized area by part (quantization units, buffers, array, converter) is pending:",
              "no synthesis run of the engine has been made yet (`hw/synth.py`).", ""]
    return "\n".join(lines), csv_text(rows)


def main(argv=None) -> int:
    import argparse
    import pathlib
    import sys

    parser = argparse.ArgumentParser(prog="python -m sim.engine",
                                     description="Write reports/engine.md and engine.csv: engine cycles per ResNet-20 GEMM.")
    parser.add_argument("--out", default="reports", help="output directory (default reports/)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"python -m sim.engine: error: --out must be a directory, got the file {str(out)!r}", file=sys.stderr)
        return 2
    md, csv = render_report()
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.md").write_text(md)
    (out / "engine.csv").write_text(csv)
    print(f"wrote {out / 'engine.md'} and {out / 'engine.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
