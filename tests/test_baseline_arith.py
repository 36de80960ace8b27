"""The baseline-PE golden references against independent references (Fractions, torch FP8 dtypes)."""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest
import torch

from model import baseline_arith as ba

RNG = np.random.default_rng(1234)


def _frac(bits: int) -> Fraction | None:
    """Exact value of an FP32 pattern after DAZ; None for NaN, +-inf as float."""
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    s = -1 if bits >> 31 else 1
    if e == 255:
        return None if m else s * float("inf")
    if e == 0:
        return Fraction(0)
    return s * Fraction((1 << 23) | m) * Fraction(2) ** (e - 150)


def _round_fp32(x: Fraction, sign_if_zero: int) -> int:
    """RNE to FP32 with unbounded exponent, then flush tiny (|x| < 2^-126) and overflow to inf."""
    sign = 1 if (x < 0 or (x == 0 and sign_if_zero)) else 0
    x = abs(x)
    if x == 0 or x < Fraction(2) ** -126:
        return sign << 31
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    scaled = x / Fraction(2) ** (e - 23)  # in [2^23, 2^24)
    q, r = divmod(scaled.numerator, scaled.denominator)
    half = Fraction(r, scaled.denominator)
    if half > Fraction(1, 2) or (half == Fraction(1, 2) and q & 1):
        q += 1
    if q == 1 << 24:
        q, e = 1 << 23, e + 1
    if e + 127 >= 255:
        return (sign << 31) | 0x7F800000
    return (sign << 31) | ((e + 127) << 23) | (q - (1 << 23))


def _ref_mul(a: int, b: int) -> int:
    x, y = _frac(a), _frac(b)
    sign = (a ^ b) >> 31
    if x is None or y is None:
        return ba.CANONICAL_NAN
    if isinstance(x, float) or isinstance(y, float):
        if x == 0 or y == 0:
            return ba.CANONICAL_NAN
        return (sign << 31) | 0x7F800000
    return _round_fp32(x * y, sign)


def _ref_add(a: int, b: int) -> int:
    x, y = _frac(a), _frac(b)
    if x is None or y is None:
        return ba.CANONICAL_NAN
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, float) and isinstance(y, float) and x != y:
            return ba.CANONICAL_NAN
        inf = x if isinstance(x, float) else y
        return 0xFF800000 if inf < 0 else 0x7F800000
    total = x + y
    both_neg_zero = total == 0 and (a >> 31) and (b >> 31) and x == 0 and y == 0
    return _round_fp32(total, 1 if both_neg_zero else 0)


def _corner_bits() -> list[int]:
    vals = [0.0, 1.0, 1.5, 2.0, 3.0, 0.1, 1e-38, 1.1754944e-38, 3.4028235e38, 1.7e38, 2.0 ** -63, 2.0 ** 64,
            float("inf"), 2.0 ** -126 * 1.5, 2.0 ** -100]
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in vals]
    bits += [0x00000001, 0x007FFFFF, 0x7FC00000, 0x7F800001, 0x3F800001, 0x3FFFFFFF, 0x00800000, 0x00800001]
    return sorted({b | s for b in bits for s in (0, 0x80000000)})


def _random_bits(n: int) -> np.ndarray:
    # Mix uniform patterns with exponents near the interesting boundaries.
    out = RNG.integers(0, 1 << 32, n, dtype=np.uint64)
    exps = RNG.choice([1, 2, 40, 60, 63, 64, 65, 126, 127, 128, 190, 191, 192, 253, 254], n)
    near = (RNG.integers(0, 2, n, dtype=np.uint64) << 31) | (exps.astype(np.uint64) << 23) | RNG.integers(0, 1 << 23, n, dtype=np.uint64)
    return np.where(RNG.random(n) < 0.5, out, near).astype(np.uint32)


def test_fp32_mul_matches_fraction_reference():
    c = _corner_bits()
    a = np.array([x for x in c for _ in c] + list(_random_bits(3000)), dtype=np.uint32)
    b = np.array([y for _ in c for y in c] + list(_random_bits(3000)), dtype=np.uint32)
    got = ba.fp32_mul(a, b)
    bad = [(hex(x), hex(y), hex(g), hex(_ref_mul(int(x), int(y)))) for x, y, g in zip(a, b, got) if int(g) != _ref_mul(int(x), int(y))]
    assert not bad, bad[:5]


def test_fp32_mul_tininess_before_rounding():
    # (1 + 2^-23)(1 - 2^-23)*2^-126 = (1 - 2^-46)*2^-126 rounds up to 2^-126 in FP32 but is tiny before rounding: flushed.
    a = ba.f32_to_bits(np.float32(2.0 ** -63) * np.float32(1 + 2.0 ** -23))
    b = ba.f32_to_bits(np.float32(2.0 ** -63) * np.float32(1 - 2.0 ** -23))
    assert int(ba.fp32_mul(a, b)) == 0
    assert int(ba.fp32_mul(a | np.uint32(0x80000000), b)) == 0x80000000


def test_fp32_add_matches_fraction_reference():
    c = _corner_bits()
    a = np.array([x for x in c for _ in c] + list(_random_bits(3000)), dtype=np.uint32)
    b = np.array([y for _ in c for y in c] + list(_random_bits(3000)), dtype=np.uint32)
    # Cancellation cases: b = -a with a few ulps changed.
    a2 = _random_bits(500)
    b2 = (a2 ^ np.uint32(0x80000000)) + RNG.integers(-3, 4, 500).astype(np.uint32)
    a, b = np.concatenate([a, a2]), np.concatenate([b, b2])
    got = ba.fp32_add(a, b)
    bad = [(hex(x), hex(y), hex(g)) for x, y, g in zip(a, b, got) if int(g) != _ref_add(int(x), int(y))]
    assert not bad, bad[:5]


def test_fp32_mac_is_two_roundings_and_clear():
    one, tiny = ba.f32_to_bits(1.0), ba.f32_to_bits(2.0 ** -24)
    assert int(ba.fp32_mac(one, tiny, one)) == int(one)  # 1 + 2^-24: tie, to even
    # (1 + 2^-23)(1 - 2^-23) = 1 - 2^-46 rounds to 1.0 first, so -1 + that is +0; a fused
    # multiply-add would give -2^-46.
    a = ba.f32_to_bits(np.float32(1 + 2.0 ** -23))
    b = ba.f32_to_bits(np.float32(1 - 2.0 ** -23))
    assert int(ba.fp32_mac(ba.f32_to_bits(-1.0), a, b)) == 0
    neg0 = np.uint32(0x80000000)
    assert int(ba.fp32_mac(ba.f32_to_bits(5.0), neg0, one, clear=True)) == 0x80000000
    assert int(ba.fp32_mac(neg0, neg0, one)) == 0x80000000
    assert int(ba.fp32_mac(np.uint32(0), neg0, one)) == 0
    assert ba.fp32_accumulate(ba.f32_to_bits([1.0, 2.0, 3.0]), ba.f32_to_bits([4.0, 5.0, 6.0])) == int(ba.f32_to_bits(32.0))


@pytest.mark.parametrize("name,dtype", [("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)])
def test_fp8_decode_matches_torch(name, dtype):
    codes = np.arange(256)
    ours = ba.fp8_decode(codes, name)
    theirs = torch.tensor(codes, dtype=torch.uint8).view(dtype).to(torch.float64).numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(ours)
    assert np.array_equal(ours[ok], theirs[ok])
    assert np.array_equal(np.signbit(ours[ok]), np.signbit(theirs[ok]))
    assert np.nanmax(np.abs(ours[np.isfinite(ours)])) == ba.float_format(name).max_finite


@pytest.mark.parametrize("fa,fb", [("e4m3", "e4m3"), ("e5m2", "e5m2"), ("e4m3", "e5m2")])
def test_fp8_mul_exhaustive_exact(fa, fb):
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    got = ba.fp8_mul(a.ravel(), b.ravel(), fa, fb)
    va, vb = ba.fp8_decode(a.ravel(), fa), ba.fp8_decode(b.ravel(), fb)
    with np.errstate(invalid="ignore"):
        want = va * vb
    nan = np.isnan(want)
    assert np.all(got[nan] == ba.CANONICAL_NAN)
    vals = ba.bits_to_f32(got[~nan]).astype(np.float64)
    assert np.array_equal(vals, want[~nan])
    assert np.array_equal(np.signbit(vals), np.signbit(want[~nan]))
    fin = np.isfinite(vals) & (vals != 0)
    assert np.all(np.abs(vals[fin]) >= 2.0 ** -126)  # never subnormal in FP32


def test_int8_mac_wraps():
    assert int(ba.int8_mac((1 << 31) - 1, 1, 1)) == -(1 << 31)
    assert int(ba.int8_mac(123, -128, -128, clear=True)) == 16384
    assert ba.int8_accumulate([-128] * 4, [-128] * 4) == 4 * 16384
    assert ba.int8_accumulate([127] * (1 << 18), [127] * (1 << 18)) == ((127 * 127 << 18) + (1 << 31)) % (1 << 32) - (1 << 31)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"unknown FP8 format 'e3m4'"):
        ba.fp8_format("e3m4")
    with pytest.raises(ValueError, match=r"e4m3 codes must be in \[0, 255\]"):
        ba.fp8_mul([256], [0])
    with pytest.raises(TypeError, match="integer bit patterns"):
        ba.fp32_mul(np.float32(1.0), np.uint32(0))
    with pytest.raises(ValueError, match=r"a must be in \[-128, 127\]"):
        ba.int8_mac(0, 128, 1)


# -- the float-format descriptors (model.floats) and the INT8 limits ---------------------------

def test_float_formats_match_torch_dtypes():
    from model import floats

    dtypes = {floats.FP32: torch.float32, floats.FP16: torch.float16, floats.BF16: torch.bfloat16,
              floats.E4M3: torch.float8_e4m3fn, floats.E5M2: torch.float8_e5m2}
    for fmt, dtype in dtypes.items():
        info = torch.finfo(dtype)
        assert (fmt.bits, fmt.max_finite, fmt.min_normal_exponent) == (
            info.bits, info.max, int(np.log2(info.smallest_normal))), fmt
        assert info.eps == 2.0 ** -fmt.man_bits and fmt.sig_bits == fmt.man_bits + 1, fmt


@pytest.mark.parametrize("name, canonical", [
    ("fp32", "fp32"), ("FP16", "fp16"), ("bf16", "bf16"), ("e4m3", "e4m3"), (" E5M2 ", "e5m2"),
    ("fp8e4m3", "e4m3"), ("fp8-e5m2", "e5m2"), ("FP8_E4M3", "e4m3"),
])
def test_float_format_names(name, canonical):
    from model import floats

    fmt = floats.float_format(name)
    assert str(fmt) == canonical and floats.float_format(fmt) is fmt is floats.FLOAT_FORMATS[canonical]


def test_float_format_errors_name_the_value():
    from model import floats

    with pytest.raises(ValueError, match=r"unknown float format 'fp8e3m4'; expected one of \['bf16', 'e4m3'"):
        floats.float_format("fp8e3m4")
    with pytest.raises(ValueError, match=r"unknown float format 'fp8'"):
        floats.float_format("fp8")
    with pytest.raises(TypeError, match="float format name must be a str, not 8"):
        floats.float_format(8)
    with pytest.raises(ValueError, match=r"unknown FP8 format 'fp16'; expected one of \['e4m3', 'e5m2'\]"):
        floats.fp8_format("fp16")
    with pytest.raises(ValueError, match=r"fp32 is not an FP8 format"):
        floats.fp8_format(floats.FP32)
    with pytest.raises(ValueError, match=r"unknown FP8 format 'fp32'"):
        ba.fp8_decode([0], "fp32")   # the FP8 references take FP8 formats only


def test_int8_limits():
    assert (ba.INT8_MIN, ba.INT8_MAX, ba.INT32_ACC_BITS) == (-128, 127, 32)
    k = ba.INT8_MAX_K_EXACT
    assert k * 128 * 128 <= (1 << 31) - 1 < (k + 1) * 128 * 128
    assert ba.int8_acc_bits_exact(k) == 32 < ba.int8_acc_bits_exact(k + 1)
    # the INT32 MAC does not wrap at K = INT8_MAX_K_EXACT, and does at one more
    assert ba.int8_accumulate([-128] * k, [-128] * k) == k * 16384
    assert ba.int8_accumulate([-128] * (k + 1), [-128] * (k + 1)) < 0
    with pytest.raises(ValueError, match="reduction length k must be at least 1, got 0"):
        ba.int8_acc_bits_exact(0)


# -- the same-lane dot-product baselines (fp8_dot_mac, int8_dot_mac) --------------------------
#
# Reference: exact Fractions of the decoded codes (fp8_decode is checked against torch above),
# summed exactly and rounded by _round_fp32 (Fraction RNE). It shares no code with the model's
# integer path (_fp8_fixed, fp32_round_exact).

def _fp8_dot_ref(acc: int, a, w, fa, fw, first=False) -> int:
    if first:
        acc = ba.FP32_NEG_ZERO
    va, vw = ba.fp8_decode(np.asarray(a), fa), ba.fp8_decode(np.asarray(w), fw)
    x = _frac(acc)
    if x is None:
        return ba.CANONICAL_NAN
    infs = {x > 0} if isinstance(x, float) else set()
    total = Fraction(0) if isinstance(x, float) else x
    all_neg_zero = not isinstance(x, float) and x == 0 and acc >> 31 == 1
    for p, q in zip(va, vw):
        if np.isnan(p) or np.isnan(q) or (np.isinf(p) and q == 0) or (np.isinf(q) and p == 0):
            return ba.CANONICAL_NAN
        if np.isinf(p) or np.isinf(q):
            infs.add(bool(p * q > 0))
            continue
        total += Fraction(float(p)) * Fraction(float(q))
        all_neg_zero &= p * q == 0 and bool(np.signbit(p) ^ np.signbit(q))
    if len(infs) == 2:
        return ba.CANONICAL_NAN
    if infs:
        return ba.FP32_POS_INF if infs == {True} else ba.FP32_NEG_INF
    return _round_fp32(total, 1 if (total == 0 and all_neg_zero) else 0)


FP8_PAIRS = [("e4m3", "e4m3"), ("e5m2", "e5m2"), ("e4m3", "e5m2"), ("e5m2", "e4m3")]


def _bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _acc_corners() -> list[int]:
    """Accumulators around every boundary the beat's add meets: signed zeros, DAZ (largest
    subnormal) and the smallest normal, values far below and far above the products, the
    largest finite, Inf and NaN."""
    vals = [1.0, -1.0, 1.5, 3.0, 2.0 ** 24, 2.0 ** 24 + 2, 2.0 ** 40, 2.0 ** 80, 2.0 ** -40, 2.0 ** -100,
            2.0 ** -18, 1e-30, 3.4028235e38, 448.0 * 448.0, 57344.0 * 57344.0]
    bits = [_bits(v) for v in vals] + [0, 0x00000001, 0x007FFFFF, 0x00800000, 0x00800001, 0x7F800000, 0x7FC00000, 0x7F800001]
    return sorted({b | s for b in bits for s in (0, 0x80000000)})


@pytest.mark.parametrize("fa,fw", FP8_PAIRS)
def test_fp8_dot_l1_is_the_scalar_fp8_pe(fa, fw):
    """L = 1: every code pair, first beat and on top of every corner accumulator, equals fp8_mac
    (the product is exact in FP32, so one rounding of acc + p is fp32_add(acc, fp8_mul))."""
    a, w = (x.ravel() for x in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    first = np.array([ba.fp8_dot_mac(0x3F800000, [x], [y], fa, fw, first=True) for x, y in zip(a, w)])
    assert np.array_equal(first, ba.fp8_mul(a, w, fa, fw))
    # boundary kinds (zeros, DAZ, min normal, around and above the products, Inf, NaN); all of
    # them for E4M3 x E4M3, a third each for the other pairs (run time); random accs below
    accs = [0x80000000, 0x807FFFFF, 0x00800000, _bits(1.5), _bits(-(2.0 ** 24 + 2)), _bits(2.0 ** -40),
            _bits(2.0 ** 80), 0xFF800000, 0x7FC00000]
    accs = accs if fa == fw == "e4m3" else accs[FP8_PAIRS.index((fa, fw)) % 3::3]
    for acc in accs:
        got = np.array([ba.fp8_dot_mac(acc, [x], [y], fa, fw) for x, y in zip(a, w)])
        want = ba.fp8_mac(np.uint32(acc), a, w, fa, fw)
        bad = np.nonzero(got != want)[0]
        assert not bad.size, (hex(acc), int(a[bad[0]]), int(w[bad[0]]), hex(got[bad[0]]), hex(want[bad[0]]))


def test_fp8_dot_l2_first_beat_is_one_fp32_add():
    """L = 2, first beat: every E4M3 pair in lane 0 (and, permuted, in lane 1) beside another
    pair: exactly fp32_add(fp8_mul(a0, w0), fp8_mul(a1, w1)), one rounding of the exact sum."""
    rng = np.random.default_rng(7)
    a0, w0 = (x.ravel() for x in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    for _ in range(2):
        perm = rng.permutation(a0.size)
        a1, w1 = a0[perm], w0[perm]
        got = np.array([ba.fp8_dot_mac(0, [p, q], [r, s], first=True) for p, q, r, s in zip(a0, a1, w0, w1)])
        want = ba.fp32_add(ba.fp8_mul(a0, w0), ba.fp8_mul(a1, w1))
        bad = np.nonzero(got != want)[0]
        assert not bad.size, [int(x[bad[0]]) for x in (a0, a1, w0, w1)]


def _random_beat(rng, lanes, style):
    if style == "uniform":
        return rng.integers(0, 256, lanes), rng.integers(0, 256, lanes)
    if style == "finite":    # no E4M3 NaN / E5M2 Inf-NaN codes (exponent field below all-ones)
        return rng.integers(0, 0x78, lanes) | (rng.integers(0, 2, lanes) << 7), \
            rng.integers(0, 0x78, lanes) | (rng.integers(0, 2, lanes) << 7)
    if style == "cancel":    # lane pairs (a, w), (-a, w): the exact sum is zero or nearly
        half = (lanes + 1) // 2
        a = rng.integers(0, 0x78, half) | (rng.integers(0, 2, half) << 7)
        w = rng.integers(0, 0x78, half) | (rng.integers(0, 2, half) << 7)
        a, w = np.concatenate([a, a ^ 0x80])[:lanes], np.concatenate([w, w])[:lanes]
        if rng.random() < 0.5:   # nudge one lane by one code: a residual of one small step
            i = rng.integers(0, lanes)
            a[i] = a[i] ^ 1
        return a, w
    raise AssertionError(style)


@pytest.mark.parametrize("fa,fw", FP8_PAIRS)
@pytest.mark.parametrize("lanes", [1, 3, 4, 9, 16])
def test_fp8_dot_matches_fraction_reference(fa, fw, lanes):
    rng = np.random.default_rng(lanes * 100 + FP8_PAIRS.index((fa, fw)))
    corners = _acc_corners()
    n = 600
    for i in range(n):
        a, w = _random_beat(rng, lanes, ("uniform", "finite", "cancel")[i % 3])
        r = rng.random()
        acc = int(corners[rng.integers(len(corners))]) if r < 0.3 else int(_random_bits(1)[0]) if r < 0.6 else \
            int(ba.fp8_dot_mac(0, rng.integers(0, 0x78, lanes), rng.integers(0, 0x78, lanes), fa, fw, first=True))
        first = rng.random() < 0.1
        got = ba.fp8_dot_mac(acc, a, w, fa, fw, first=first)
        assert got == _fp8_dot_ref(acc, a, w, fa, fw, first), (hex(acc), a.tolist(), w.tolist(), first, hex(got))


def test_fp8_dot_cancellation_and_signed_zeros():
    one, neg_one = 0x38, 0xB8               # E4M3 +1.0, -1.0
    # Products cancel exactly: the accumulator comes back unchanged (no rounding, DAZ aside).
    for acc in _acc_corners():
        if (acc & 0x7F800000) not in (0, 0x7F800000):
            assert ba.fp8_dot_mac(acc, [one, neg_one, 0x50, 0xD0], [0x44] * 4) == acc
    # A zero result is -0 only when every addend is -0.
    assert ba.fp8_dot_mac(ba.FP32_NEG_ZERO, [0x80, 0x00], [one, neg_one]) == ba.FP32_NEG_ZERO   # -0 + (-0) + (-0)
    assert ba.fp8_dot_mac(ba.FP32_NEG_ZERO, [0x80, 0x00], [one, one]) == 0                      # a +0 lane
    assert ba.fp8_dot_mac(0, [0x80, 0x80], [one, one]) == 0                                     # a +0 acc
    assert ba.fp8_dot_mac(ba.FP32_NEG_ZERO, [one, neg_one], [one, one]) == 0                    # 1 - 1 = +0
    assert ba.fp8_dot_mac(0x80000001, [0x80], [one]) == ba.FP32_NEG_ZERO   # -subnormal acc is -0 (DAZ)
    assert ba.fp8_dot_mac(0x3F800000, [0x80] * 4, [one] * 4, first=True) == ba.FP32_NEG_ZERO    # first: onto -0
    assert ba.fp8_dot_mac(0x3F800000, [0x80, 0x00], [one] * 2, first=True) == 0
    # acc = -(1 + 2^-3) cancels against 1 + 1/8 made of two lanes: exactly +0, not a rounding residue.
    assert ba.fp8_dot_mac(_bits(-1.125), [one, 0x20], [one, one]) == 0


def test_fp8_dot_accumulator_dwarfs_the_products():
    big = _bits(2.0 ** 40)                    # ulp 2^17; E4M3 products reach 448^2 < 2^18
    assert ba.fp8_dot_mac(big, [0x7E], [0x7E]) == _bits(2.0 ** 40 + 2.0 ** 18)      # 200704 -> rounds up
    assert ba.fp8_dot_mac(big, [0x77], [0x77]) == big                               # 240^2 = 57600 < 2^16: stays
    # Sixteen lanes that each round away alone, but not together: 16 * 0x77^2 = 921600 = 7.03 ulp.
    assert ba.fp8_dot_mac(big, [0x77] * 16, [0x77] * 16) == _bits(2.0 ** 40 + 7 * 2.0 ** 17)
    # Far above: the products are a fraction of an ulp and acc comes back exactly.
    for acc in (_bits(2.0 ** 80), _bits(-(2.0 ** 80)), _bits(3.4028235e38)):
        assert ba.fp8_dot_mac(acc, [0x7E] * 16, [0x7E] * 16) == acc
        assert ba.fp8_dot_mac(acc, [0x7B] * 16, [0x7B] * 16, "e5m2", "e5m2") == acc
    # Far below: a tiny accumulator only decides a tie of the sum.
    assert ba.fp8_dot_mac(_bits(2.0 ** -100), [0x38], [0x38]) == _bits(1.0)


def test_fp8_dot_ties_round_to_even_once_per_beat():
    """A tie exists only in the exact beat sum: lane by lane rounding would miss it."""
    acc = _bits(2.0 ** 24 + 2)                # ulp 2; odd significand
    half = 0x30                               # E4M3 0.5
    one = 0x38
    # acc + 0.5 + 0.5 = 2^24 + 3: a tie, to even 2^24 + 4 (two fp32_adds would each drop 0.5).
    assert ba.fp8_dot_mac(acc, [half, half], [one, one]) == _bits(2.0 ** 24 + 4)
    two_adds = ba.fp32_add(ba.fp32_add(acc, ba.fp8_mul(half, one)), ba.fp8_mul(half, one))
    assert int(two_adds) == acc
    # 2^24 + 1 from an even significand: tie, stays; a sticky 2^-9 below the tie rounds up.
    assert ba.fp8_dot_mac(_bits(2.0 ** 24), [half, half], [one, one]) == _bits(2.0 ** 24)
    assert ba.fp8_dot_mac(_bits(2.0 ** 24), [half, half, 0x01], [one, one, one]) == _bits(2.0 ** 24 + 2)
    # Below a power of two the ulp halves: 2^25 - 1 is a tie between 2^25 - 2 (odd) and 2^25 (even).
    assert ba.fp8_dot_mac(_bits(2.0 ** 25), [neg := 0xB8], [one]) == _bits(2.0 ** 25)
    assert ba.fp8_dot_mac(_bits(2.0 ** 25), [neg, 0xB0], [one, one]) == _bits(2.0 ** 25 - 2)   # -1.5: past the tie


def test_fp8_dot_specials():
    nan, e5_inf, e5_ninf, e5_nan = 0x7F, 0x7C, 0xFC, 0x7D
    one4, one5 = 0x38, 0x3C
    fin = _bits(3.0)
    assert ba.fp8_dot_mac(fin, [one4, nan], [one4, one4]) == ba.CANONICAL_NAN
    assert ba.fp8_dot_mac(fin, [0xFF], [0x00]) == ba.CANONICAL_NAN               # -NaN x 0
    assert ba.fp8_dot_mac(fin, [e5_inf, one5], [one5, one5], "e5m2", "e5m2") == ba.FP32_POS_INF
    assert ba.fp8_dot_mac(fin, [e5_inf, e5_ninf], [one5, one5], "e5m2", "e5m2") == ba.CANONICAL_NAN
    assert ba.fp8_dot_mac(fin, [e5_inf], [0x80], "e5m2", "e5m2") == ba.CANONICAL_NAN   # Inf x -0
    assert ba.fp8_dot_mac(fin, [e5_nan], [one5], "e5m2", "e5m2") == ba.CANONICAL_NAN
    assert ba.fp8_dot_mac(fin, [one4], [e5_ninf], "e4m3", "e5m2") == ba.FP32_NEG_INF
    assert ba.fp8_dot_mac(ba.FP32_NEG_INF, [one5], [e5_inf], "e5m2", "e5m2") == ba.CANONICAL_NAN
    assert ba.fp8_dot_mac(ba.FP32_NEG_INF, [one4] * 4, [one4] * 4) == ba.FP32_NEG_INF
    assert ba.fp8_dot_mac(0x7F800001, [one4], [one4]) == ba.CANONICAL_NAN
    assert ba.fp8_dot_mac(ba.FP32_NEG_INF, [one4], [one4], first=True) == _bits(1.0)   # first drops acc
    assert ba.fp8_dot_mac(fin, [0x7E], [0x7E]) == _bits(3.0 + 448.0 ** 2)             # 0x7E: E4M3 448 is finite


def test_fp32_round_exact_boundaries():
    # FTZ with tininess before rounding, on both sides of 2^-126.
    assert ba.fp32_round_exact(0, 1, -126) == 0x00800000
    assert ba.fp32_round_exact(1, 1, -126) == 0x80800000
    assert ba.fp32_round_exact(0, (1 << 24) - 1, -150) == 0           # rounds up to 2^-126, but tiny first
    assert ba.fp32_round_exact(1, (1 << 24) - 1, -150) == 0x80000000
    assert ba.fp32_round_exact(0, (1 << 25) + 1, -151) == 0x00800000  # just above: 2^-126, rounded down
    # Overflow: the largest finite, its upper tie (to even: Inf), and just below the tie.
    assert ba.fp32_round_exact(0, (1 << 24) - 1, 104) == 0x7F7FFFFF
    assert ba.fp32_round_exact(0, (1 << 25) - 1, 103) == ba.FP32_POS_INF
    assert ba.fp32_round_exact(1, (1 << 25) - 1, 103) == ba.FP32_NEG_INF
    assert ba.fp32_round_exact(0, (1 << 26) - 3, 102) == 0x7F7FFFFF
    rng = np.random.default_rng(3)
    for _ in range(3000):
        mag = max(1, int(rng.integers(1, 1 << 62)) >> int(rng.integers(0, 60)))
        exp = int(rng.integers(-190, 140))
        sign = int(rng.integers(0, 2))
        x = Fraction(mag) * Fraction(2) ** exp
        assert ba.fp32_round_exact(sign, mag, exp) == _round_fp32(-x if sign else x, sign), (sign, mag, exp)
    with pytest.raises(ValueError, match="magnitude must be positive, got 0"):
        ba.fp32_round_exact(0, 0, 0)


def test_fp8_dot_never_overflows_or_flushes():
    """The largest beat on the largest accumulator stays finite; the smallest nonzero results
    stay normal: the FTZ and overflow rules of fp32_round_exact are never reached by a beat."""
    mx = {"e4m3": 0x7E, "e5m2": 0x7B}
    for fa, fw in FP8_PAIRS:
        lanes = 1024
        top = ba.fp8_dot_mac(0x7F7FFFFF, [mx[fa]] * lanes, [mx[fw]] * lanes, fa, fw)
        assert top == 0x7F7FFFFF
        smallest = ba.fp8_dot_mac(0, [0x01], [0x01], fa, fw)            # min subnormal x min subnormal
        assert smallest == _bits(2.0 ** ba.fp8_dot_product_lsb(fa, fw)) and smallest & 0x7F800000
        assert ba.fp8_dot_max_product(fa, fw) * lanes * Fraction(2) ** ba.fp8_dot_product_lsb(fa, fw) < 2 ** 42
    # widths of the exact sum, from the formats
    assert [ba.fp8_dot_product_lsb(*p) for p in FP8_PAIRS] == [-18, -32, -25, -25]
    assert (ba.fp8_max_fixed("e4m3"), ba.fp8_max_fixed("e5m2")) == (448 * 2 ** 9, 57344 * 2 ** 16)


def test_fp8_dot_accumulate_is_beats_in_order():
    rng = np.random.default_rng(11)
    for lanes in (1, 4, 9):
        a, w = rng.integers(0, 0x78, (20, lanes)), rng.integers(0, 0x78, (20, lanes))
        acc = ba.FP32_NEG_ZERO
        for i in range(20):
            acc = _fp8_dot_ref(acc, a[i], w[i], "e4m3", "e5m2", first=i == 0)
        assert ba.fp8_dot_accumulate(a, w, "e4m3", "e5m2") == acc


def test_fp8_dot_bad_inputs():
    with pytest.raises(ValueError, match=r"^a beat needs as many A as W codes, got 2 and 1$"):
        ba.fp8_dot_mac(0, [1, 2], [3])
    with pytest.raises(ValueError, match=r"^e4m3 codes must be in \[0, 255\], got 256 in w_codes$"):
        ba.fp8_dot_mac(0, [1], [256])
    with pytest.raises(ValueError, match=r"^a_codes must hold at least one lane code$"):
        ba.fp8_dot_mac(0, [], [])
    with pytest.raises(TypeError, match=r"^a_codes must be a 1-D sequence of integer e4m3 codes"):
        ba.fp8_dot_mac(0, [1.0], [1])
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[0, 2\*\*32 - 1\], got -1$"):
        ba.fp8_dot_mac(-1, [1], [1])
    with pytest.raises(ValueError, match=r"^unknown FP8 format 'fp16'"):
        ba.fp8_dot_mac(0, [1], [1], "fp16")
    with pytest.raises(ValueError, match=r"^a_beats must be a non-empty \(beats, lanes\) array, got shape \(3,\)$"):
        ba.fp8_dot_accumulate([1, 2, 3], [1, 2, 3])


def test_int8_dot_matches_exact_sum():
    rng = np.random.default_rng(5)
    for lanes in (1, 4, 9, 16):
        a, w = rng.integers(-128, 128, (500, lanes)), rng.integers(-128, 128, (500, lanes))
        acc = rng.integers(-(1 << 31), 1 << 31, 500)
        first = rng.random(500) < 0.2
        got = ba.int8_dot_mac(acc, a, w, first=first)
        for i in range(500):
            exact = (0 if first[i] else int(acc[i])) + sum(int(x) * int(y) for x, y in zip(a[i], w[i]))
            assert int(got[i]) == (exact + (1 << 31)) % (1 << 32) - (1 << 31)
    # wraps: 2^31 - 1 + 4 * 16384 and back
    assert int(ba.int8_dot_mac((1 << 31) - 1, [-128] * 4, [-128] * 4)) == -(1 << 31) - 1 + 4 * 16384
    assert int(ba.int8_dot_mac(-(1 << 31), [127, -128], [-128, 127])) == (1 << 31) - 2 * 128 * 127
    assert ba.int8_dot_accumulate([[1, 2], [3, 4]], [[5, 6], [7, 8]]) == 5 + 12 + 21 + 32
    # L = 1 is the scalar INT8 MAC
    x, y = (v.ravel() for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij"))
    assert np.array_equal(ba.int8_dot_mac(12345, x[:, None], y[:, None]), ba.int8_mac(12345, x, y))
    with pytest.raises(ValueError, match=r"^w must be in \[-128, 127\], got values in \[0, 128\]$"):
        ba.int8_dot_mac(0, [1, 2], [0, 128])
    with pytest.raises(ValueError, match=r"^a and w must have the same shape with the lanes last"):
        ba.int8_dot_mac(0, [1, 2], [1])


def test_fp32_add_exact_matches_fraction_reference():
    """The wide add alone (hw.baseline.FP32WideAdder's golden model): any acc, any exact sum."""
    rng = np.random.default_rng(17)
    corners = _acc_corners()
    for i in range(4000):
        acc = int(corners[rng.integers(len(corners))]) if i % 2 else int(_random_bits(1)[0])
        lsb = int(rng.integers(-60, 40))
        total = int(rng.integers(-(1 << 62), 1 << 62)) >> int(rng.integers(0, 63))
        if i % 5 == 0 and (acc >> 23) & 0xFF not in (0, 255):   # cancel acc exactly, or nearly
            x = _frac(acc) / Fraction(2) ** lsb
            if x.denominator == 1:
                total = -int(x) + int(rng.integers(-2, 3))
        x = _frac(acc)
        if x is None:
            want = ba.CANONICAL_NAN
        elif isinstance(x, float):
            want = ba.FP32_POS_INF if x > 0 else ba.FP32_NEG_INF
        else:
            exact = x + total * Fraction(2) ** lsb
            want = _round_fp32(exact, 0)    # neg_zero=False: some lane is +0 or nonzero, so 0 is +0
        assert ba.fp32_add_exact(acc, total, lsb) == want, (hex(acc), total, lsb)
    # neg_zero only matters for an all-zero sum: -0 + (all -0 lanes) = -0, +0 + (...) = +0
    assert ba.fp32_add_exact(ba.FP32_NEG_ZERO, 0, -18, neg_zero=True) == ba.FP32_NEG_ZERO
    assert ba.fp32_add_exact(ba.FP32_NEG_ZERO, 0, -18) == 0
    assert ba.fp32_add_exact(0, 0, -18, neg_zero=True) == 0
    assert ba.fp32_add_exact(_bits(2.0), 0, -18, neg_zero=True) == _bits(2.0)
    assert ba.fp32_add_exact(_bits(2.0), 5, 0, pos_inf=True, neg_inf=True) == ba.CANONICAL_NAN
    assert ba.fp32_add_exact(ba.FP32_NEG_INF, 5, 0, pos_inf=True) == ba.CANONICAL_NAN
    assert ba.fp32_add_exact(_bits(2.0), 5, 0, nan=True) == ba.CANONICAL_NAN
    with pytest.raises(ValueError, match=r"^neg_zero says every lane is -0, but total is 3$"):
        ba.fp32_add_exact(0, 3, 0, neg_zero=True)
    with pytest.raises(TypeError, match=r"^total and total_lsb must be ints, not 1\.0 and 0$"):
        ba.fp32_add_exact(0, 1.0, 0)
