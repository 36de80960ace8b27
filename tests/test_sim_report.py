"""Energy report (sim/report.py): deterministic, matches the committed report, clear CLI errors."""

import csv
import io
from pathlib import Path

import pytest

from sim.cycles import ArrayConfig
from sim.energy import BASELINES, DEFAULT_MLS
from sim.report import _read_synth, build_report, main
from sim.workloads import NETWORKS, network_gemms

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "reports" / "energy.md"


@pytest.fixture(scope="module")
def generated():
    workloads = {net: network_gemms(net) for net in NETWORKS}
    synth = _read_synth(ROOT / "reports" / "synth.csv")
    args = (ArrayConfig(16, 16), list(BASELINES) + list(DEFAULT_MLS), workloads, 8.0, synth)
    return build_report(*args), build_report(*args)


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


def test_csv_consistent(generated):
    _, text, _ = generated[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(NETWORKS) * (len(BASELINES) + len(DEFAULT_MLS))
    for row in rows:
        parts = sum(float(row[p]) for p in ("multiplier", "exponent", "aligner", "accumulator", "registers",
                                             "quantize", "convert"))
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
