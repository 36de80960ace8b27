"""python -m tb.mutation: mutation coverage of the RTL units (see tb/mutation/__init__.py)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from . import run_unit, unit_names
from .flow import ROOT
from .report import summary, write_reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tb.mutation",
        description="Draw seeded yosys `mutate` mutants of RTL units, run each unit's default cocotb checks "
                    "against all of them (one design, one simulator launch), check survivors for equivalence, "
                    "and write reports/mutation.md and reports/mutation.csv.")
    parser.add_argument("--unit", action="append", default=None,
                        help=f"unit to mutate: {', '.join(unit_names())}, or all (repeatable; default: all)")
    parser.add_argument("-n", type=int, default=200, help="mutants per unit (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="mutate -list seed (default 1)")
    parser.add_argument("--sim", default="icarus", choices=["icarus", "verilator"], help="simulator (default icarus)")
    parser.add_argument("--work", type=pathlib.Path, default=ROOT / "sim_build" / "mutation",
                        help="work directory (default sim_build/mutation)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "reports",
                        help="where mutation.md/.csv go (default reports/)")
    parser.add_argument("--no-equivalence", action="store_true", help="skip the formal checks of survivors")
    parser.add_argument("--no-bmc", action="store_true",
                        help="equivalence: only the equiv_induct proofs, no bounded search for a counterexample "
                             "(survivors not proven equivalent are 'unknown')")
    parser.add_argument("--reuse-sim", action="store_true",
                        help="keep the simulation results saved in --work (same -n and --seed) and redo the rest, keeping "
                             "the equivalence verdicts already saved")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="simulate only the mutants the saved results (same -n and --seed) do not list as "
                             "killed, keeping the earlier kills and the survivors' equivalence verdicts (after "
                             "checks were added)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="equivalence checks run in parallel (one yosys process each; default 1)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the reports from the units' saved results.json in --work")
    args = parser.parse_args(argv)
    units = args.unit or ["all"]
    if "all" in units:
        units = unit_names()
    unknown = [u for u in units if u not in unit_names()]
    if unknown:
        parser.error(f"unknown unit {unknown[0]!r}; choose from {', '.join(unit_names())}, all")
    if not 1 <= args.n <= 4095:
        parser.error(f"-n must be in [1, 4095], got {args.n}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a directory")

    def progress(msg):
        print(msg, flush=True)

    for name in units:
        if not args.report_only:
            result = run_unit(name, args.n, args.seed, args.work, sim=args.sim,
                              equivalence=not args.no_equivalence, progress=progress,
                              reuse_sim=args.reuse_sim, rerun_survivors=args.rerun_survivors,
                              bmc=not args.no_bmc, jobs=args.jobs)
            s = summary(result)
            progress(f"{name}: {s['mutants']} mutants, {s['killed']} killed, {s['equivalent']} equivalent, "
                     f"{s['survived']} survived, {s['errors']} errors: {s['kill_pct']:.1f}% of non-equivalent killed")
    # the report covers every unit with saved results, in the units' order
    results = [json.loads(p.read_text()) for name in unit_names()
               if (p := args.work / name / "results.json").exists()]
    if results:
        md, csv_path = write_reports(results, args.out)
        progress(f"wrote {md} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
