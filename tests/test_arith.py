"""Exact low-bit arithmetic (docs/numerics.md §3) against Python-integer and rational references."""

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import model.arith as arith
from model.arith import (
    accumulate,
    chunked_matmul,
    exact_conv2d,
    exact_matmul,
    finite_matmul,
    fp32_from_int,
    mls_conv2d,
    mls_matmul,
    output_convert,
    split_k_matmul,
)
from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor
from model.quantize import quantize


def random_mls(shape, fmt, grouping, seed, extreme=False):
    """An MLSTensor with random codes and group exponents (or every element at max magnitude, g = 0)."""
    gen = torch.Generator().manual_seed(seed)
    fmt = MLSFormat.parse(fmt)
    if extreme:
        top = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
        sign = torch.randint(0, 2, shape, generator=gen) << (fmt.exp_bits + fmt.man_bits)
        codes, g = sign | top, torch.zeros(grouping.group_shape(shape), dtype=torch.int64)
    else:
        codes = torch.randint(0, fmt.code_count, shape, generator=gen)
        g = torch.randint(0, fmt.max_group_exp + 1, grouping.group_shape(shape), generator=gen)
    return MLSTensor.from_codes(codes, g, 1.0, fmt, grouping)


def python_ints(t: MLSTensor):
    """Python-int §3 integers from the scalar reference (not from to_int)."""
    fields = zip(t.sign.reshape(-1).tolist(), t.exp.reshape(-1).tolist(), t.man.reshape(-1).tolist(),
                 t.group_exp_per_element().reshape(-1).tolist())
    return np.array([t.fmt.int_value(*f) for f in fields], dtype=object).reshape(t.shape)


def brute_matmul(a, b):
    ia, ib = python_ints(a), python_ints(b)
    m, k = ia.shape
    n = ib.shape[1]
    return [[sum(ia[i, kk] * ib[kk, j] for kk in range(k)) for j in range(n)] for i in range(m)]


def brute_conv2d(a, w, stride, padding):
    ia, iw = python_ints(a), python_ints(w)
    n, c, h, wd = ia.shape
    co, _, kh, kw = iw.shape
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, co, ho, wo), dtype=object)
    for b in range(n):
        for o in range(co):
            for y in range(ho):
                for x in range(wo):
                    total = 0
                    for ci in range(c):
                        for dy in range(kh):
                            for dx in range(kw):
                                yy, xx = y * stride + dy - padding, x * stride + dx - padding
                                if 0 <= yy < h and 0 <= xx < wd:
                                    total += ia[b, ci, yy, xx] * iw[o, ci, dy, dx]
                    out[b, o, y, x] = total
    return out.tolist()


@pytest.mark.parametrize("fmt_a, fmt_b", [("e2m1g3", "e2m1g3"), ("e3m3g3", "e3m3g3"), ("e1m1g3", "e4m3g2"), ("e0m3g2", "e2m1g0")])
@pytest.mark.parametrize("extreme", [False, True])
def test_exact_matmul_matches_python_ints(fmt_a, fmt_b, extreme):
    a = random_mls((5, 37), fmt_a, Grouping.blocks(8), seed=1, extreme=extreme)
    b = random_mls((37, 4), fmt_b, Grouping.blocks(8, 0), seed=2, extreme=extreme)
    assert exact_matmul(a, b).tolist() == brute_matmul(a, b)


@pytest.mark.parametrize("fmt, stride, padding", [("e2m1g3", 1, 1), ("e3m3g3", 2, 0), ("e3m3g4", 1, 1)])
@pytest.mark.parametrize("extreme", [False, True])
def test_exact_conv2d_matches_python_ints(fmt, stride, padding, extreme):
    """e3m3g4 with K = 16*9 needs 58 bits: the int64 im2col path; the others the float64 path."""
    a = random_mls((2, 16, 5, 5), fmt, Grouping.channel(), seed=3, extreme=extreme)
    w = random_mls((3, 16, 3, 3), fmt, Grouping.channel(), seed=4, extreme=extreme)
    assert exact_conv2d(a, w, stride, padding).tolist() == brute_conv2d(a, w, stride, padding)


def test_conv_paths_agree(monkeypatch):
    a = random_mls((2, 4, 6, 6), "e2m1g3", Grouping.channel(2), seed=5)
    w = random_mls((5, 4, 3, 3), "e2m1g3", Grouping.channel(2), seed=6)
    float_path = exact_conv2d(a, w, 2, 1)
    monkeypatch.setattr(arith, "_FLOAT64_EXACT_BITS", 0)
    assert torch.equal(exact_conv2d(a, w, 2, 1), float_path)


def test_width_limit_is_a_clear_error():
    a = random_mls((2, 40), "e5m10g4", Grouping.blocks(8), seed=1)
    b = random_mls((40, 2), "e5m10g4", Grouping.blocks(8, 0), seed=2)
    with pytest.raises(ValueError, match=r"exact accumulator for K=40 with e5m10g4 x e5m10g4 needs \d+ bits, more than the 63"):
        exact_matmul(a, b)
    with pytest.raises(ValueError, match=r"needs \[M, K\] x \[K, N\], got \(2, 40\) x \(2, 40\)"):
        exact_matmul(a, a)


def saturating_reference(products, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    acc, overflow = 0, False
    for p in products:
        total = acc + p
        overflow |= not lo <= total <= hi
        acc = min(max(total, lo), hi)
    return acc, overflow


@settings(max_examples=200, deadline=None)
@given(products=st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=30), bits=st.integers(2, 24))
def test_accumulate_matches_saturating_reference(products, bits):
    acc, overflow = accumulate(torch.tensor([products]), bits)
    assert (int(acc[0]), bool(overflow[0])) == saturating_reference(products, bits)


def test_accumulate_order_and_stickiness():
    products = torch.tensor([[7, 7, -7, -7]])
    assert accumulate(products, 4)[0].tolist() == [-7] and accumulate(products, 4)[1].tolist() == [True]
    acc, overflow = accumulate(products, 4, order=[0, 2, 1, 3])
    assert acc.tolist() == [0] and overflow.tolist() == [False]
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(4\)"):
        accumulate(products, 4, order=[0, 1, 2, 2])
    with pytest.raises(ValueError, match=r"acc_bits must be an int in \[2, 63\], got 64"):
        accumulate(products, 64)


@settings(max_examples=300, deadline=None)
@given(products=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=12), bits=st.integers(50, 63))
def test_accumulate_is_exact_for_every_int64_product(products, bits):
    """Issue 15: acc + product used to wrap int64 for products >= 2**62 at 63 bits."""
    acc, overflow = accumulate(torch.tensor([products]), bits)
    assert (int(acc[0]), bool(overflow[0])) == saturating_reference(products, bits)


def test_accumulate_does_not_wrap_near_int64():
    hi, lo = 2**62 - 1, -(2**62)
    cases = [([2**62, 2**62], hi), ([-(2**62), -(2**62)], lo), ([hi, 2**63 - 1], hi), ([lo, -(2**63)], lo),
             ([2**63 - 1, -(2**63), 5], 5 + lo)]
    for products, expected in cases:
        acc, overflow = accumulate(torch.tensor([products]), 63)
        assert (acc.item(), overflow.item()) == (expected, True), products


@pytest.mark.parametrize("fmt", ["e2m1g3", "e3m3g3", "e1m1g2"])
@pytest.mark.parametrize("k", [1, 5, 64])
def test_exact_width_is_tight_for_finite_accumulators(fmt, k):
    """All-max, same-sign operands: exact width never overflows; one bit fewer always does."""
    fmt = MLSFormat.parse(fmt)
    top = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    ones = torch.full((1, k), top)
    a = MLSTensor.from_codes(ones, torch.zeros(1, k), 1.0, fmt, Grouping.blocks(1))
    b = MLSTensor.from_codes(ones.T, torch.zeros(k, 1), 1.0, fmt, Grouping.blocks(1, 0))
    bits = fmt.acc_bits_exact(k)
    acc, overflow = finite_matmul(a, b, bits)
    assert acc.item() == k * fmt.max_int**2 and not overflow.item()
    acc, overflow = finite_matmul(a, b, bits - 1)
    assert acc.item() == 2 ** (bits - 2) - 1 and overflow.item()


def test_finite_matmul_matches_reference_on_random_tiles():
    a = random_mls((4, 50), "e2m1g3", Grouping.blocks(10), seed=8)
    b = random_mls((50, 3), "e2m1g3", Grouping.blocks(10, 0), seed=9)
    ia, ib = python_ints(a), python_ints(b)
    acc, overflow = finite_matmul(a, b, 20)
    for i in range(4):
        for j in range(3):
            expected = saturating_reference([ia[i, k] * ib[k, j] for k in range(50)], 20)
            assert (int(acc[i, j]), bool(overflow[i, j])) == expected
    assert overflow.any() and not overflow.all()  # the tile exercises both outcomes


# -- output converter -----------------------------------------------------------------------------
def fp32_reference(value: int, lsb: int) -> float:
    """Round value * 2**-lsb to 24 significant bits (ties to even), flush below 2**-126, inf above."""
    if value == 0:
        return 0.0
    exact = Fraction(value) * Fraction(2) ** -lsb
    magnitude = abs(exact)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    while Fraction(2) ** exponent > magnitude:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= magnitude:
        exponent += 1
    ulp = Fraction(2) ** (exponent - 23)
    q, r = divmod(magnitude, ulp)
    if r > ulp / 2 or (r == ulp / 2 and q % 2 == 1):
        q += 1
    rounded = q * ulp
    if rounded < Fraction(2) ** -126:
        return 0.0
    if rounded >= Fraction(2) ** 128:
        return float("inf") if exact > 0 else float("-inf")
    return float(rounded) if exact > 0 else -float(rounded)


@settings(max_examples=400, deadline=None)
@given(value=st.integers(-(2**62), 2**62), lsb=st.integers(-100, 200))
def test_fp32_from_int_matches_rational_reference(value, lsb):
    assert fp32_from_int(torch.tensor([value]), lsb).item() == fp32_reference(value, lsb)


def test_fp32_from_int_ties_and_edges():
    values = [2**24 + 1, 2**24 + 3, 2**25 + 2, 2**25 + 6, 2**25 + 1, 2**25 + 3, 2**53 + 1, -(2**24 + 1),
              2**62 - 1, 1, 0, -1]
    got = fp32_from_int(torch.tensor(values), 0).tolist()
    assert got == [fp32_reference(v, 0) for v in values]
    assert got[:4] == [2**24, 2**24 + 4, 2**25, 2**25 + 8]
    assert fp32_from_int(torch.tensor([1, 3]), 127).tolist() == [0.0, 3 * 2.0**-127]
    assert fp32_from_int(torch.tensor([1]), -128).item() == float("inf")


def test_output_convert_is_two_roundings():
    c = torch.tensor([2**30 + 1, -12345, 0])
    scale_a, scale_b = float(np.float32(0.1)), float(np.float32(0.3))
    out = output_convert(c, scale_a, scale_b, 40)
    scale = np.float32(scale_a) * np.float32(scale_b)
    expected = [float(np.float32(fp32_reference(int(v), 40)) * scale) for v in c]
    assert out.tolist() == expected


# -- exact path vs the fast (dequantize -> FP32) path --------------------------------------------
@pytest.mark.parametrize("fmt", ["e2m1g3", "e3m3g3"])
def test_exact_conv_agrees_with_fast_path(fmt):
    gen = torch.Generator().manual_seed(21)
    x = torch.randn(2, 8, 6, 6, generator=gen)
    weight = torch.randn(4, 8, 3, 3, generator=gen) * 0.1
    a, w = quantize(x, fmt, Grouping.channel()), quantize(weight, fmt, Grouping.channel())
    exact = mls_conv2d(a, w, stride=1, padding=1)
    fast = F.conv2d(a.dequantize(), w.dequantize(), padding=1)
    # Exact value of the quantized conv: integer-valued sums of exact FP32 terms, times both scales.
    reference = F.conv2d(a.group_scaled().double(), w.group_scaled().double(), padding=1) * a.scale * w.scale
    # The exact path rounds once (plus the scale product); FP32 accumulation error bounds the gap.
    bound = 72 * torch.finfo(torch.float32).eps * F.conv2d(a.dequantize().abs().double(), w.dequantize().abs().double(), padding=1)
    assert torch.all((exact.double() - reference).abs() <= 2 * torch.finfo(torch.float32).eps * reference.abs() + 1e-30)
    assert torch.all((fast.double() - exact.double()).abs() <= bound + 1e-30)


def test_mls_matmul_exact_and_finite():
    gen = torch.Generator().manual_seed(22)
    a = quantize(torch.randn(3, 16, generator=gen), "e2m1g3", Grouping.blocks(4))
    b = quantize(torch.randn(16, 2, generator=gen), "e2m1g3", Grouping.blocks(4, 0))
    exact = mls_matmul(a, b)
    wide = mls_matmul(a, b, acc_bits=MLSFormat.parse("e2m1g3").acc_bits_exact(16))
    assert torch.equal(exact, wide)
    for lanes in (1, 4, 16):
        assert torch.equal(mls_matmul(a, b, lanes=lanes), exact)
    reference = a.dequantize().double() @ b.dequantize().double()
    assert torch.all((exact.double() - reference).abs() <= 2 * torch.finfo(torch.float32).eps * reference.abs())


def test_mls_matmul_reports_the_overflow_flag():
    """Issue 15: a finite accumulator's sticky flags come back with return_overflow=True, and a
    saturation the caller did not ask about warns instead of passing silently."""
    gen = torch.Generator().manual_seed(23)
    a = quantize(torch.randn(4, 32, generator=gen), "e2m1g3", Grouping.blocks(8))
    b = quantize(torch.randn(32, 3, generator=gen), "e2m1g3", Grouping.blocks(8, 0))
    c_int = exact_matmul(a, b)
    bits = int(c_int.abs().median()).bit_length() + 1  # some outputs saturate, some do not
    flags = finite_matmul(a, b, bits)[1]
    assert flags.any() and not flags.all()
    result, overflow = mls_matmul(a, b, acc_bits=bits, return_overflow=True)
    assert torch.equal(overflow, flags)
    lsb = a.fmt.lsb_exponent + b.fmt.lsb_exponent
    assert torch.equal(result, output_convert(finite_matmul(a, b, bits)[0], a.scale, b.scale, lsb))
    message = rf"^mls_matmul: {int(flags.sum())} of 12 outputs saturated the {bits}-bit accumulator; pass return_overflow=True to get the flags$"
    with pytest.warns(arith.AccumulatorOverflowWarning, match=message):
        assert torch.equal(mls_matmul(a, b, acc_bits=bits), result)
    beat_result, beat_flags = mls_matmul(a, b, acc_bits=bits, lanes=8, return_overflow=True)
    c_beat, expected_flags = arith.chunked_matmul(a, b, 8, bits)
    assert torch.equal(beat_flags, expected_flags) and torch.equal(beat_result, output_convert(c_beat, a.scale, b.scale, lsb))
    exact, none = mls_matmul(a, b, return_overflow=True)
    assert torch.equal(exact, mls_matmul(a, b)) and not none.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a wide enough accumulator does not warn
        mls_matmul(a, b, acc_bits=a.fmt.acc_bits_exact(32))


# -- split K (the engine's partial-sum buffer) --------------------------------------------------
def _split_operands(seed: int, m: int, n: int, k: int, spread: float = 4.0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen) * torch.exp2(torch.randint(-6, 6, (m, 1), generator=gen).float() / spread)
    w = torch.randn(k, n, generator=gen) * torch.exp2(torch.randint(-6, 6, (1, n), generator=gen).float() / spread)
    return (quantize(a, "e2m1g3", Grouping.blocks(9, axis=-1)), quantize(w, "e2m1g3", Grouping.blocks(9, axis=0)))


@pytest.mark.parametrize("lanes", [None, 1, 4, 9])
@pytest.mark.parametrize("segment", [9, 18, 27, 36, 40])
def test_split_k_exact_equals_unsplit(lanes, segment):
    """An accumulator that cannot saturate: the split GEMM is the exact GEMM, for every segment
    length (a multiple of the group or not) and every lane count."""
    qa, qw = _split_operands(1, 5, 6, 41)
    for acc_bits in (None, qa.fmt.acc_bits_exact(41, qw.fmt)):
        c_int, overflow = split_k_matmul(qa, qw, segment, acc_bits, lanes=lanes)
        assert torch.equal(c_int, exact_matmul(qa, qw)) and not overflow.any()


def test_split_k_saturates_per_segment_then_per_add():
    """A narrow accumulator: each segment saturates from zero as the PE does, then the partial
    sums add with saturation, which differs from saturating the whole K in one run; the flags
    cover both kinds of saturation."""
    qa, qw = _split_operands(2, 4, 4, 36, spread=16.0)
    qa_pos = MLSTensor(qa.fmt, qa.grouping, torch.zeros_like(qa.sign), qa.exp, qa.man, qa.group_exp, qa.scale)
    qw_pos = MLSTensor(qw.fmt, qw.grouping, torch.zeros_like(qw.sign), qw.exp, qw.man, qw.group_exp, qw.scale)
    exact = exact_matmul(qa_pos, qw_pos)
    acc_bits = int(exact.max()).bit_length() + 1   # the whole sum fits; each partial fits too
    c_int, overflow = split_k_matmul(qa_pos, qw_pos, 18, acc_bits, lanes=9)
    assert torch.equal(c_int, exact) and not overflow.any()
    # one bit narrower than the largest sum: exactly the outputs past the range saturate, at hi
    narrow = acc_bits - 1
    hi = (1 << (narrow - 1)) - 1
    c_int, overflow = split_k_matmul(qa_pos, qw_pos, 18, narrow, lanes=9)
    assert torch.equal(overflow, exact > hi) and overflow.any() and not overflow.all()
    assert torch.equal(c_int, exact.clamp(max=hi))
    # both-signed operands: the reference by hand, segment by segment
    for lanes in (None, 4):
        c_int, overflow = split_k_matmul(qa, qw, 9, 10, lanes=lanes)
        lo, hi = -(1 << 9), (1 << 9) - 1
        psum = torch.zeros(4, 4, dtype=torch.int64)
        flags = torch.zeros(4, 4, dtype=torch.bool)
        for start in range(0, 36, 9):
            a_seg = qa.to_int()[:, start:start + 9]
            w_seg = qw.to_int()[start:start + 9]
            if lanes is None:
                part, sat = accumulate(a_seg[:, None, :] * w_seg.T[None, :, :], 10)
            else:
                qa_s = MLSTensor(qa.fmt, qa.grouping, qa.sign[:, start:start + 9], qa.exp[:, start:start + 9],
                                 qa.man[:, start:start + 9], qa.group_exp[:, start // 9:start // 9 + 1], qa.scale)
                qw_s = MLSTensor(qw.fmt, qw.grouping, qw.sign[start:start + 9], qw.exp[start:start + 9],
                                 qw.man[start:start + 9], qw.group_exp[start // 9:start // 9 + 1], qw.scale)
                part, sat = chunked_matmul(qa_s, qw_s, lanes, 10)
            total = psum + part
            flags |= sat | (total > hi) | (total < lo)
            psum = total.clamp(lo, hi)
        assert torch.equal(c_int, psum) and torch.equal(overflow, flags)
        assert overflow.any()


def test_split_k_in_mls_matmul_and_errors():
    qa, qw = _split_operands(3, 3, 2, 27)
    assert torch.equal(mls_matmul(qa, qw, k_segment=9), mls_matmul(qa, qw))
    assert torch.equal(mls_matmul(qa, qw, 40, lanes=9, k_segment=100), mls_matmul(qa, qw, 40, lanes=9))
    with pytest.raises(ValueError, match=r"^k_segment must be a positive int, got 0$"):
        split_k_matmul(qa, qw, 0)
    with pytest.raises(ValueError, match=r"^split_k_matmul needs \[M, K\] x \[K, N\], got \(3, 27\) x \(3, 27\)$"):
        split_k_matmul(qa, qa, 9)
