"""Systematic mutation coverage of the RTL with yosys's ``mutate`` pass (the method of YosysHQ's mcy).

``python -m tb.mutation --unit mls_pe -n 200`` draws 200 seeded mutants of the unit's flattened
design, builds them all into one design selected by a ``mutsel`` input, runs the unit's default
cocotb checks against every mutant in one simulator launch, checks every survivor formally for
equivalence with the original, and writes ``reports/mutation.md`` and ``reports/mutation.csv``.
See docs/verification.md ("Mutation coverage").
"""

from .flow import Mutant, Prepared, classify, prepare, simulate
from .units import UNITS, Unit, get_unit, unit_names

__all__ = ["Mutant", "Prepared", "UNITS", "Unit", "classify", "get_unit", "prepare", "run_unit", "simulate",
           "unit_names"]


def run_unit(name: str, n: int, seed: int, work_root, sim: str = "icarus", equivalence: bool = True,
             progress=None, reuse_sim: bool = False) -> dict:
    """The whole flow for one unit; returns a JSON-able result (also saved as ``results.json``)."""
    import dataclasses
    import json
    import pathlib
    import time

    from .equiv import check_equivalence

    unit = get_unit(name)
    work_dir = pathlib.Path(work_root) / name
    start = time.monotonic()
    prep = prepare(unit, n, seed, work_dir)
    if progress:
        progress(f"{name}: {n} mutants drawn (seed {seed}); simulating with {sim}")
    from .flow import read_results

    saved = read_results(work_dir / "results.jsonl") if reuse_sim else []
    entries = saved or simulate(prep, sim=sim, progress=progress)
    classify(prep, entries)
    wall = time.monotonic() - start
    survivors = [m for m in prep.mutants if m.outcome == "survived"]
    if progress:
        progress(f"{name}: {sum(m.outcome == 'killed' for m in prep.mutants)} killed, {len(survivors)} survived "
                 f"in {wall:.0f} s; equivalence checks")
    if equivalence:
        for m in survivors:
            m.equivalence, m.equivalence_detail = check_equivalence(m, unit.toplevel, work_dir)
    result = {"unit": name, "description": unit.description, "testbench": unit.testbench,
              "checks": list(unit.checks), "seed": seed, "n": n, "sim": sim, "wall_s": wall,
              "mutants": [dict(dataclasses.asdict(m), location=m.location) for m in prep.mutants]}
    (work_dir / "results.json").write_text(json.dumps(result, indent=1))
    return result
