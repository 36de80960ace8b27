"""Layer-level cycle and traffic model of the output-stationary systolic array (docs/hardware.md, docs/cost_model.md §2).

A GEMM ``C[M, N] = A[M, K] @ B[K, N]`` runs on an R x C array as ``ceil(M/R) * ceil(N/C)``
folds. Each fold is one output tile: A rows stream in from the left and B columns from the top,
skewed by one cycle per row/column; every PE accumulates its output over K, then the tile
drains. The cycles of ONE tile come from the RTL's own timing function,
``hw.array.timing.tile_phases`` (the function the array testbenches check against the measured
RTL), so the model and the hardware agree tile by tile; this module only adds folds, edge tiles
(a partial tile takes a full tile's cycles: skew and drain depend on R and C only), the overlap
of one tile's drain with the next tile's compute, utilization and traffic.

Lanes (docs/numerics.md §3.1). With ``ArrayConfig(lanes=L)`` every PE is an L-lane dot-product PE: a tile
takes one *beat* per cycle, and its beat count comes from the GEMM's chunk structure
(``Gemm.k_chunk``, which ``sim.workloads`` derives from the channel block Gc with
``model.beats.conv_k_chunk``) through the same timing function (``ArrayTiming.phases(k,
k_chunk)``, which calls ``model.beats.count_beats``). The PE latency in the drain is the dot
PE's own ``latency`` property (``dot_pe_latency``). *Lane utilization* = useful element pairs /
lane slots = ``M*N*K / (M*N * L * beats)``, summed over GEMMs for a layer, a pass or a step;
it depends on K, the chunks and L only, not on the array size. ``python -m sim.cycles`` prints
it per network and pass (and per layer into ``reports/lanes.md``/``.csv``).

Traffic is counted in elements here and turned into **bits** by the energy model with each
design's widths: every fold streams its ``r x K`` slice of A and ``K x c`` slice of B from the
operand SRAMs and writes its ``r x c`` outputs once (output-stationary: partial sums never
leave the PE).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from hw.array.timing import PE_LATENCY, ArrayTiming, tile_phases

from .workloads import NETWORKS, PASSES, Gemm, network_gemms

__all__ = ["DATAFLOWS", "ArrayConfig", "GemmCycles", "LaneTotals", "dot_pe_latency", "gemm_cycles",
           "lane_totals", "lanes_report", "network_cycles", "tile_timing", "ws_fold_phases"]

DATAFLOWS = ("os", "ws")


@functools.lru_cache(maxsize=None)
def dot_pe_latency(lanes: int) -> int:
    """``hw.pe.dot_pe.MLSDotPE.latency`` of an ``lanes``-lane PE (``MLSDotPE.latency_for``: its
    adder-tree registers depend on the lane count, not on the formats; tested)."""
    from hw.pe.dot_pe import MLSDotPE

    return MLSDotPE.latency_for(lanes)


@dataclass(frozen=True)
class ArrayConfig:
    """An R x C array. ``dataflow`` ``"os"`` (output-stationary, the RTL) or ``"ws"``
    (weight-stationary, model only: no RTL implements it). ``overlap_drain`` overlaps a fold's
    drain (OS: double-buffered results) or its weight load (WS: double-buffered weights) with the
    neighbouring fold's compute. ``lanes`` element pairs per PE beat (1: the scalar PE; more:
    ``MLSDotPE``, output-stationary only); ``pe_latency`` defaults to the scalar PE's
    ``PE_LATENCY`` for one lane and to ``dot_pe_latency(lanes)`` otherwise."""

    rows: int = 16
    cols: int = 16
    overlap_drain: bool = True
    dataflow: str = "os"
    lanes: int = 1
    pe_latency: int | None = None

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        for name in ("rows", "cols", "lanes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"array {name} must be an int, not {value!r}")
            if not 1 <= value <= 4096:
                raise ValueError(f"array {name} must be in [1, 4096], got {value}")
        if self.lanes > 1 and self.dataflow != "os":
            raise ValueError(f"lanes = {self.lanes}: dot-product PEs are modelled for the output-stationary "
                             f"dataflow only, not {self.dataflow!r}")
        if self.pe_latency is None:
            object.__setattr__(self, "pe_latency", PE_LATENCY if self.lanes == 1 else dot_pe_latency(self.lanes))
        self.timing  # validates pe_latency

    @property
    def timing(self) -> ArrayTiming:
        """The RTL's timing function for this array (``hw.array.timing.ArrayTiming``)."""
        return ArrayTiming(self.rows, self.cols, self.pe_latency, self.lanes)

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
        return (f"{self.rows}x{self.cols}" + ("" if self.dataflow == "os" else f"-{self.dataflow}")
                + ("" if self.lanes == 1 else f" L={self.lanes}"))


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
    lanes: int = 1
    tile_beats: int | None = None  # OS: input beats of every fold (K for one lane); WS: None
    #: Element-pair slots the GEMM's M*N outputs stream, ``M*N * lanes * tile_beats`` (padding
    #: lanes included); ``macs`` when omitted (one lane, nothing padded).
    lane_slots: int | None = None

    def __post_init__(self) -> None:
        if self.lane_slots is None:
            object.__setattr__(self, "lane_slots", self.macs)

    @property
    def utilization(self) -> float:
        """MACs over the array's peak, ``pe_count * lanes`` MACs per cycle."""
        return self.macs / (self.cycles * self.pe_count * self.lanes)

    @property
    def lane_utilization(self) -> float:
        """Useful element pairs / lane slots (1 for one lane)."""
        return self.macs / self.lane_slots


def tile_timing(k: int, rows: int, cols: int, *, lanes: int = 1, k_chunk: int | None = None,
                pe_latency: int = PE_LATENCY) -> tuple[int, int]:
    """``(compute, drain)`` cycles of one tile: ``hw.array.timing.tile_phases``, the RTL's own
    timing function (one tile costs compute + drain; compute is the tile's beats)."""
    return tile_phases(k, rows, cols, pe_latency, lanes=lanes, k_chunk=k_chunk)


def gemm_cycles(gemm: Gemm, array: ArrayConfig) -> GemmCycles:
    """Cycles and element traffic of one GEMM on an output-stationary array.

    Cycles run from the first input beat to the last output row of the GEMM. With
    ``overlap_drain`` the folds go back to back (the RTL's double-buffered results), so each
    fold after the first adds ``max(compute, drain)``: ``hw.array.timing.tiles_cycles`` of
    ``folds`` equal tiles in closed form. Without it every fold pays ``compute + drain``. Each
    GEMM starts on an empty array: the next layer's GEMM needs this one's outputs.

    compute is the tile's beats, ``array.timing.phases(K, k_chunk)`` (K for one lane; for L lanes
    the sum over the GEMM's chunks of ceil(chunk / L)). Traffic counts the K useful elements per
    line: the packer's padding lanes are zeros, not SRAM reads."""
    if array.dataflow == "ws":
        return _ws_gemm_cycles(gemm, array)
    R, C = array.rows, array.cols
    fm, fn = math.ceil(gemm.m / R), math.ceil(gemm.n / C)
    folds = fm * fn
    compute, drain = array.timing.phases(gemm.k, gemm.k_chunk)
    if array.overlap_drain:
        cycles = (folds - 1) * max(compute, drain) + compute + drain
    else:
        cycles = folds * (compute + drain)
    return GemmCycles(cycles, folds, gemm.macs, R * C,
                      a_reads=fn * gemm.m * gemm.k, b_reads=fm * gemm.k * gemm.n, c_writes=gemm.m * gemm.n,
                      lanes=array.lanes, tile_beats=compute, lane_slots=gemm.m * gemm.n * array.lanes * compute)


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


# -- lane utilization (the L-lane dot-product PE) ------------------------------------------------
@dataclass(frozen=True)
class LaneTotals:
    """Sums over some GEMMs on one array: MACs (useful element pairs), lane slots, cycles."""

    macs: int = 0
    lane_slots: int = 0
    cycles: int = 0
    gemms: int = 0

    def add(self, cyc: GemmCycles) -> LaneTotals:
        return LaneTotals(self.macs + cyc.macs, self.lane_slots + cyc.lane_slots, self.cycles + cyc.cycles,
                          self.gemms + 1)

    @property
    def lane_utilization(self) -> Fraction:
        """Useful element pairs / lane slots, exact."""
        return Fraction(self.macs, self.lane_slots)


def lane_totals(gemms: list[Gemm], array: ArrayConfig) -> dict[tuple[str, str], LaneTotals]:
    """``(layer, pass) -> LaneTotals`` in GEMM order, plus ``("", pass)`` per pass and ``("", "step")``
    for the whole list (backward-data phases and grouped-conv GEMMs of a layer add up)."""
    totals: dict[tuple[str, str], LaneTotals] = {("", p): LaneTotals() for p in PASSES}
    totals[("", "step")] = LaneTotals()
    for gemm in gemms:
        cyc = gemm_cycles(gemm, array)
        for key in ((gemm.layer, gemm.pass_), ("", gemm.pass_), ("", "step")):
            totals[key] = totals.get(key, LaneTotals()).add(cyc)
    return totals


def _ratio(value: Fraction | float) -> str:
    return f"{float(value):.4f}"


def lanes_report(networks: list[str], lanes: list[int], gcs: list[int], array: ArrayConfig) -> tuple[str, str, str]:
    """``(summary, markdown, csv)`` of lane utilization and cycles per training step for every
    network, channel block Gc and lane count L on ``array`` (its rows, cols and overlap; the PE
    latency of each L from ``dot_pe_latency``)."""
    from .report_io import csv_text, markdown_table

    summary_rows, layer_rows, records = [], [], []
    for net in networks:
        for gc in gcs:
            gemms = network_gemms(net, gc=gc)
            base = lane_totals(gemms, ArrayConfig(array.rows, array.cols, array.overlap_drain, lanes=1))
            per_lanes = {}
            for lane_count in lanes:
                config = ArrayConfig(array.rows, array.cols, array.overlap_drain, lanes=lane_count)
                totals = per_lanes[lane_count] = lane_totals(gemms, config)
                step = totals[("", "step")]
                summary_rows.append([net, str(gc), str(lane_count), str(config.pe_latency)]
                                    + [_ratio(totals[("", p)].lane_utilization) for p in PASSES + ("step",)]
                                    + [str(step.cycles), f"{base[('', 'step')].cycles / step.cycles:.3f}",
                                       _ratio(Fraction(step.macs, step.cycles * config.rows * config.cols * lane_count))])
                for (layer, pass_), t in totals.items():
                    records.append({"network": net, "gc": gc, "lanes": lane_count, "pe_latency": config.pe_latency,
                                    "layer": layer or "(all)", "pass": pass_, "gemms": t.gemms, "macs": t.macs,
                                    "lane_slots": t.lane_slots, "lane_utilization": _ratio(t.lane_utilization),
                                    "cycles": t.cycles})
            for (layer, pass_) in per_lanes[lanes[0]]:
                if layer:
                    layer_rows.append([net, str(gc), f"`{layer}`", pass_]
                                      + [_ratio(per_lanes[n][(layer, pass_)].lane_utilization) for n in lanes])
    summary_header = (["network", "Gc", "L", "PE latency"] + [f"{p} util." for p in PASSES]
                      + ["step util.", "cycles/step", "speed-up vs L=1", "array util."])
    summary = markdown_table(summary_header, summary_rows, "lrrrrrrrrrr")
    md = [f"# Lane utilization of the L-lane dot-product PE ({array.rows}x{array.cols} array)", "",
          "Generated by `python -m sim.cycles --out reports` (`sim/cycles.py`; docs/cost_model.md §2). "
          "A beat carries L element pairs of one chunk (docs/numerics.md §3.1); a chunk whose length is not a "
          "multiple of L is zero-padded in its last beat. Lane utilization = useful element pairs / "
          "(L · beats), summed over the GEMMs of a pass or step. Chunks follow channel grouping with "
          "channel block Gc: kh·kw·Gc (forward), the phase's taps (backward-data), Ho·Wo "
          "(backward-weight); linear layers use the MX block of `model.config.DEFAULT_LINEAR_BLOCK` "
          "whatever Gc. Cycles: output-stationary folds back to back with drain overlap, the PE "
          "latency of `MLSDotPE` at each L; speed-up is the L = 1 step's cycles over this step's; "
          "array utilization = MACs / (R·C·L·cycles).", "",
          "## Per network and pass", ""] + summary + [
          "", "## Per layer (lane utilization)", ""]
    md += markdown_table(["network", "Gc", "layer", "pass"] + [f"L={n}" for n in lanes], layer_rows,
                         "lrll" + "r" * len(lanes))
    fields = ["network", "gc", "lanes", "pe_latency", "layer", "pass", "gemms", "macs", "lane_slots",
              "lane_utilization", "cycles"]
    return "\n".join(summary) + "\n", "\n".join(md) + "\n", csv_text(records, fields)


def _int_list(name: str, text: str) -> list[int]:
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"--{name} takes comma-separated positive integers, got {part!r}") from None
        if value < 1:
            raise ValueError(f"--{name} values must be at least 1, got {value}")
        if value in values:
            raise ValueError(f"--{name} lists {value} twice")
        values.append(value)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.cycles",
        description="Lane utilization and cycles per training step of L-lane dot-product PE arrays "
                    "(output-stationary) for ResNet-20 and ResNet-18, per pass and per layer.")
    parser.add_argument("--lanes", default="1,4,9,16", help="comma-separated lane counts L (default 1,4,9,16)")
    parser.add_argument("--gc", default="1,4", help="comma-separated channel-block sizes Gc (default 1,4)")
    parser.add_argument("--array", default="16x16", help="array size RxC (default 16x16)")
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help=f"comma-separated networks (default {','.join(NETWORKS)})")
    parser.add_argument("--no-overlap", action="store_true", help="do not overlap drain with compute")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write OUT/lanes.md (with the per-layer table) and OUT/lanes.csv")
    args = parser.parse_args(argv)
    try:
        lanes, gcs = _int_list("lanes", args.lanes), _int_list("gc", args.gc)
        parsed = ArrayConfig.parse(args.array)
        if parsed.dataflow != "os":
            raise ValueError(f"--array {args.array!r}: lanes are modelled for the output-stationary dataflow only")
        array = ArrayConfig(parsed.rows, parsed.cols, not args.no_overlap)
        networks = [n.strip() for n in args.networks.split(",") if n.strip()]
        for net in networks:
            if net not in NETWORKS:
                raise ValueError(f"unknown network {net!r}; choose from {', '.join(NETWORKS)}")
        if not networks:
            raise ValueError("--networks names no network")
        summary, md, csv = lanes_report(networks, lanes, gcs, array)
    except (ValueError, TypeError) as error:
        parser.exit(2, f"error: {error}\n")
    print(summary, end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "lanes.md").write_text(md)
        with open(args.out / "lanes.csv", "w", newline="") as fh:
            fh.write(csv)
        print(f"wrote {args.out}/lanes.md, lanes.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
