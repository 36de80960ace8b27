# amaranth: UnusedElaboratable=no
"""Same-lane dot-product baselines (hw/baseline FP8DotPE, INT8DotPE, FP32WideAdder) under cocotb,
bit-exact against model.baseline_arith (docs/numerics.md §3.1, fair baselines).

``pytest tb/ -k "dot and (fp8 or int8)"`` selects these. Default runs (Icarus):
- FP8: E4M3 x E4M3 at L = 1, 4 (every code pair in every lane) and 9, 16 (every pair once),
  E5M2 x E5M2 at L = 4 and the mixed pairs at L = 9 (E4M3 x E5M2) and L = 4 (E5M2 x E4M3)
  (every pair once), each followed by random tiles; random tiles of E5M2 x E5M2 at L = 16,
  E4M3 x E5M2 at L = 1 and with a register after every tree level;
- the wide FP32 add alone for the E4M3 x E4M3 L = 4 and E5M2 x E5M2 L = 16 windows;
- INT8 at L = 1, 4 (every operand pair in every lane) and 9, 16 (every pair once), random
  tiles, and the INT32 wrap at L = 16.
``MLS_SLOW=1`` adds every pair in every lane for the rest.
"""

from __future__ import annotations

import pytest

from hw.baseline import FP8DotPE, FP32WideAdder, INT8DotPE, fp8_dot_pe_signature, int8_dot_pe_signature
from hw.baseline.layout import float_layout
from hw.pe import MLSDotPE, PESignature
from model import baseline_arith as ba
from model.floats import FP32
from tb.harness import run_cocotb


def _run_fp8(fmt_a, fmt_w, lanes, testcase, *, tiles=150, seed=1, pair_mode="every_lane", **kw):
    pe = FP8DotPE(fmt_a, fmt_w, lanes, **kw)
    run_cocotb(pe, "fp8_dot_pe", "baseline_dot_cocotb", testcase=testcase,
               params={"kind": "fp8", "fmt_a": fmt_a, "fmt_w": fmt_w, "lanes": lanes, "latency": pe.latency,
                       "tiles": tiles, "seed": seed, "pair_mode": pair_mode})


def _run_int8(lanes, testcase, *, tiles=150, seed=1, pair_mode="every_lane"):
    pe = INT8DotPE(lanes)
    run_cocotb(pe, "int8_dot_pe", "baseline_dot_cocotb", testcase=testcase,
               params={"kind": "int8", "lanes": lanes, "latency": pe.latency, "tiles": tiles, "seed": seed,
                       "pair_mode": pair_mode})


# Every code pair in every lane costs 65,536 beats per PE; the default run does that at L = 1
# and 4 and, at larger L and for the other format pairs, shows every pair once (65,536 / L beats,
# a random lane each); MLS_SLOW=1 adds every pair in every lane for those too.
@pytest.mark.parametrize("lanes, pair_mode", [(1, "every_lane"), (4, "every_lane"), (9, "once"), (16, "once")])
def test_fp8_dot_pe_e4m3(lanes, pair_mode):
    _run_fp8("e4m3", "e4m3", lanes, ["code_pairs", "chunk_tiles"], seed=lanes, pair_mode=pair_mode)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e5m2", "e5m2", 4), ("e4m3", "e5m2", 9), ("e5m2", "e4m3", 4)])
def test_fp8_dot_pe_e5m2_and_mixed(fmt_a, fmt_w, lanes):
    _run_fp8(fmt_a, fmt_w, lanes, ["code_pairs", "chunk_tiles"], seed=lanes + 100, pair_mode="once")


@pytest.mark.slow
@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e4m3", "e4m3", 9), ("e4m3", "e4m3", 16), ("e5m2", "e5m2", 4),
                                                 ("e4m3", "e5m2", 9), ("e5m2", "e4m3", 4)])
def test_fp8_dot_pe_every_lane_slow(fmt_a, fmt_w, lanes):
    _run_fp8(fmt_a, fmt_w, lanes, "code_pairs", seed=lanes + 300, pair_mode="every_lane")


@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e5m2", "e5m2", 16), ("e4m3", "e5m2", 1)])
def test_fp8_dot_pe_tiles(fmt_a, fmt_w, lanes):
    """Random tiles only (the code pairs of these formats run above at other L)."""
    _run_fp8(fmt_a, fmt_w, lanes, "chunk_tiles", tiles=250, seed=lanes + 200)


def test_fp8_dot_pe_one_level_per_stage():
    """A register after every tree level (latency 2 + 4 at L = 16): control and flags keep up."""
    _run_fp8("e4m3", "e5m2", 16, "chunk_tiles", tiles=120, seed=7, tree_levels_per_stage=1)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e4m3", "e4m3", 4), ("e5m2", "e5m2", 16)])
def test_fp8_dot_wide_add(fmt_a, fmt_w, lanes):
    """The accumulator add alone, with accumulators the PE could not reach in a test."""
    pe = FP8DotPE(fmt_a, fmt_w, lanes)
    adder = FP32WideAdder(pe.tree_bits, pe.product_lsb)
    run_cocotb(adder, "fp32_wide_add", "baseline_dot_cocotb", testcase="wide_add_vectors",
               params={"kind": "wide_add", "sum_bits": adder.sum_bits, "sum_lsb": adder.sum_lsb, "seed": lanes})


@pytest.mark.parametrize("lanes, pair_mode", [(1, "every_lane"), (4, "every_lane"), (9, "once"), (16, "once")])
def test_int8_dot_pe(lanes, pair_mode):
    _run_int8(lanes, ["code_pairs", "chunk_tiles"], seed=lanes, pair_mode=pair_mode)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [9, 16])
def test_int8_dot_pe_every_lane_slow(lanes):
    _run_int8(lanes, "code_pairs", seed=lanes + 300, pair_mode="every_lane")


def test_int8_dot_pe_wraps():
    # a register after every tree level (latency 6): the tile control keeps up with the tree
    pe = INT8DotPE(16, tree_levels_per_stage=1)
    run_cocotb(pe, "int8_dot_pe", "baseline_dot_cocotb", testcase=["int8_wraps", "chunk_tiles"],
               params={"kind": "int8", "lanes": 16, "latency": pe.latency, "tiles": 100, "seed": 5})


# -- parameters, widths, ports (no simulator) -------------------------------------------------

def test_fp8_dot_pe_widths_and_latency():
    pe = FP8DotPE("e4m3", "e4m3", 9)
    # E4M3: 448 = 14 * 2^5 = 229376 * 2^-9; product <= 229376^2 < 2^36 -> 37 bits; 9 lanes -> 40
    assert (pe.product_lsb, pe.max_product, pe.product_bits, pe.tree_bits) == (-18, 229376 ** 2, 37, 40)
    assert (pe.tree_latency, pe.latency) == (2, 4)
    e5 = FP8DotPE("e5m2", "e5m2", 16)
    assert (e5.product_lsb, e5.product_bits, e5.tree_bits, e5.latency) == (-32, 65, 69, 4)
    mixed = FP8DotPE("e4m3", "e5m2", 1)
    assert (mixed.product_lsb, mixed.tree_latency, mixed.latency) == (-25, 0, 2)
    for fa, fw in [("e4m3", "e4m3"), ("e5m2", "e5m2"), ("e4m3", "e5m2")]:
        for lanes in (1, 2, 3, 4, 9, 16, 17, 32):
            pe = FP8DotPE(fa, fw, lanes)
            assert pe.product_lsb == ba.fp8_dot_product_lsb(fa, fw)
            assert pe.tree_bits == 1 + (lanes * ba.fp8_dot_max_product(fa, fw)).bit_length()
            assert pe.latency == 2 + -(-(lanes - 1).bit_length() // 2)
            assert pe.latency == MLSDotPE("e2m1g3", "e2m1g3", lanes, 40).latency
        # the widest tree (1024 lanes) still keeps the wide add clear of FTZ and overflow
        for lanes in (1, 1024):
            tree_bits = 1 + (lanes * ba.fp8_dot_max_product(fa, fw)).bit_length()
            lo, hi = FP32WideAdder(tree_bits, ba.fp8_dot_product_lsb(fa, fw)).result_exponents
            assert 1 <= lo and hi <= 254     # no flush or overflow logic needed, ever
    assert FP8DotPE("e4m3", "e4m3", 16, tree_levels_per_stage=1).latency == 2 + 4


def test_int8_dot_pe_widths_and_latency():
    pe = INT8DotPE(9)
    assert (pe.tree_bits, pe.tree_latency, pe.latency) == (1 + (9 * 16384).bit_length(), 2, 4)
    assert INT8DotPE(1).latency == 2 and INT8DotPE(16, tree_levels_per_stage=1).latency == 6


def test_dot_pe_fp8_int8_signatures_match_mls_dot_pe():
    from hw.pe.signature import control_layout
    from amaranth.lib import data
    from amaranth.hdl import signed

    mls = MLSDotPE("e2m1g3", "e2m1g3", 9, 30)
    fp8, int8 = FP8DotPE("e4m3", "e5m2", 9), INT8DotPE(9)
    for pe in (fp8, int8):
        assert isinstance(pe.signature, PESignature)
        assert set(pe.signature.members) == set(mls.signature.members)
        assert pe.signature.members["ctl_in"].shape == control_layout()
        assert pe.latency == mls.latency
    assert fp8.signature == fp8_dot_pe_signature("e4m3", "e5m2", 9) == PESignature(
        data.ArrayLayout(float_layout(ba.E4M3), 9), data.ArrayLayout(float_layout(ba.E5M2), 9), float_layout(FP32))
    assert int8.signature == int8_dot_pe_signature(9) == PESignature(
        data.ArrayLayout(signed(8), 9), data.ArrayLayout(signed(8), 9), signed(32))
    assert fp8.signature.a_shape.size == 72 and int8.signature.result_shape.width == 32


def test_dot_pe_fp8_int8_constructor_errors():
    with pytest.raises(TypeError, match=r"^lanes must be an int, not 4\.0$"):
        FP8DotPE("e4m3", "e4m3", 4.0)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 0$"):
        FP8DotPE("e4m3", "e4m3", 0)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 1025$"):
        INT8DotPE(1025)
    with pytest.raises(TypeError, match=r"^lanes must be an int, not True$"):
        INT8DotPE(True)
    with pytest.raises(ValueError, match=r"^tree_levels_per_stage must be at least 1, got 0$"):
        FP8DotPE("e4m3", "e4m3", 4, tree_levels_per_stage=0)
    with pytest.raises(ValueError, match=r"^tree_levels_per_stage must be at least 1, got 0$"):
        INT8DotPE(4, tree_levels_per_stage=0)
    with pytest.raises(ValueError, match=r"^unknown FP8 format 'e2m1'"):
        FP8DotPE("e2m1", "e4m3", 4)
    with pytest.raises(ValueError, match=r"^fp32 is not an FP8 format"):
        FP8DotPE("e4m3", FP32, 4)


def test_fp8_dot_wide_add_constructor_errors():
    with pytest.raises(ValueError, match=r"^sum_bits must be in \[2, 512\], got 1$"):
        FP32WideAdder(1, -18)
    with pytest.raises(ValueError, match=r"^sum_lsb must be in \[-149, 127\], got -150$"):
        FP32WideAdder(40, -150)
    with pytest.raises(TypeError, match=r"^sum_lsb must be an int, not 1\.5$"):
        FP32WideAdder(40, 1.5)
    with pytest.raises(ValueError, match=r"^sum_bits=40 and sum_lsb=-120 give biased FP32 result exponents "
                                         r"\[-19, 73\]; this adder needs them in \[1, 254\]"):
        FP32WideAdder(40, -120)
    with pytest.raises(ValueError, match=r"^sum_bits=100 and sum_lsb=60 give biased FP32 result exponents"):
        FP32WideAdder(100, 60)
