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
             progress=None, reuse_sim: bool = False, rerun_survivors: bool = False, bmc: bool = True,
             jobs: int = 1) -> dict:
    """The whole flow for one unit; returns a JSON-able result (also saved as ``results.json``).

    ``rerun_survivors``: simulate only the mutants that the saved ``results.json`` (same ``n`` and
    ``seed``) does not list as killed, e.g. after checks were added; the earlier kills are kept
    and marked ``killed_in_earlier_run``; a mutant that still survives keeps its saved
    equivalence verdict (a property of the mutant and the design, not of the checks).
    ``reuse_sim``: classify the saved simulation results again (and keep the saved equivalence
    verdicts and simulation time of that run). ``jobs``: equivalence checks run in parallel
    (each is one yosys process).
    """
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

    earlier, verdicts, old = {}, {}, None
    if rerun_survivors or (reuse_sim and (work_dir / "results.json").exists()):
        old = json.loads((work_dir / "results.json").read_text())
        if (old["n"], old["seed"]) != (n, seed):
            raise ValueError(f"{name}: the saved results are for -n {old['n']} --seed {old['seed']}, not {n} {seed}")
        verdicts = {m["id"]: (m["equivalence"], m["equivalence_detail"]) for m in old["mutants"]
                    if m["outcome"] == "survived" and m["equivalence"]}
    if rerun_survivors:
        earlier = {m["id"]: m for m in old["mutants"] if m["outcome"] == "killed"}
    saved = read_results(work_dir / "results.jsonl") if reuse_sim else []
    entries = saved or simulate(prep, sim=sim, progress=progress,
                                ids=[m.id for m in prep.mutants if m.id not in earlier] if earlier else None)
    if earlier:  # classify sees the earlier kills as results
        entries = entries + [{"mutant": i, "check": m["check"], "outcome": "killed", "message": m["message"]}
                             for i, m in earlier.items()]
    classify(prep, entries)
    for m in prep.mutants:
        if m.id in earlier:
            m.extra["killed_in_earlier_run"] = True
    wall = time.monotonic() - start
    if saved and old is not None:  # the simulation whose results were reused
        wall = old["wall_s"]
    survivors = [m for m in prep.mutants if m.outcome == "survived"]
    if progress:
        progress(f"{name}: {sum(m.outcome == 'killed' for m in prep.mutants)} killed, {len(survivors)} survived "
                 f"in {wall:.0f} s; equivalence checks")
    def save():
        result = {"unit": name, "description": unit.description, "testbench": unit.testbench,
                  "checks": list(unit.checks), "seed": seed, "n": n, "sim": sim, "wall_s": wall,
                  "mutants": [dict(dataclasses.asdict(m), location=m.location) for m in prep.mutants]}
        (work_dir / "results.json").write_text(json.dumps(result, indent=1))
        return result

    result = save()
    if equivalence:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        todo = []
        for m in survivors:
            if m.id in verdicts:  # the same mutant and design (new checks or not): its verdict stands
                m.equivalence, m.equivalence_detail = verdicts[m.id]
            else:
                todo.append(m)
        result = save()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each check is a yosys process
            futures = {pool.submit(check_equivalence, m, unit.toplevel, work_dir, bmc=bmc,
                                   timeout=unit.equiv_timeout): m for m in todo}
            for future in as_completed(futures):  # saved after each check: a stopped run keeps what it proved
                m = futures[future]
                m.equivalence, m.equivalence_detail = future.result()
                result = save()
                if progress:
                    progress(f"{name}: mutant {m.id}: {m.equivalence}")
    return result
