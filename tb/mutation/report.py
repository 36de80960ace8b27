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
        77: "`sticky & first` instead of `sticky & ~first` in the copy of the flag that feeds PE (1, 0)'s "
            "sticky register: after an overflow the flag is dropped at the second in-range beat. A real gap: "
            "in saturation_rows one largest product P already exceeds the 22-bit accumulator, so a saturating "
            "row never has two in-range beats after its last overflow (K = 2: +P, then -P last; K = 5: three "
            "+P, hi - P in range, then hi - 2P below lo); a tile that saturates and then stays in range for two "
            "beats (e.g. +P, then three small negative products) would kill it",
        84: "full[1] stuck at 1: row 1 is read only right after row 0, when it is full anyway (2x2)",
        111: "row 1 marked full by row 0's done: row 1 is drained only after row 0, by when it is done (2x2)",
    },
    # e3m2g4: elem_max = 1.75 * 2**4 (mantissa field 0b11 then zeros), min normal 2**-2, G = 4
    ("quant_unit", 200, 1): {
        15: "no output can change: lane 0's product multiplexer gets bit 7 set in its flush-to-zero and "
            "2**-126 results (y = 0x80, an FP32 subnormal pattern, or 2**-126 * (1 + 2**-16)); both round to "
            "code 0 (exponent field 0, or far below the grid) and, as a group's max, give the clamp g = 15 as "
            "zero does. The differing buffer word can stay unread for any number of stalled cycles, so the "
            "induction cannot close",
        198: "no output can change: lane 0's `exp >= 1` with bit 3 flipped when bit 2 is clear changes only "
             "exp = 8 (a product near 2**-119, now flushed) and exp = 0 (now kept as its subnormal pattern, or "
             "2**-126 as before); y that small rounds to code 0 and gives g = 15 as zero does. The buffer word "
             "differs (see 15)",
        86: "no output can change: lane 2's sign of the 2**-126 result (a flush-to-zero edge) forced to 1; that y "
            "always rounds to code 0, whose sign bit is never set, and g uses |y|. The buffer word differs "
            "(see 15)",
        152: "as 86: the same XOR with x's sign inverted",
        97: "no output can change: bit 4 of the max of lanes 0 and 1 flips when its bit 14 is set, moving the "
            "group max by 16 ulps; g, the max's only use, changes only where the mantissa crosses elem_max's "
            "(0b11 then zeros), and no mantissa within 16 ulps of it has bit 14 set",
        67: "outputs the spec leaves open: lane 0's product ignores inv = NaN/Inf (its exponent field 255); the "
            "other lanes and the separate flag logic still raise invalid, after which the codes are "
            "unspecified (the testbench checks only the flag and that every element came out)",
        99: "outputs the spec leaves open: lane 2's overflowing product is not forced to +-Inf (its exponent "
            "wraps); the separate flag logic still raises invalid, after which the codes are unspecified",
    },
    ("psum", 200, 1): {
        43: "the address counter stops at 4 (the next address's bit 0 flips when its bit 2 is set: 4 and 5 swap) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        51: "the address counter stops at 7 (`addr <= 6`) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        76: "the address counter stops at 6 (`3 + 1` becomes 6) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        105: "the address counter stops at 4 (bit 1 of the compared address set from 4 on) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        119: "the address counter stops at 4 (`addr ^ 1 <= 4`) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        133: "the address counter stops at 4 (`addr / 2 <= 4`) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        161: "the address counter stops at 7 (`4 + 1` becomes 7) instead of depth + 1 = 5 (rows past depth 4): every such row is out of range either way, so it is refused and never read or written. The outputs differ only in o.payload while o.valid is low, after a reset in mid-command (reset returns s_addr to 0, in range, but not the memory read port's data register, read from another address): outside the stream contract. With o.payload masked by o.valid the same sat search finds no difference within 12 cycles (it finds those of killed mutants, the wrapping counter 32 included, in 2 to 10)",
        185: "the address register's bit 0 flips when its bit 2 is set (addresses 4 and 5 swap, both past depth 4, so the counter parks at 4): as 51, the rows stay out of range. The mutation drops bit 0's initial value, so the counterexample starts from an address that was never reset; with rst at the first step and o.payload masked by o.valid, sat finds no difference within 12 cycles",
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
