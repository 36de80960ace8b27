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
SYNTH_HEADING = "## Synthesis cross-check"


@pytest.fixture(scope="module")
def generated():
    workloads = {net: network_gemms(net) for net in NETWORKS}
    synth = _read_synth(ROOT / "reports" / "synth.csv")
    args = (ArrayConfig(16, 16), list(BASELINES) + list(DEFAULT_MLS), workloads, 8.0, synth)
    return build_report(*args), build_report(*args)


def test_deterministic(generated):
    (md1, csv1, _), (md2, csv2, _) = generated
    assert md1 == md2 and csv1 == csv2


def _without_synth(text: str) -> str:
    return text.split(SYNTH_HEADING)[0]


def test_committed_report_is_current(generated):
    """The committed reports/energy.md equals a fresh `python -m sim.report` (the synthesis
    section, which follows reports/synth.csv from another flow, is compared separately by
    regenerating)."""
    md, _, _ = generated[0]
    assert COMMITTED.exists(), "reports/energy.md is missing: run `python -m sim.report`"
    assert _without_synth(COMMITTED.read_text()) == _without_synth(md), \
        "reports/energy.md is stale: run `python -m sim.report` and commit it"


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
