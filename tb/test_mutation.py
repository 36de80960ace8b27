# amaranth: UnusedElaboratable=no
"""The mutation flow (tb/mutation) end to end on a small sample, so that it keeps working.

20 seeded mutants of the baseline INT8 MAC: prepare (RTLIL, yosys mutate -list), one design
behind ``mutsel``, one Icarus launch running the unit's default checks, classification, and the
formal equivalence check of survivors. The full run (200 mutants of every unit) is opt-in:
``python -m tb.mutation --unit all -n 200`` or ``MLS_SLOW=1`` (test_mutation_full).
"""

import pytest

from tb.harness import SIM
from tb.mutation import classify, get_unit, prepare, run_unit
from tb.mutation.equiv import check_equivalence
from tb.mutation.flow import ROOT, Mutant, parse_mutant_line
from tb.mutation.units import UNITS


def test_sample_flow(tmp_path):
    # under the simulator of the run (SIM); raises if the original fails a check
    # two equivalence checks at a time (the parallel path of --jobs)
    result = run_unit("int8_mac", n=20, seed=3, work_root=tmp_path, sim=SIM, jobs=2)
    outcomes = [m["outcome"] for m in result["mutants"]]
    assert len(outcomes) == 20 and set(outcomes) <= {"killed", "survived"}, outcomes
    assert outcomes.count("killed") >= 10, outcomes
    for m in result["mutants"]:
        assert m["location"].startswith(("hw/baseline/", "amaranth/")), m["location"]
        if m["outcome"] == "survived":
            assert m["equivalence"] in ("equivalent", "not equivalent", "unknown"), m
    # formal and simulation agree: a killed mutant is never proven equivalent
    work = tmp_path / "int8_mac"
    killed = next(m for m in result["mutants"] if m["outcome"] == "killed")
    verdict, detail = check_equivalence(parse_mutant_line(killed["id"], killed["command"]), "int8_mac", work)
    assert verdict == "not equivalent", (killed, detail)
    # and the original against itself is (a mutation that changes nothing: a multiplexer's
    # select forced to the value it already has is not available, so use an empty command)
    verdict, detail = check_equivalence(Mutant(0, "", "none", []), "int8_mac", work)
    assert verdict == "equivalent", detail


def test_harness_errors_are_not_kills(tmp_path):
    prep = prepare(get_unit("int8_mac"), n=3, seed=1, work_dir=tmp_path)
    checks = list(prep.unit.checks)
    original = [{"mutant": 0, "check": c, "outcome": "pass", "message": ""} for c in checks] * 2
    entries = original + [
        {"mutant": 1, "check": checks[0], "outcome": "error", "message": "ValueError: X on acc"},
        {"mutant": 1, "check": checks[1], "outcome": "pass", "message": ""},
        {"mutant": 2, "check": checks[0], "outcome": "timeout", "message": "no result"},
        {"mutant": 3, "check": checks[0], "outcome": "error", "message": "crash"},
        {"mutant": 3, "check": checks[1], "outcome": "killed", "message": "mismatch"},
    ]
    classify(prep, entries)
    assert [(m.id, m.outcome) for m in prep.mutants] == [(1, "error"), (2, "timeout"), (3, "killed")]
    bad = [dict(e, outcome="killed") if e["mutant"] == 0 and e["check"] == checks[0] else e for e in entries]
    with pytest.raises(RuntimeError, match="the original design does not pass its checks"):
        classify(prep, bad)


def test_mutant_command_parsing():
    m = parse_mutant_line(7, "mutate -mode cnot1 -module int8_mac -cell $3 -port Y -portbit 24 -ctrlbit 18 "
                             f"-ctrl mutsel 8 7 -src /x/site-packages/amaranth/hdl/_ir.py:283 -src {ROOT}/hw/baseline/int8_mac.py:43")
    assert m.command == "mutate -mode cnot1 -module int8_mac -cell $3 -port Y -portbit 24 -ctrlbit 18"
    assert m.mode == "cnot1" and m.location == "hw/baseline/int8_mac.py:43"
    assert m.sources[0] == "amaranth/hdl/_ir.py:283"
    with pytest.raises(ValueError, match="not a mutate command"):
        parse_mutant_line(1, "sat -prove x 0")


@pytest.mark.slow
@pytest.mark.parametrize("unit", list(UNITS))
def test_mutation_full(unit, tmp_path):
    """200 mutants per unit; at least 95% of the non-equivalent ones killed."""
    from tb.mutation.report import summary

    s = summary(run_unit(unit, n=200, seed=1, work_root=tmp_path, sim=SIM))
    assert s["errors"] == 0 and s["kill_pct"] >= 95.0, s


def test_unit_checks_are_cocotb_tests():
    """Every check a unit names is a ``@cocotb.test`` routine of its testbench module, so the
    mutation run judges mutants by the routines that ``pytest tb/`` runs."""
    import re

    for unit in UNITS.values():
        assert unit.checks and unit.equiv_timeout > 0, unit.name
        for check in unit.checks:
            module, name = check.split(":")
            text = (ROOT / "tb" / f"{module}.py").read_text()
            assert re.search(rf"@cocotb\.test\(\)\nasync def {name}\(dut\)", text), check
