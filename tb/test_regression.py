# amaranth: UnusedElaboratable=no
"""The long regression (``python -m tb.regression``) kept working on a tiny count: the CLI on a
2x3 array (L = 4 and the scalar PE) writes its report; the vectorized twins it relies on equal
the per-tile references (``pack_beats``, ``beat_accumulate``, ``BeatPacker``) for several
formats, lanes and chunkings, including saturating accumulators; a wrong output row is reported.
The full run (``--macs 1e9``, every MLS preset at its size, Verilator) is opt-in (README,
"Verification")."""

import pytest
import torch

import tb.harness as harness
from hw.array import SystolicArray
from model.formats import MLSFormat
from tb.regression import main
from tb.regression_cocotb import compare
from tb.regression_vectors import (LinePacker, batch_beats, batch_golden, check_twins, decode_row, expected_rows,
                                   pack_payloads, random_batch)


@pytest.mark.parametrize("fa, fw, lanes, k, k_chunk, acc_bits", [
    ("e2m1g3", "e2m1g3", 16, 70, 32, 29),
    ("e3m3g3", "e3m3g3", 16, 40, 40, 40),
    ("e2m1g3", "e3m3g3", 4, 37, 5, 30),
    ("e2m1g3", "e2m1g3", 1, 9, 3, 29),
    ("e2m1g3", "e2m1g3", 9, 50, 10, 6),    # narrow: saturates
])
def test_twins_equal_references(fa, fw, lanes, k, k_chunk, acc_bits):
    fa, fw = MLSFormat.parse(fa), MLSFormat.parse(fw)
    gen = torch.Generator().manual_seed(7)
    packers = (LinePacker(fa, lanes), LinePacker(fw, lanes))
    arr = SystolicArray(fa, 3, 2, max_k=128, lanes=lanes, **({"fmt_w": fw} if fw != fa else {}))
    a_data_bits = arr.a_layout["last"].offset
    for sparse in (0.0, 0.5):
        batch = random_batch(gen, fa, fw, 3, 3, 2, k, k_chunk, sparse)
        beats = batch_beats(batch, lanes)
        golden = batch_golden(fa, fw, *beats[1:], acc_bits)
        strs = pack_payloads(packers, *beats[1:], a_data_bits)
        check_twins(batch, lanes, acc_bits, beats, golden, strs, packers, a_data_bits)
        # every tile, not only tile 0, through beat_accumulate
        from model.arith import beat_accumulate
        from model.beats import pack_beats
        for n in range(batch.tiles):
            acc, ovf = beat_accumulate(pack_beats(batch.operand(n, "a"), batch.operand(n, "w"), lanes), acc_bits)
            assert torch.equal(acc, golden[0][n]) and torch.equal(ovf, golden[1][n])
        rows = expected_rows(*golden, acc_bits)
        assert len(rows) == 3 * 3 and all(len(r) == 2 * acc_bits + 2 + 1 for r in rows)
        for i, r in enumerate(rows):
            data, flags, last = decode_row(r, 2, acc_bits)
            assert data == golden[0][i // 3, i % 3].tolist() and flags == golden[1][i // 3, i % 3].int().tolist()
            assert last == int(i % 3 == 2)
    if acc_bits == 6:
        assert golden[1].any(), "the narrow case never saturated"


def test_compare_reports_a_wrong_row():
    acc = torch.tensor([[[5, -3], [0, 7]]])
    rows = expected_rows(acc, torch.zeros_like(acc, dtype=torch.bool), 8)
    compare(rows, rows, 0, {"rows": 2, "cols": 2, "acc_bits": 8})
    bad = list(rows)
    bad[1] = bad[1][:-2] + ("1" if bad[1][-2] == "0" else "0") + bad[1][-1]   # flip bit 1 of column 0
    with pytest.raises(AssertionError, match=r"tile 0 row 1: rtl"):
        compare(bad, rows, 0, {"rows": 2, "cols": 2, "acc_bits": 8})


def test_regression_cli_tiny(tmp_path):
    """Two presets on a 2x3 array under the test simulator: every row verified, report written."""
    report = tmp_path / "regression.md"
    assert main(["--macs", "4000", "--seed", "3", "--sim", harness.SIM, "--presets", "e2m1g3-l4,e2m1g3",
                 "--rows", "2", "--cols", "3", "--max-k", "64", "--report", str(report), "--no-progress"]) == 0
    text = report.read_text()
    assert "| e2m1g3-l4 | e2m1g3 | 4 | 2x3 |" in text and "| e2m1g3 | e2m1g3 | 1 | 2x3 |" in text
    assert "seed: 3" in text and f"simulator: {harness.SIM}" in text


def test_regression_cli_refuses_bad_input(capsys):
    for argv, msg in ((["--presets", "fp32-8x8"], "not an MLS preset"), (["--macs", "0"], "whole number >= 1"),
                      (["--rows", "0"], "--rows must be at least 1")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and msg in capsys.readouterr().err


def _native_batch(arr, seed, k=40, k_chunk=5, tiles=3):
    from tb.regression_vectors import expected_row_bits, payload_bits
    fa, fw, lanes = arr.fmt_a, arr.fmt_w, arr.lanes
    gen = torch.Generator().manual_seed(seed)
    batch = random_batch(gen, fa, fw, tiles, arr.rows, arr.cols, k, k_chunk, 0.2)
    beats = batch_beats(batch, lanes)
    golden = batch_golden(fa, fw, *beats[1:], arr.acc_bits)
    a_bits, w_bits = payload_bits((LinePacker(fa, lanes), LinePacker(fw, lanes)), *beats[1:],
                                  arr.a_layout["last"].offset)
    return a_bits, w_bits, expected_row_bits(*golden, arr.acc_bits), golden, beats[1].shape[1]


def test_native_driver_bit_exact_stalls_and_cycles():
    """The Verilator-native driver (tb/native_array.py) on a 3x2 L = 4 array with a narrow,
    saturating accumulator: rows bit-exact with the batched golden model with and without stalls,
    stall-free cycles equal hw.array.timing, a flipped payload bit changes the rows, and no row
    follows the last one."""
    from hw.array.timing import ArrayTiming
    from tb.native_array import NativeArray, words_of_bits

    arr = SystolicArray("e2m1g3", 3, 2, max_k=64, lanes=4, acc_bits=8)
    timing = ArrayTiming(3, 2, arr.pe_latency, 4)
    with NativeArray(arr, build_tag="test_native_3x2_l4_acc8") as sim:
        a_bits, w_bits, want_bits, golden, tile_beats = _native_batch(arr, 11)
        assert golden[1].any(), "the narrow accumulator never saturated"
        want = words_of_bits(want_bits)
        got = sim.stream(a_bits, w_bits, want.shape[0])
        assert (got.rows == want).all()
        assert got.last_out - got.first_in + 1 == timing.tiles_cycles_from_beats([tile_beats] * 3)
        for n, stalls in enumerate([(0.3, 0.0, 0.0), (0.0, 0.3, 0.5), (0.4, 0.4, 0.7)]):
            a_bits, w_bits, want_bits, _, _ = _native_batch(arr, 20 + n)
            got = sim.stream(a_bits, w_bits, want_bits.shape[0], stalls, seed=n)
            assert (got.rows == words_of_bits(want_bits)).all(), f"stalls {stalls}"
        a_bits, w_bits, want_bits, _, _ = _native_batch(arr, 30)
        pk = LinePacker(arr.fmt_a, 4)
        for lane in range(4):                               # negate every element of row 0's A line
            a_bits[:, pk.elem_base + lane * pk.elem_size + pk.sign] ^= 1
        got = sim.stream(a_bits, w_bits, want_bits.shape[0])
        assert not (got.rows == words_of_bits(want_bits)).all(), "a corrupted beat still gave the expected rows"
        sim.check_no_spurious_row(3 + 2 + arr.pe_latency + 4)


def test_native_driver_refuses_bad_input():
    from tb.native_array import NativeArray

    arr = SystolicArray("e2m1g3", 3, 2, max_k=64, lanes=4, acc_bits=8)
    with NativeArray(arr, build_tag="test_native_3x2_l4_acc8") as sim:
        a_bits, w_bits, want_bits, _, _ = _native_batch(arr, 11)
        with pytest.raises(ValueError, match=r"the array takes \[beats, \d+\] and \[beats, \d+\]"):
            sim.stream(a_bits[:, :-1], w_bits, 9)
        with pytest.raises(ValueError, match=r"stall_c = 1.0: a stall probability must be in \[0, 1\)"):
            sim.stream(a_bits, w_bits, 9, (0.0, 0.0, 1.0))
        with pytest.raises(AssertionError, match="native timeout"):
            sim.stream(a_bits, w_bits, want_bits.shape[0] + 1, max_cycles=2000)


def test_regression_cli_native_tiny(tmp_path):
    report = tmp_path / "regression.md"
    assert main(["--macs", "20000", "--seed", "3", "--sim", "verilator-native", "--presets", "e2m1g3-l4,e3m3g3",
                 "--rows", "2", "--cols", "3", "--max-k", "64", "--report", str(report), "--no-progress"]) == 0
    text = report.read_text()
    assert "| e2m1g3-l4 | e2m1g3 | 4 | 2x3 |" in text and "simulator: verilator-native" in text
    assert "native driver's C++ clock loop" in text
