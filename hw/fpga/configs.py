"""The board configurations of the FPGA report, and how each one is built (or reused).

A :class:`Config` names one board design (board, array of MLS or FP32 PEs, format, R×C, lanes
of the MLS dot-product PE, DSP mapping, how far nextpnr runs); :func:`run_config` builds it with :func:`hw.fpga.build.build_for_board`
into ``work/<key>/`` (or reuses the cached ``board.json`` there) and returns its result as one
row of :data:`COLUMNS`. Nothing here writes a report: ``python -m sim.fpga_report`` chooses the
configurations, calls :func:`run_config` and writes ``reports/fpga.{md,csv,png}``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from .build import build_for_board
from .designs import make_design

__all__ = ["COLUMNS", "Config", "run_config"]

COLUMNS = ("board", "design", "format", "rows", "cols", "pes", "lanes", "macs_per_cycle", "acc_bits", "dsp_map", "luts", "luts_avail", "lut_pct", "ffs", "dsps",
           "dsps_avail", "brams", "lutram", "fmax_mhz", "clock_mhz", "fits", "routed", "pnr_s", "note")


@dataclasses.dataclass(frozen=True)
class Config:
    board: str
    design: str          # "mls" | "fp32" | "demo"
    fmt: str
    rows: int
    cols: int
    role: str            # "formats" | "sweep" | "fit" | "board2"
    dsp: bool = True     # False: synth with -nodsp (multipliers in LUTs)
    steps: str = "pnr"   # "pack": utilization only (nextpnr --pack-only), for the fit search
    lanes: int = 1       # > 1: the array of L-lane MLS dot-product PEs (SystolicArray(..., lanes=L))

    def __post_init__(self):
        if isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or self.lanes < 1:
            raise ValueError(f"lanes must be an int >= 1, got {self.lanes!r}")
        if self.lanes > 1 and self.design != "mls":
            raise ValueError(f"lanes > 1 is the MLS dot-product array only (design 'mls'), got design={self.design!r}")

    @property
    def key(self) -> str:
        fmt = self.fmt if self.design == "mls" else self.design
        return (f"{self.board}-{fmt}-{self.rows}x{self.cols}" + ("" if self.lanes == 1 else f"-l{self.lanes}")
                + ("" if self.dsp else "-nodsp") + ("" if self.steps == "pnr" else f"-{self.steps}"))

    @property
    def label(self) -> str:
        if self.design == "mls":
            return self.fmt if self.lanes == 1 else f"{self.fmt} dot L={self.lanes}"
        return {"fp32": "FP32 PE", "demo": "demo"}.get(self.design, self.design)

    @property
    def macs_per_cycle(self) -> int:
        """MACs the array completes per cycle with every lane busy: R x C x L."""
        return self.rows * self.cols * self.lanes


def _dot_array(cfg: Config):
    """(factory, description) of the array of L-lane MLS dot-product PEs. The host bridge carries
    its beat streams as it carries the scalar array's element streams (one FIFO word per beat)."""
    from model.formats import MLSFormat

    from ..array import SystolicArray

    fmt = MLSFormat.parse(cfg.fmt)
    probe = SystolicArray(fmt, cfg.rows, cfg.cols, lanes=cfg.lanes)
    probe._MustUse__silence = True   # only read for the manifest, never elaborated
    description = {"design": "mls", "component": "hw.array.SystolicArray", "pe": probe.pe, "format": str(fmt),
                   "rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes, "acc_bits": probe.acc_bits,
                   "max_k": probe.max_k, "latency": probe.latency}
    return (lambda: SystolicArray(fmt, cfg.rows, cfg.cols, lanes=cfg.lanes)), description


def run_config(cfg: Config, work: pathlib.Path, *, force: bool = False) -> dict:
    """Build (or reuse) one configuration; return its CSV row."""
    out = work / cfg.key
    manifest_path = out / "board.json"
    if force or not manifest_path.exists():
        if cfg.lanes > 1:
            factory, design = _dot_array(cfg)
        else:
            factory, design = make_design(cfg.design, fmt=cfg.fmt, rows=cfg.rows, cols=cfg.cols)
        build_for_board(factory(), cfg.board, out, design=design, dsp=cfg.dsp,
                        steps=cfg.steps)
    manifest = json.loads(manifest_path.read_text())
    r = manifest["result"]
    row = {"board": cfg.board, "design": cfg.design, "format": cfg.label, "rows": cfg.rows, "cols": cfg.cols,
           "pes": cfg.rows * cfg.cols, "lanes": cfg.lanes, "macs_per_cycle": cfg.macs_per_cycle, "acc_bits": manifest["design"].get("acc_bits"),
           "dsp_map": "yes" if cfg.dsp else "no", "luts": r["luts"], "luts_avail": r["luts_avail"],
           "lut_pct": round(100 * r["luts"] / r["luts_avail"], 1) if r["luts"] is not None else None,
           "ffs": r["ffs"], "dsps": r["dsps"], "dsps_avail": r["dsps_avail"], "brams": r["brams"],
           "lutram": r["lutram"], "fmax_mhz": round(r["fmax_mhz"], 1) if r["fmax_mhz"] else None,
           "clock_mhz": manifest["clock_hz"] / 1e6, "fits": r["fits"],
           "pnr_s": r["seconds"].get("pnr"), "routed": cfg.steps == "pnr" and bool(r["fits"]), "note": ""}
    if r["fits"] is False:
        row["note"] = "does not fit"
    elif cfg.steps == "pack":
        row["note"] = "packed only (nextpnr --pack-only): utilization, no Fmax"
    return row
