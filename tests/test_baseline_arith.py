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
