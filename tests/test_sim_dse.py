"""DSE quality proxy and CLI (sim/dse.py), captured tensors (model/capture.py)."""

import csv

import pytest
import torch

from model.formats import MLSFormat
from model.quantize import quantize
from model.capture import DATA_FILE, ROLES, load_tensors
from sim.dse import gemm_quality, main, pareto_front


@pytest.fixture(scope="module")
def tensors():
    return load_tensors()


def test_captured_file_is_small_and_real(tensors):
    assert DATA_FILE.stat().st_size < 1_000_000
    assert set(tensors) == set(ROLES)
    for role in ROLES:
        x = tensors[role]
        assert x.dtype == torch.float32 and torch.isfinite(x).all() and x.abs().max() > 0
    assert (tensors["activation"] >= 0).all()  # the conv reads a ReLU output


def test_quality_matches_direct_quantization(tensors):
    fmt = MLSFormat(2, 3, 2)
    q = gemm_quality(fmt, tensors)
    x = tensors["weight"].double()
    err = x - quantize(tensors["weight"], fmt).dequantize().double()
    expected = 10 * torch.log10((x ** 2).sum() / (err ** 2).sum())
    assert q["snr_weight"] == pytest.approx(float(expected), abs=1e-9)


def test_quality_trends(tensors):
    snr = {m: gemm_quality(MLSFormat(2, m, 3), tensors, (0, 6, 24)) for m in (1, 3, 5)}
    for key in ("snr_activation", "snr_weight", "snr_error", "snr_gemm@0"):
        assert snr[1][key] < snr[3][key] < snr[5][key]  # each mantissa bit buys ~6 dB
    for m in (1, 3, 5):
        # an exact accumulator never saturates; starving it of 24 bits must hurt
        assert snr[m]["snr_gemm@24"] < snr[m]["snr_gemm@0"] - 3
        assert snr[m]["snr_gemm@0"] >= snr[m]["snr_gemm@6"] - 1e-9


def test_integers_exact_past_int64(tensors):
    """G = 6 integers pass int64 (e2m1g6: 67 bits); the quality proxy must not wrap them. On these
    tensors no group exponent reaches 32, so e2m1g6 quantizes to exactly e2m1g5's values and every
    SNR must be the same (it was -0.13 dB for the GEMMs when to_int() wrapped)."""
    g5, g6 = MLSFormat.parse("e2m1g5"), MLSFormat.parse("e2m1g6")
    assert g6.int_bits > 64
    for role in ("activation", "weight"):
        assert torch.equal(quantize(tensors[role], g5).dequantize(), quantize(tensors[role], g6).dequantize())
    q5, q6 = gemm_quality(g5, tensors, (0, 8)), gemm_quality(g6, tensors, (0, 8))
    assert q6 == q5 and q6["snr_gemm@0"] > 5


def test_narrow_accumulator_is_model_arith_accumulate(tensors, monkeypatch):
    """The saturating replay is model.arith.accumulate (k ascending, sticky) where it fits int64."""
    import sim.dse as dse
    from model import arith

    calls = []

    def spy(products, acc_bits, order=None):
        calls.append((tuple(products.shape), acc_bits))
        return arith.accumulate(products, acc_bits, order)

    monkeypatch.setattr(dse, "accumulate", spy)
    fmt = MLSFormat.parse("e2m1g3")
    q = gemm_quality(fmt, tensors, (0, 24))
    assert calls and all(bits == fmt.acc_bits_exact(k) - 24 for (_, k), bits in calls)
    assert q["snr_gemm@24"] < q["snr_gemm@0"] - 3
    # a saturated sum equals the int64 reference exactly
    products = torch.tensor([[7.0, 9.0, -30.0, 4.0], [-3.0, -20.0, 5.0, 1.0]], dtype=torch.float64)
    expected = arith.accumulate(products.to(torch.int64), 5)[0].double()
    assert torch.equal(dse._saturating_sum(products, 5, 5), expected)
    assert expected.tolist() == [-11.0, -10.0]
    # wider than int64: the same add-then-clamp in float64, limits +-2**74 (the -1 of the upper
    # limit is below float64's resolution there): 7+9 -> 16, -30 -> -14, +4 -> -10; -3-20 -> -16,
    # +5+1 -> -10 (units of 2**70)
    wide = products * 2.0**70
    assert dse._saturating_sum(wide, 75, 80).tolist() == [-10 * 2.0**70, -10 * 2.0**70]


def test_pareto_front():
    rows = [dict(c=1, b=1), dict(c=2, b=0), dict(c=2, b=3), dict(c=3, b=2), dict(c=4, b=5)]
    assert [(r["c"], r["b"]) for r in pareto_front(rows, "c", "b")] == [(1, 1), (2, 3), (4, 5)]


def test_small_sweep(tmp_path):
    args = ["--exp-bits", "2", "--man-bits", "1,2", "--group-bits", "0,3", "--acc-deficits", "0,30",
            "--arrays", "8x8,16x16", "--networks", "resnet20", "--jobs", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    with open(tmp_path / "dse.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2 * 2
    for name in ("dse.md", "dse_pareto_snr.png", "dse_pareto_area.png"):
        assert (tmp_path / name).stat().st_size > 0
    by = {(r["format"], r["acc_deficit"], r["array"]): r for r in rows}
    exact, starved = by[("e2m1g3", "0", "16x16")], by[("e2m1g3", "30", "16x16")]
    assert float(starved["snr_gemm"]) < float(exact["snr_gemm"])
    assert float(starved["resnet20_total_pJ_per_mac"]) < float(exact["resnet20_total_pJ_per_mac"])
    assert int(exact["resnet20_acc_bits"]) == MLSFormat(2, 1, 3).acc_bits_exact(131072)


def test_sweep_outputs_are_deterministic(tmp_path, capsys):
    """Reruns write the same bytes (no wall time in dse.md); timings go to the console."""
    args = ["--exp-bits", "2", "--man-bits", "1", "--group-bits", "0,3", "--acc-deficits", "0",
            "--arrays", "8x8", "--plot-array", "8x8", "--networks", "resnet20", "--jobs", "1", "--no-progress"]
    for run in ("a", "b"):
        assert main(args + ["--out", str(tmp_path / run)]) == 0
    console = capsys.readouterr().out
    assert " s on 1 processes" in console and " ms; wrote " in console
    for name in ("dse.md", "dse.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    md = (tmp_path / "a" / "dse.md").read_text()
    assert "wall time" not in md and " ms." not in md and "Points: 2 (2 formats" in md


@pytest.mark.parametrize("args, message", [
    (["--man-bits", "x"], "comma-separated integers"),
    (["--arrays", "16by16"], "must look like RxC"),
    (["--exp-bits", "9"], "exp_bits must be in"),
    (["--exp-bits", "0", "--man-bits", "0"], "has no format"),
    (["--acc-deficits", "-1"], "deficits must be >= 0"),
    (["--plot-array", "4x4"], "is not one of the swept arrays"),
    (["--networks", "vgg16"], "choose from resnet20, resnet18"),
])
def test_cli_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args + ["--out", "/nonexistent/never-written"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_accuracy_section_rank_correlation(tmp_path):
    # dse.md ranks the SNR proxy against measured accuracy (scipy.stats.spearmanr). Ties get
    # average ranks: with fb and fc tied in SNR, rho = 4.5 / sqrt(4.5 * 5) = 0.95 (ranking the
    # tie in order would give 0.80).
    from sim.dse import _accuracy_section

    path = tmp_path / "accuracy_digits.csv"
    path.write_text("format,seed,final_test_acc\n" + "".join(
        f"{f},{s},{a + s - 1}\n" for f, a in (("fa", 10), ("fb", 30), ("fc", 20), ("fd", 40)) for s in (0, 2)))

    def rows(snrs):
        return [{"format": f, "array": "4x4", "acc_deficit": 0, "snr_gemm": snr, "resnet20_total_pJ_per_mac": 1.0}
                for f, snr in zip(("fa", "fb", "fc", "fd"), snrs)]

    def rho_line(snrs):
        return _accuracy_section(rows(snrs), "4x4", "resnet20", path)[-1]

    assert "over these 4 formats: 0.80 " in rho_line([1, 2, 3, 4])    # 1 - 6 * 2 / (4 * 15)
    assert "over these 4 formats: 0.95 " in rho_line([1, 2, 2, 4])    # fb, fc tied
    assert "over these 4 formats: -0.80 " in rho_line([4, 3, 2, 1])
    assert _accuracy_section(rows([1, 2, 3, 4])[:2], "4x4", "resnet20", path) == []   # fewer than 3 formats
    assert _accuracy_section(rows([1, 2, 3, 4]), "4x4", "resnet20", tmp_path / "absent.csv") == []


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--acc-deficits" in capsys.readouterr().out
