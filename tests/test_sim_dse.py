"""DSE quality proxy and CLI (sim/dse.py), captured tensors (model/capture.py)."""

import csv
import itertools

import pytest
import torch

from model.beats import count_beats
from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import quantize
from model.capture import DATA_FILE, ROLES, load_tensors
from sim.cycles import ArrayConfig
from sim.dse import PAPER_FORMATS, gemm_quality, main, pareto_front, recommend
from sim.energy import Design, ungrouped_gemms, workload_energy, workload_stats
from sim.workloads import network_gemms


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


def test_quality_per_channel_block(tensors):
    """Gc groups gc channels under one group exponent: the quantization SNR is that of
    quantize(..., Grouping.channel(gc)) and a larger block never quantizes better here."""
    fmt = MLSFormat(2, 1, 3)
    by_gc = {gc: gemm_quality(fmt, tensors, gc=gc) for gc in (1, 4, 32)}
    for gc, q in by_gc.items():
        x = tensors["activation"].double()
        err = x - quantize(tensors["activation"], fmt, Grouping.channel(gc)).dequantize().double()
        assert q["snr_activation"] == pytest.approx(float(10 * torch.log10((x ** 2).sum() / (err ** 2).sum())), abs=1e-9)
    assert by_gc[1] == gemm_quality(fmt, tensors)  # Gc = 1 is the default channel grouping
    for key in ("snr_activation", "snr_weight", "snr_gemm@0"):
        assert by_gc[1][key] > by_gc[4][key] > by_gc[32][key]


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
    args = ["--exp-bits", "2", "--man-bits", "1,2", "--group-bits", "0,3", "--acc-deficits", "0,20",
            "--arrays", "8x8,16x16", "--networks", "resnet20", "--jobs", "1", "--no-progress", "--out", str(tmp_path),
            "--lanes", "1", "--gc", "1", "--train-epochs", "0"]
    assert main(args) == 0
    with open(tmp_path / "dse.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2 * 2
    for name in ("dse.md", "dse_pareto_step.png", "dse_pareto_snr.png", "dse_pareto_area.png"):
        assert (tmp_path / name).stat().st_size > 0
    by = {(r["format"], r["acc_deficit"], r["array"]): r for r in rows}
    exact, starved = by[("e2m1g3", "0", "16x16")], by[("e2m1g3", "20", "16x16")]
    assert float(starved["snr_gemm"]) < float(exact["snr_gemm"])
    assert float(starved["resnet20_total_pJ_per_mac"]) < float(exact["resnet20_total_pJ_per_mac"])
    assert int(exact["resnet20_acc_bits"]) == MLSFormat(2, 1, 3).acc_bits_exact(131072)


def test_sweep_outputs_are_deterministic(tmp_path, capsys):
    """Reruns write the same bytes (no wall time in dse.md); timings go to the console."""
    args = ["--exp-bits", "2", "--man-bits", "1", "--group-bits", "0,3", "--acc-deficits", "0",
            "--arrays", "8x8", "--plot-array", "8x8", "--networks", "resnet20", "--jobs", "1", "--no-progress",
            "--lanes", "1,9", "--gc", "1,4", "--train-epochs", "0"]
    for run in ("a", "b"):
        assert main(args + ["--out", str(tmp_path / run)]) == 0
    console = capsys.readouterr().out
    assert " s on 1 processes" in console and " ms; wrote " in console
    for name in ("dse.md", "dse.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    md = (tmp_path / "a" / "dse.md").read_text()
    assert "wall time" not in md and " ms." not in md and "Points: 8 (2 formats" in md
    for name in ("dse_pareto_step.png", "dse_pareto_snr.png", "dse_pareto_area.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--man-bits", "x"], "comma-separated integers"),
    (["--arrays", "16by16"], "must look like RxC"),
    (["--exp-bits", "9"], "exp_bits must be in"),
    (["--exp-bits", "0", "--man-bits", "0"], "has no format"),
    (["--acc-deficits", "-1"], "deficits must be >= 0"),
    (["--plot-array", "4x4"], "is not one of the swept arrays"),
    (["--networks", "vgg16"], "choose from resnet20, resnet18"),
    (["--lanes", "0"], "--lanes values must be in [1, 1024]"),
    (["--train-epochs", "-1"], "--train-epochs must be >= 0"),
    (["--gc", "0,4"], "--gc values must be at least 1"),
    (["--lanes", "9,9"], "a value is listed twice"),
    (["--lanes", "1,9", "--arrays", "16x16-ws", "--plot-array", "16x16-ws"], "lanes > 1 need output-stationary"),
])
def test_cli_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args + ["--out", "/nonexistent/never-written"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("below", [1, 0])
def test_cli_refuses_a_deficit_that_leaves_no_accumulator(below, capsys):
    """A deficit that leaves the narrowest format's accumulator under 2 bits (sign + 1) on the
    network's longest reduction is refused, naming the width; one bit more is accepted by the check."""
    from model.formats import MLSFormat
    from sim.workloads import network_gemms

    k_max = max(g.k for g in network_gemms("resnet20"))
    exact = MLSFormat.parse("e1m0g1").acc_bits_exact(k_max)
    deficit = exact - 2 + below
    with pytest.raises(SystemExit) as info:
        main(["--exp-bits", "1", "--man-bits", "0", "--group-bits", "1", "--networks", "resnet20",
              "--acc-deficits", f"0,{deficit}", "--plot-array", "4x4", "--out", "/nonexistent/never-written"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    if below:
        assert (f"--acc-deficits {deficit}: e1m0g1 on resnet20 (K up to {k_max}, exact width {exact}) would leave "
                f"a 1-bit accumulator; at least 2 bits are needed") in err
    else:   # 2 bits left: past the width check, stopped by the next one (the plot array is not swept)
        assert "would leave" not in err and "--plot-array '4x4' is not one of the swept arrays" in err


def test_lanes_and_gc_sweep(tmp_path):
    """`--lanes 1,9,16 --gc 1,4`: every (L, Gc) point's energy is the energy model on the workload
    traced with that Gc and counted in beats on an L-lane array (L = 1: the scalar MLS PE); its
    lane utilization is the beat count's; quality depends on Gc only."""
    args = ["--exp-bits", "2", "--man-bits", "1", "--group-bits", "3", "--acc-deficits", "0,8",
            "--arrays", "16x16", "--networks", "resnet20", "--jobs", "1", "--no-progress", "--out", str(tmp_path),
            "--lanes", "1,9,16", "--gc", "1,4", "--train-epochs", "0"]
    assert main(args) == 0
    with open(tmp_path / "dse.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 3 * 2
    fmt = MLSFormat(2, 1, 3)
    for gc in (1, 4):
        gemms = network_gemms("resnet20", gc=gc)
        for lanes in (1, 9, 16):
            st = workload_stats(gemms, ArrayConfig(16, 16, lanes=lanes))
            beats = sum(g.m * g.n * count_beats(g.k, g.k_chunk, lanes) for g in gemms)
            assert st.beats == beats
            for deficit in (0, 8):
                row = next(r for r in rows if (r["lanes"], r["gc"], r["acc_deficit"]) == (str(lanes), str(gc), str(deficit)))
                acc = fmt.acc_bits_exact(st.k_max) - deficit
                design = Design.mls(fmt, None if lanes == 1 else lanes, acc)
                e = workload_energy(st, design)
                assert row["resnet20_step_mJ"] == f"{e['total'] * 1e-9:.6g}"
                assert row["resnet20_compute_pJ_per_mac"] == f"{e['compute'] / st.macs:.6g}"
                assert row["resnet20_lane_utilization"] == f"{st.macs / (beats * lanes):.6g}"
        snrs = {r["snr_gemm"] for r in rows if r["gc"] == str(gc) and r["acc_deficit"] == "0"}
        assert len(snrs) == 1  # lanes do not change an exact accumulator's result
    gc1 = next(r for r in rows if r["gc"] == "1" and r["acc_deficit"] == "0")
    gc4 = next(r for r in rows if r["gc"] == "4" and r["acc_deficit"] == "0")
    assert gc1["snr_gemm"] != gc4["snr_gemm"]
    md = (tmp_path / "dse.md").read_text()
    assert "## Recommended configurations" in md and "| resnet20 | **recommended** | `e2m1g3` |" in md


def test_gc_training_is_seeded_and_uses_the_grouping():
    """One short digits run per (format, Gc, seed): reruns give the same accuracy, Gc = 1 is the
    default channel grouping, and the dse.md table reports each seed."""
    from model.train import TrainConfig, train
    from sim.dse import _training_section, gc_training

    kw = dict(seeds=(0,), epochs=1, train_subset=256)
    first = gc_training(["e2m1g3"], (1, 4), **kw)
    assert first == gc_training(["e2m1g3"], (1, 4), **kw)
    direct = train(TrainConfig(quant="a=e2m1g3,w=e2m1g3,e=e2m1g3", epochs=1, seed=0, progress=False, threads=1,
                               train_subset=256), log=lambda *_: None)
    assert first[0]["gc"] == 1 and first[0]["final_test_acc"] == direct["final_test_acc"]
    lines = _training_section(first)
    assert any(line.startswith("| `e2m1g3` |") and f"{first[1]['final_test_acc']:.2f}" in line for line in lines)


def test_beat_ids_follow_the_beat_packer():
    """Beats of one output: ceil(chunk / L) per chunk, ascending, never spanning two chunks."""
    from sim.dse import beat_ids

    for k, chunk, lanes in itertools.product((1, 9, 20, 64, 288), (1, 4, 9, 36, 64), (1, 4, 9, 16)):
        ids = beat_ids(k, chunk, lanes).tolist()
        assert len(ids) == k and ids == sorted(ids) and ids[-1] + 1 == count_beats(k, chunk, lanes)
        for b in set(ids):
            ks = [i for i, v in enumerate(ids) if v == b]
            assert len(ks) <= lanes and ks[0] // chunk == ks[-1] // chunk


def test_dot_pe_saturates_per_beat(tensors, monkeypatch):
    """With L lanes the replay adds beat sums (each the sum of its chunk's L products), so the
    saturating result is model.arith.accumulate over the beats; an exact accumulator is the
    same for every L."""
    import sim.dse as dse

    calls = []
    real = dse._saturating_sum

    def spy(terms, acc_bits, term_bits):
        calls.append((terms.shape[1], term_bits))
        return real(terms, acc_bits, term_bits)

    monkeypatch.setattr(dse, "_saturating_sum", spy)
    fmt = MLSFormat(2, 4, 3)
    q = gemm_quality(fmt, tensors, (0, 8), lanes=(1, 9, 16))
    for n in (9, 16):
        assert q[f"snr_gemm@0@L{n}"] == q["snr_gemm@0"]
        assert q[f"snr_gemm@8@L{n}"] != q["snr_gemm@8"]
    widths = {w for _, w in calls}
    assert fmt.product_bits() in widths and fmt.acc_bits_exact(9) in widths and fmt.acc_bits_exact(16) in widths
    # forward / backward-data / backward-weight of the captured conv: K 288 (chunks 9), 288 (9), 1024 (64)
    beats9 = {count_beats(k, c, 9) for k, c in ((288, 9), (288, 9), (1024, 64))}
    assert {n for n, w in calls if w == fmt.acc_bits_exact(9)} <= beats9


def test_recommend_rule():
    """Lowest energy per step among points at least as good as the paper format's scalar, Gc = 1,
    exact point; ties keep the earlier row; no floor point, no recommendation."""
    def row(fmt, lanes, gc, deficit, mj, snr):
        return {"format": fmt, "array": "16x16", "lanes": lanes, "gc": gc, "acc_deficit": deficit,
                "resnet20_step_mJ": mj, "snr_gemm": snr}
    floor = row(PAPER_FORMATS["resnet20"], 1, 1, 0, 10.0, 12.0)
    rows = [floor, row("a", 9, 1, 0, 5.0, 12.0), row("b", 9, 4, 0, 4.0, 11.9), row("c", 16, 1, 4, 5.0, 13.0),
            dict(row("d", 9, 1, 0, 1.0, 50.0), array="8x8")]
    best, got_floor = recommend(rows, "16x16", "resnet20")
    assert got_floor is floor and best["format"] == "a"
    best, _ = recommend(rows + [row(PAPER_FORMATS["resnet20"], 9, 1, 8, 6.0, 12.0)], "16x16", "resnet20",
                        same_format=True)
    assert (best["lanes"], best["acc_deficit"]) == (9, 8)
    assert recommend(rows[1:], "16x16", "resnet20") is None
    assert recommend(rows, "16x16", "resnet18") is None


def test_dot_baselines_pack_all_of_k():
    gemms = network_gemms("resnet20")
    flat = workload_stats(ungrouped_gemms(gemms), ArrayConfig(16, 16, lanes=9))
    assert flat.beats == sum(g.m * g.n * -(-g.k // 9) for g in gemms)
    assert flat.macs == workload_stats(gemms, ArrayConfig(16, 16)).macs


def test_accuracy_section_rank_correlation(tmp_path):
    # dse.md ranks the SNR proxy against measured accuracy (scipy.stats.spearmanr). Ties get
    # average ranks: with fb and fc tied in SNR, rho = 4.5 / sqrt(4.5 * 5) = 0.95 (ranking the
    # tie in order would give 0.80).
    from sim.dse import _accuracy_section

    path = tmp_path / "accuracy_digits.csv"
    path.write_text("format,seed,final_test_acc\n" + "".join(
        f"{f},{s},{a + s - 1}\n" for f, a in (("fa", 10), ("fb", 30), ("fc", 20), ("fd", 40)) for s in (0, 2)))

    def rows(snrs):
        return [{"format": f, "array": "4x4", "acc_deficit": 0, "snr_gemm": snr, "resnet20_total_pJ_per_mac": 1.0,
                 "lanes": 1, "gc": 1}
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
