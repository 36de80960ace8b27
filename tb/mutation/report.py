"""reports/mutation.md and reports/mutation.csv from the per-unit results (``results.json``)."""

from __future__ import annotations

import csv
import io
import json
import pathlib

__all__ = ["summary", "write_reports"]

# Why a survivor that is not proven equivalent survives, from reading its mutation (unit, n, seed)
# -> {mutant id: reason}; only shown next to the formal verdict, never used to classify.
REASONS: dict[tuple[str, int, int], dict[int, str]] = {
    ("mls_pe", 200, 1): {
        149: "an inverted clock: the done register moves to the falling edge; at the falling edges, where "
             "the testbench samples, it holds what the rising-edge register would, so only the half cycle "
             "after a rising edge differs (a timing change, invisible to cycle-level checks)",
        191: "as 149, for the overflow register",
    },
    ("array", 200, 1): {
        54: "taken's bit 0 is set for every row but 0: it clears row 0's flag one row late, which a 2x2 "
            "array never sees (rows drain in order; from R = 3 a next tile's row 0 could be lost)",
        193: "same cell as 54 (taken = 1 << row): masked in a 2x2 array",
        13: "the overflow comparison's constant loses bit 7: only sums within 128 of the limit differ; "
            "the array's tiles never land there (the PE unit's saturation_boundaries check does)",
        15: "a falling-edge clock on the done register of PE (1, 0), whose done the array never reads",
        53: "drain_final without c.valid: in a 2x2 array row 1 is always full when row 0 has drained",
        77: "the sticky flag of PE (1, 0) is kept only on a tile's first beat: not yet understood why "
            "saturation_rows (row 1 saturates, then returns) does not catch it; a real gap until shown",
        84: "full[1] stuck at 1: row 1 is read only right after row 0, when it is full anyway (2x2)",
        111: "row 1 marked full by row 0's done: row 1 is drained only after row 0, by when it is done (2x2)",
    },
}

CSV_FIELDS = ["unit", "mutant", "mode", "location", "outcome", "check", "equivalence", "detail", "command"]


def summary(unit_result: dict) -> dict:
    mutants = unit_result["mutants"]
    count = lambda pred: sum(1 for m in mutants if pred(m))  # noqa: E731
    killed = count(lambda m: m["outcome"] == "killed")
    equivalent = count(lambda m: m["outcome"] == "survived" and m["equivalence"] == "equivalent")
    survived = count(lambda m: m["outcome"] == "survived" and m["equivalence"] != "equivalent")
    errors = count(lambda m: m["outcome"] in ("error", "timeout"))
    non_equivalent = len(mutants) - equivalent
    return {"mutants": len(mutants), "killed": killed, "equivalent": equivalent, "survived": survived,
            "errors": errors, "kill_pct": 100.0 * killed / non_equivalent if non_equivalent else 100.0}


def _csv_text(results: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        for m in r["mutants"]:
            writer.writerow({"unit": r["unit"], "mutant": m["id"], "mode": m["mode"], "location": m["location"],
                             "outcome": m["outcome"], "check": m["check"], "equivalence": m["equivalence"],
                             "detail": m["equivalence_detail"] or m["message"][:120], "command": m["command"]})
    return out.getvalue()


def write_reports(results: list[dict], out_dir: pathlib.Path, target: float = 95.0) -> tuple[pathlib.Path, pathlib.Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "mutation.csv", out_dir / "mutation.md"
    csv_path.write_text(_csv_text(results))
    lines = ["# Mutation coverage", "",
             "Mutants drawn by yosys's `mutate -list N -seed S` (the method of YosysHQ's mcy) on each unit's",
             "flattened RTLIL, all built into one design behind a `mutsel` input (`mutate -ctrl`), and run",
             "against the unit's default cocotb checks (bit-exact against `model/`). *Killed*: a check's",
             "assertion failed. A survivor is checked formally against the original (`equiv_induct`, then",
             "`sat -tempinduct`): *equivalent* mutants are left out of the kill rate; *not equivalent* ones",
             "(a counterexample) and *unknown* ones (not proven either way, or not yet checked) count as",
             "survivors. Reasons after the formal verdict come from reading the mutation.",
             "Regenerate: `python -m tb.mutation --unit all -n 200` (see docs/verification.md).", "",
             "| unit | configuration | checks | seed | mutants | killed | equivalent | survived | errors | kill % of non-equivalent |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = summary(r)
        checks = ", ".join(c.split(":")[1] for c in r["checks"])
        mark = "" if s["kill_pct"] >= target else " (below target)"
        lines.append(f"| {r['unit']} | {r['description']} | {checks} | {r['seed']} | {s['mutants']} | {s['killed']} | "
                     f"{s['equivalent']} | {s['survived']} | {s['errors']} | {s['kill_pct']:.1f}{mark} |")
    lines.append("")
    for r in results:
        rest = [m for m in r["mutants"] if m["outcome"] != "killed"]
        carried = sum(1 for m in r["mutants"] if m.get("extra", {}).get("killed_in_earlier_run"))
        note = (f" {carried} of the kills are from an earlier run of the same mutants; only the others were "
                f"simulated again after checks were added (`--rerun-survivors`)." if carried else "")
        lines += [f"## {r['unit']}", "", f"{r['description']}; testbench `{r['testbench']}`; "
                  f"{r['sim']} run of {r['wall_s']:.0f} s.{note}", ""]
        if not rest:
            lines += ["Every mutant killed.", ""]
            continue
        lines += ["| mutant | mode | location | outcome | equivalence | reason |", "|---:|---|---|---|---|---|"]
        notes = REASONS.get((r["unit"], r["n"], r["seed"]), {})
        for m in rest:
            reason = m["equivalence_detail"] or m["message"][:160] or (
                "not yet checked for equivalence" if m["outcome"] == "survived" else "")
            if m["id"] in notes and m["equivalence"] != "equivalent":
                reason = f"{reason}; {notes[m['id']]}"
            lines.append(f"| {m['id']} | {m['mode']} | `{m['location']}` | {m['outcome']} | {m['equivalence'] or '-'} | "
                         f"{reason.replace('|', '/')} |")
        lines.append("")
    md_path.write_text("\n".join(lines))
    return md_path, csv_path


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())
