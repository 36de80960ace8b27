"""Is a surviving mutant equivalent to the original? Formal checks with yosys.

The mutant alone is applied to ``prepared.il`` (its ``mutate`` command without ``-ctrl``) and
compared with the unmodified design, both starting from their init values (Amaranth's reset
values), all inputs free (reset included):

1. ``equiv_make``/``equiv_simple``/``equiv_induct``: if every signal pair matched by name
   (outputs included) is proven to stay equal, *equivalent*. This is quick, and strong enough
   for most equivalent mutants (a mutation whose effect never reaches a matched signal).
2. Otherwise ``miter -equiv`` of all outputs and ``sat -tempinduct -prove trigger 0`` (at most
   ``depth`` steps, a solver time limit): a counterexample in the base case means *not
   equivalent* (the outputs differ that many cycles after reset: a real gap in the tests); an
   induction step that closes means *equivalent*.
3. Otherwise *unknown*: no output difference within the steps searched, not proven for ever.
   An unknown mutant counts as a survivor (not equivalent) in the kill rate.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

from .flow import Mutant, yosys

__all__ = ["check_equivalence"]


def _pair_script(mutant: Mutant, top: str) -> str:
    # The formal models step every flip-flop once per time step whatever drives its clock, so
    # a mutant on a clock port (a register that never clocks, in simulation) would look
    # equivalent: for those, clk2fflogic makes the clock an ordinary input that must toggle.
    clocked = "clk2fflogic\n" if re.search(r"-port \S*CLK\b", mutant.command) else ""
    return (f"read_rtlil prepared.il\n{mutant.command}\nrename {top} gate\n"
            f"read_rtlil prepared.il\nrename {top} gold\nmemory_map\n{clocked}")


def check_equivalence(mutant: Mutant, top: str, work_dir: pathlib.Path, depth: int = 8,
                      timeout: float = 60, bmc: bool = True) -> tuple[str, str]:
    """``(verdict, detail)`` with verdict ``equivalent``, ``not equivalent`` or ``unknown``."""
    name = f"equiv_{mutant.id}"
    script = _pair_script(mutant, top) + (
        "opt_clean\nequiv_make gold gate equiv\nhierarchy -top equiv\nequiv_struct\n"
        "equiv_simple -seq 4\nequiv_induct -seq 4\nequiv_status -assert\n")
    try:
        result = yosys(script, work_dir, name, timeout=timeout)
        if result.returncode == 0:
            return "equivalent", "equiv_simple/equiv_induct: every matched signal pair proven equal"
    except subprocess.TimeoutExpired:
        pass
    # again with only the logic that reaches an output (dead logic, e.g. the unused forwarding
    # outputs of an array's edge PEs, or a compare behind a constant multiplexer select, has
    # matched names but no effect): constants folded first, then everything unused removed
    name = f"equiv_{mutant.id}_live"
    script = _pair_script(mutant, top) + (
        "opt_expr\nopt_clean -purge\nequiv_make gold gate equiv\nhierarchy -top equiv\nequiv_struct\n"
        "equiv_simple -seq 4\nequiv_induct -seq 4\nequiv_status -assert\n")
    try:
        result = yosys(script, work_dir, name, timeout=timeout)
        if result.returncode == 0:
            return "equivalent", "equiv_induct on the logic that reaches an output: every matched pair proven equal"
    except subprocess.TimeoutExpired:
        pass
    if not bmc:
        return "unknown", "equiv_induct did not close (no bounded search for a counterexample: --no-bmc)"
    name = f"equiv_{mutant.id}_bmc"
    script = _pair_script(mutant, top) + (
        "opt_clean\nmiter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter\n"
        "hierarchy -top miter\n"
        f"sat -tempinduct -prove trigger 0 -maxsteps {depth} -set-init-undef -set-def-inputs "
        f"-timeout {int(timeout) // 6} miter\n")
    try:
        result = yosys(script, work_dir, name, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "unknown", f"equiv_induct did not close; sat timed out after {timeout:.0f} s"
    log = (work_dir / f"{name}.log").read_text()
    steps = re.findall(r"Trying induction with length (\d+)", log)
    if "model found for base case" in log:
        return "not equivalent", f"outputs differ {steps[-1] if steps else '?'} cycles after reset (sat counterexample)"
    if re.search(r"Induction step proven: SUCCESS|temporal induction proof finished - PASSED", log):
        return "equivalent", f"sat temporal induction, length {steps[-1] if steps else '?'}"
    if result.returncode != 0 and "SAT temporal induction" not in log and "TIMEOUT" not in log.upper():
        raise RuntimeError(f"mutant {mutant.id}: yosys failed; see {work_dir / (name + '.log')}")
    return "unknown", (f"equiv_induct did not close; no output difference within {steps[-1] if steps else '?'} "
                       f"cycles of reset (sat)")
