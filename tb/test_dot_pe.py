# amaranth: UnusedElaboratable=no
"""MLSDotPE testbenches (cocotb, bit-exact against model/), docs/numerics.md §3.1.

Default runs (Icarus): e2m1g3 at L = 1, 4, 9 and 16 with an exact accumulator (every code pair
in every lane, alone and side by side, random g pairs; random chunked tiles with bubbles);
mixed formats e2m1g3 x e3m2g4 (L = 9) and e3m2g4 x e2m1g3 (L = 4); narrow accumulators that
saturate per beat (e2m1g3 L = 4 with a register after every tree level, e2m1g3 x e3m2g4 L = 9),
where some tiles must differ from per-product saturation.
"""

import pytest

from hw.pe import MLSDotPE, MLSPE, PESignature, beat_layout
from model.formats import DEFAULT_MAX_K, MLSFormat
from tb.harness import run_cocotb

TILE_STYLES = ["mixed", "uniform", "max", "sparse"]


def _run(fmt_a, fmt_w, lanes, acc_bits=None, *, tree_levels_per_stage=2, pair_modes=("isolated", "dense"),
         tiles=120, bubble=0.2, seed=1, testcase=None):
    fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
    exact = acc_bits is None
    acc_bits = fa.acc_bits_exact(DEFAULT_MAX_K, fw) if exact else acc_bits
    pe = MLSDotPE(fa, fw, lanes, acc_bits, tree_levels_per_stage=tree_levels_per_stage)
    styles = TILE_STYLES if exact else TILE_STYLES + ["saturate_then_cancel"] * 4
    run_cocotb(pe, "mls_dot_pe", "dot_pe_cocotb", testcase=testcase,
               params={"fmt_a": str(fa), "fmt_w": str(fw), "lanes": lanes, "acc_bits": acc_bits,
                       "latency": pe.latency, "exact": exact, "seed": seed, "tiles": tiles, "bubble": bubble,
                       "pair_modes": list(pair_modes), "tile_styles": styles})


@pytest.mark.parametrize("lanes", [1, 4, 9, 16])
def test_dot_pe_e2m1g3(lanes):
    """Every code pair in every lane, then random chunked tiles, exact accumulator."""
    _run("e2m1g3", "e2m1g3", lanes)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e2m1g3", "e3m2g4", 9), ("e3m2g4", "e2m1g3", 4)])
def test_dot_pe_mixed_formats(fmt_a, fmt_w, lanes):
    # 1,024 code pairs: side by side in every lane (every lane sees every pair)
    _run(fmt_a, fmt_w, lanes, pair_modes=("dense",), seed=2)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes, levels", [("e2m1g3", "e2m1g3", 4, 1), ("e2m1g3", "e3m2g4", 9, 2)])
def test_dot_pe_narrow_accumulator(fmt_a, fmt_w, lanes, levels):
    """Exact for two beats of the largest products only: saturates per beat, sticky flag."""
    fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
    _run(fmt_a, fmt_w, lanes, fa.acc_bits_exact(2 * lanes, fw), tree_levels_per_stage=levels,
         pair_modes=(), tiles=200, seed=3, testcase="chunk_tiles")


def test_dot_pe_widths_and_latency():
    """Every width follows from the format pair (model.formats.MLSFormat), latency from L."""
    pe = MLSDotPE("e2m1g3", "e2m1g3", 9, 30)
    # sig 2x2 bits; element shift (2^2-2)+(2^2-2) = 4; |p| <= 3*3 << 4 = 144 -> 9 bits;
    # 9 lanes: 1296 -> 12 bits; group shift 7+7 = 14 -> 26 bits = acc_bits_exact(9)
    assert (pe.lanes, pe.acc_bits, pe.sig_product_bits, pe.elem_shift_max, pe.product_bits) == (9, 30, 4, 4, 9)
    assert (pe.tree_bits, pe.group_shift_max, pe.beat_bits) == (12, 14, 26)
    assert (pe.tree_latency, pe.latency) == (2, 4)
    for fmt_a, fmt_w in [("e2m1g3", "e2m1g3"), ("e2m1g3", "e3m2g4"), ("e3m2g4", "e2m1g3"), ("e0m3g1", "e4m3g0")]:
        fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
        for lanes in (1, 2, 3, 4, 9, 16, 17):
            pe = MLSDotPE(fa, fw, lanes, 40)
            assert pe.beat_bits == fa.acc_bits_exact(lanes, fw)
            lane_max = (fa.max_sig * fw.max_sig) << pe.elem_shift_max
            assert pe.tree_bits == fa.beat_sum_bits(lanes, fw) == 1 + (lanes * lane_max).bit_length()
            assert pe.latency == 2 + -(-(lanes - 1).bit_length() // 2)
    assert MLSDotPE("e2m1g3", "e2m1g3", 16, 30, tree_levels_per_stage=1).latency == 2 + 4
    assert MLSDotPE("e2m1g3", "e2m1g3", 1, 30).latency == MLSPE.LATENCY


def test_dot_pe_signature():
    pe = MLSDotPE("e2m1g3", "e3m2g4", 9, 30)
    fa, fw = MLSFormat.parse("e2m1g3"), MLSFormat.parse("e3m2g4")
    assert pe.signature == PESignature(beat_layout(fa, 9), beat_layout(fw, 9), pe.signature.result_shape)
    assert beat_layout(fa, 9).size == 9 * 4 + 3 and beat_layout(fw, 9).size == 9 * 6 + 4
    assert pe.signature.members["result"].shape.width == 30 and pe.signature.members["result"].shape.signed


def test_dot_pe_constructor_errors():
    with pytest.raises(TypeError, match=r"^lanes must be an int, not 4\.0$"):
        MLSDotPE("e2m1g3", "e2m1g3", 4.0, 20)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 0$"):
        MLSDotPE("e2m1g3", "e2m1g3", 0, 20)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 1025$"):
        MLSDotPE("e2m1g3", "e2m1g3", 1025, 20)
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        MLSDotPE("e2m1g3", "e2m1g3", 4, 1)
    with pytest.raises(TypeError, match=r"^acc_bits must be an int, not True$"):
        MLSDotPE("e2m1g3", "e2m1g3", 4, True)
    with pytest.raises(ValueError, match=r"^tree_levels_per_stage must be at least 1, got 0$"):
        MLSDotPE("e2m1g3", "e2m1g3", 4, 20, tree_levels_per_stage=0)
    with pytest.raises(ValueError, match=r"^format name 'fp8' does not match"):
        MLSDotPE("e2m1g3", "fp8", 4, 20)
    with pytest.raises(TypeError, match=r"^format name must be a str, not 3$"):
        MLSDotPE(3, "e2m1g3", 4, 20)
