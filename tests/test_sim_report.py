"""Energy report (sim/report.py): deterministic, matches the committed report, clear CLI errors."""

import csv
import io
from pathlib import Path

import pytest

from sim.cycles import ArrayConfig
from sim.energy import BASELINES, DEFAULT_MLS, Design, ungrouped_gemms, workload_energy, workload_stats
from sim.report import (DEFAULT_GC, DEFAULT_LANES, FP8_REF, TARGETS, _read_fpga, _read_synth, build_report, main,
                        network_workloads, report_designs)
from sim.workloads import NETWORKS, network_gemms

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "reports" / "energy.md"
DESIGNS = report_designs(DEFAULT_MLS, DEFAULT_LANES)


@pytest.fixture(scope="module")
def gc_workloads():
    return network_workloads(DEFAULT_GC)


@pytest.fixture(scope="module")
def generated(gc_workloads):
    synth = _read_synth(ROOT / "reports" / "synth.csv")
    kw = dict(lanes=DEFAULT_LANES, gc=DEFAULT_GC, dot_workloads=gc_workloads[DEFAULT_GC], gc_workloads=gc_workloads,
              fpga=_read_fpga(ROOT / "reports" / "fpga.csv"))   # as main() reads it beside synth.csv
    args = (ArrayConfig(16, 16), DESIGNS, gc_workloads[1], 8.0, synth)
    return build_report(*args, **kw), build_report(*args, **kw)


def test_deterministic(generated):
    (md1, csv1, _), (md2, csv2, _) = generated
    assert md1 == md2 and csv1 == csv2


def test_committed_report_is_current(generated):
    """The committed reports/energy.md equals a fresh `python -m sim.report` run on the committed
    reports/synth.csv (after a new `python -m sim.synth_report`, regenerate both with
    `python -m sim.report --synth`)."""
    md, _, _ = generated[0]
    assert COMMITTED.exists(), "reports/energy.md is missing: run `python -m sim.report`"
    assert COMMITTED.read_text() == md, "reports/energy.md is stale: run `python -m sim.report` and commit it"


def _table_rows(md: str, heading: str) -> list[list[str]]:
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
    return [[c.strip().strip("`") for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| design", "| network", "| ---"))]


def test_four_ways_headline_matches_its_sources(generated):
    """The side-by-side gains come from the model (same numbers as the headline) and from
    reports/synth.csv (area, synthesized energy and activity), for e2m1g3 and e3m3g3 vs FP32 and FP8."""
    md, _, _ = generated[0]
    synth = _read_synth(ROOT / "reports" / "synth.csv")
    rows = _table_rows(md, "## Headline four ways")
    assert [(r[0], r[1]) for r in rows] == [(d, ref) for d in ("mls-e2m1g3", "mls-e3m3g3")
                                            for ref in ("fp32", "fp8e4m3-fp32acc+exact")]
    headline = {r[1]: r for r in _table_rows(md, "## Headline: gain") if r[0] == "resnet20"}
    e2 = synth["mls-e2m1g3"]
    assert rows[0][2] == headline["mls-e2m1g3"][2]          # x FP32 (compute), per step
    assert rows[1][2] == headline["mls-e2m1g3"][4]          # x FP8 (compute), per step
    assert float(rows[0][4]) == pytest.approx(float(e2["area_gain_vs_fp32"]), rel=2e-3)
    assert float(rows[1][4]) == pytest.approx(float(e2["area_gain_vs_fp8"]), rel=2e-3)
    assert float(rows[0][6]) == pytest.approx(float(e2["activity_gain_vs_fp32"]), rel=2e-3)
    assert float(rows[1][6]) == pytest.approx(float(e2["activity_gain_vs_fp8"]), rel=2e-3)
    synth_energy = float(synth["fp32"]["synth_pj_per_mac"]) / float(e2["synth_pj_per_mac"])
    assert float(rows[0][5]) == pytest.approx(synth_energy, rel=2e-3)


def test_report_designs():
    """Old and new side by side: the scalar baselines and MLS designs, the MLS dot PEs and the
    same-lane FP8/INT8 dot PEs."""
    assert DESIGNS == list(BASELINES) + list(DEFAULT_MLS) + [f"mls-{f[4:]}-l{DEFAULT_LANES}" for f in DEFAULT_MLS] + \
        [f"fp8e4m3-dot{DEFAULT_LANES}", f"fp8e5m2-dot{DEFAULT_LANES}", f"int8-dot{DEFAULT_LANES}"]
    assert report_designs(["mls-e2m1g3"], 16)[-4:] == ["mls-e2m1g3-l16", "fp8e4m3-dot16", "fp8e5m2-dot16", "int8-dot16"]


def test_dot_headline_recomputed(generated, gc_workloads):
    """Every cell of the dot headline's gains is recomputed here from the energy model on the
    beat-counted workloads (MLS: chunks of channel block Gc; FP8/INT8: all of K one chunk), and the
    target verdicts follow from those numbers."""
    md, _, _ = generated[0]
    rows = [r for r in _table_rows(md, f"## Headline: the {DEFAULT_LANES}-lane dot-product PE") if len(r) == 14]
    lanes = DEFAULT_LANES
    checked = 0
    for net in NETWORKS:
        gemms = gc_workloads[DEFAULT_GC][net]
        one = workload_stats(gc_workloads[1][net], ArrayConfig(16, 16))
        config = ArrayConfig(16, 16, lanes=lanes)
        grouped, flat = workload_stats(gemms, config), workload_stats(ungrouped_gemms(gemms), config)

        def energy(name):
            d = Design.parse(name)
            st = one if not d.is_dot else grouped if d.kind == "mls" else flat
            return workload_energy(st, d), st

        ref32, ref8 = energy("fp32")[0], energy(FP8_REF)[0]
        refd8, refi8 = energy(f"fp8e4m3-dot{lanes}")[0], energy(f"int8-dot{lanes}")[0]
        for row in (r for r in rows if r[0] == net):
            e, st = energy(row[1])
            assert st.beats * lanes == st.lane_slots and st.macs <= st.lane_slots
            assert row[2] == f"{st.lane_utilization:.3g}"
            assert row[5] == f"{e['compute'] / st.macs:.3g}"
            for col, (ref, part) in zip(range(7, 14), [(ref32, "compute"), (ref32, "total"), (ref8, "compute"),
                                                       (ref8, "total"), (refd8, "compute"), (refi8, "compute"),
                                                       (refi8, "total")]):
                assert row[col] == f"{ref[part] / e[part]:.3g}", (net, row[1], col)
            checked += 1
    assert checked == 2 * len(NETWORKS) + 3 * len(NETWORKS)
    e = workload_energy(workload_stats(gc_workloads[DEFAULT_GC]["resnet20"], ArrayConfig(16, 16, lanes=lanes)),
                        f"mls-e2m1g3-l{lanes}")
    ref = workload_energy(workload_stats(gc_workloads[1]["resnet20"], ArrayConfig(16, 16)), "fp32")
    met = ref["compute"] / e["compute"] >= TARGETS["fp32"]
    assert (f">= {TARGETS['fp32']:g}x FP32: {ref['compute'] / e['compute']:.3g}x, " + ("met." if met else "**missed**.")) in md


def test_dot_four_ways_reads_synth_rows(gc_workloads):
    """Without dot rows in synth.csv the synthesized columns say pending; with them, the area per
    MAC per cycle is transistors over the lanes, relative to each reference."""
    lanes = DEFAULT_LANES
    kw = dict(lanes=lanes, gc=DEFAULT_GC, dot_workloads=gc_workloads[DEFAULT_GC])
    args = (ArrayConfig(16, 16), DESIGNS, gc_workloads[1], 8.0)
    md, _, _ = build_report(*args, {}, **kw)
    rows = [r for r in _table_rows(md, "### The dot headline four ways") if r[0] != "vs"]
    assert [r[0] for r in rows] == ["fp32", FP8_REF, f"fp8e4m3-dot{lanes}", f"int8-dot{lanes}"]
    assert all(r[4:] == ["pending"] * 3 for r in rows)
    synth = {f"mls-e2m1g3-l{lanes}": {"transistors": str(900 * lanes), "gate_toggles_per_mac": "50"},
             "fp32": {"transistors": "27000", "gate_toggles_per_mac": "1000"},
             f"int8-dot{lanes}": {"transistors_per_mac": "1800"}}
    md, _, _ = build_report(*args, synth, **kw)
    rows = {r[0]: r for r in _table_rows(md, "### The dot headline four ways") if r[0] != "vs"}
    assert rows["fp32"][4:6] == ["30", "20"] and rows[f"int8-dot{lanes}"][4:6] == ["2", "pending"]
    assert rows[FP8_REF][4] == "pending"


def test_csv_consistent(generated):
    _, text, _ = generated[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(NETWORKS) * len(DESIGNS)
    for row in rows:
        assert int(row["beats"]) * int(row["lanes"]) >= int(row["macs"])
        parts = sum(float(row[p]) for p in ("multiplier", "exponent", "aligner", "tree", "group_shift",
                                             "accumulator", "registers", "quantize", "convert"))
        assert parts == pytest.approx(float(row["compute_pJ"]), rel=1e-5)
        assert float(row["total_pJ"]) == pytest.approx(float(row["compute_pJ"]) + float(row["sram_pJ"]), rel=1e-5)
        if row["design"] == "fp32":
            assert float(row["gain_fp32_total"]) == 1.0
        if row["design"].startswith("mls-"):
            assert float(row["gain_fp32_compute"]) > 1.0


def test_user_gemm_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("layer,pass,m,n,k\nfc1,forward,256,512,1024\nfc1,backward-weight,512,1024,256\n")
    assert main(["--gemm-csv", str(path), "--out", str(tmp_path), "--array", "8x8", "--synth", str(tmp_path / "none.csv")]) == 0
    text = (tmp_path / "energy.md").read_text()
    assert "**mine**: 2 GEMMs" in text
    assert (tmp_path / "energy.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--array", "0x16"], "rows must be in"),
    (["--formats", "fp32"], "--formats takes MLS designs"),
    (["--formats", "mls-e2m1"], "is not one of"),
    (["--sram-kib", "0"], "SRAM size"),
    (["--lanes", "0"], "--lanes must be in [1, 1024], got 0"),
    (["--gc", "0"], "--gc must be at least 1, got 0"),
])
def test_cli_errors(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(args + ["--out", str(tmp_path / "never")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_cli_bad_gemm_csv(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,pass,m,n,k\nx,forward,4,4,-2\n")
    with pytest.raises(SystemExit) as info:
        main(["--gemm-csv", str(bad), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "line 2" in capsys.readouterr().err
