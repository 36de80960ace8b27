"""Bit-exact golden references of the baseline PEs (FP32, FP8 and INT8 MACs).

This module is the one numerical truth for ``hw/baseline/``: the RTL reads the format descriptors
(:mod:`model.floats`) and the INT8 limits below, and the testbenches compare its output bit
patterns with these functions.
All functions work on numpy arrays of raw bit patterns (``uint32`` for FP32, small unsigned ints
for FP8 codes, signed ints for INT8/INT32) and return bit patterns, so comparisons are exact.

Rules (also in ``docs/synthesis.md``):

- **FP32 multiply-add** (``fp32_mac``): two IEEE binary32 roundings, round to nearest even:
  ``acc' = fp32(acc + fp32(a * b))``.
  - DAZ: a subnormal input (``a``, ``b`` or ``acc``) counts as a zero of the same sign.
  - FTZ with tininess *before* rounding: a product whose exact magnitude is below 2^-126
    becomes a zero with the product's sign. A nonzero sum below 2^-126 is exact, so the
    before/after question does not arise there; it becomes a zero with the sum's sign.
  - Overflow rounds to ±Inf (RNE). Inf arithmetic is IEEE: Inf*0 and Inf + (-Inf) are NaN.
  - Every NaN result is the canonical quiet NaN ``0x7FC00000`` (payloads are not propagated).
  - An exact zero sum is +0 unless both addends are -0 (IEEE, RNE).
- **FP8 multiply, FP32 accumulate** (``fp8_mac``): the product of two FP8 codes (E4M3 or E5M2,
  any mix) is exact in FP32 and never subnormal there, so FP8 subnormal *inputs are kept*
  (not flushed). The sum uses ``fp32_add`` above. E4M3 is the OCP "FN" variant: no Inf, NaN is
  S.1111.111, max 448. E5M2 is IEEE-like: exponent field 31 is Inf (m = 0) or NaN (m ≠ 0).
- **INT8 × INT8, INT32 accumulate** (``int8_mac``): exact 16-bit product, two's-complement
  accumulator that *wraps* modulo 2^32 (the usual INT32 MAC; it cannot overflow for
  K ≤ 2^17 - 1 products of -128·-128, ``INT8_MAX_K_EXACT``).

A MAC with ``clear`` set starts a new accumulation: ``acc' = product`` (the product is not added
to a zero, so a -0 product stays -0).

The same-lane dot-product baselines (``fp8_dot_mac``: one FP32 rounding of acc plus the exact
sum of L FP8 products per beat; ``int8_dot_mac``: wrapping INT32) are specified in their own
section below and in ``docs/numerics.md``.
"""

from __future__ import annotations

import operator

import numpy as np

# The format descriptors live in model.floats; re-exported here for the baseline references' users.
from .floats import E4M3, E5M2, FP8_FORMATS, FP32, FloatFormat, float_format, fp8_format

__all__ = [
    "FloatFormat", "FP32", "E4M3", "E5M2", "FP8_FORMATS", "float_format", "fp8_format", "CANONICAL_NAN",
    "INT8_BITS", "INT8_MIN", "INT8_MAX", "INT32_ACC_BITS", "INT8_MAX_K_EXACT", "int8_acc_bits_exact",
    "fp32_daz", "fp32_mul", "fp32_add", "fp32_mac", "fp32_accumulate",
    "fp8_decode", "fp8_mul", "fp8_mac", "fp8_accumulate",
    "int8_mac", "int8_accumulate", "bits_to_f32", "f32_to_bits",
    "FP32_NEG_ZERO", "FP32_POS_INF", "FP32_NEG_INF", "fp8_fixed_lsb", "fp8_max_fixed",
    "fp8_dot_product_lsb", "fp8_dot_max_product", "fp32_round_exact", "fp32_add_exact",
    "fp8_dot_mac", "fp8_dot_accumulate", "int8_dot_mac", "int8_dot_accumulate",
]

CANONICAL_NAN = 0x7FC00000

#: INT8 operands and their wrapping INT32 accumulator.
INT8_BITS = 8
INT8_MIN, INT8_MAX = -(1 << (INT8_BITS - 1)), (1 << (INT8_BITS - 1)) - 1
INT32_ACC_BITS = 32
#: Largest K for which K products of INT8_MIN * INT8_MIN (2**14 each) cannot wrap INT32:
#: K * 2**14 <= 2**31 - 1, so K <= 2**17 - 1.
INT8_MAX_K_EXACT = ((1 << (INT32_ACC_BITS - 1)) - 1) // (INT8_MIN * INT8_MIN)


def int8_acc_bits_exact(k: int) -> int:
    """Smallest two's-complement width that holds ``k`` INT8 products exactly (``±k * 2**14``)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"reduction length k must be an int, not {k!r}")
    if k < 1:
        raise ValueError(f"reduction length k must be at least 1, got {k}")
    return 1 + (k * INT8_MIN * INT8_MIN).bit_length()


def bits_to_f32(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def f32_to_bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def _u32(bits) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"FP32 operands must be integer bit patterns, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        raise ValueError("FP32 bit patterns must be in [0, 2**32 - 1]")
    return arr.astype(np.uint32)


def fp32_daz(bits) -> np.ndarray:
    """Subnormal inputs become zeros of the same sign."""
    b = _u32(bits)
    sub = (b & 0x7F800000) == 0
    return np.where(sub, b & 0x80000000, b).astype(np.uint32)


def _finish(result32: np.ndarray) -> np.ndarray:
    """Flush subnormal results (sign kept) and canonicalize NaNs; returns uint32 bits."""
    bits = result32.astype(np.float32).view(np.uint32)
    sub = (bits & 0x7F800000) == 0
    bits = np.where(sub, bits & 0x80000000, bits)
    return np.where(np.isnan(result32), np.uint32(CANONICAL_NAN), bits).astype(np.uint32)


def fp32_mul(a_bits, b_bits) -> np.ndarray:
    """FP32 product, RNE, DAZ inputs, FTZ (tininess before rounding), canonical NaN."""
    with np.errstate(all="ignore"):  # signalling NaN patterns warn on conversion
        a = bits_to_f32(fp32_daz(a_bits)).astype(np.float64)
        b = bits_to_f32(fp32_daz(b_bits)).astype(np.float64)
        p = a * b  # exact: 24 x 24 significand bits fit in 53
        tiny = np.abs(p) < 2.0 ** -126
        p = np.where(tiny, np.copysign(0.0, p), p)
        r = p.astype(np.float32)  # one RNE rounding; |p| >= 2^-126 so never subnormal
    return _finish(r)


def fp32_add(a_bits, b_bits) -> np.ndarray:
    """FP32 sum, RNE, DAZ inputs, FTZ (a tiny sum is exact), canonical NaN."""
    a = bits_to_f32(fp32_daz(a_bits))
    b = bits_to_f32(fp32_daz(b_bits))
    with np.errstate(all="ignore"):
        r = a + b  # IEEE float32 addition, correctly rounded
    return _finish(r)


def fp32_mac(acc_bits, a_bits, b_bits, clear=False) -> np.ndarray:
    """One FP32 multiply-add step: ``acc' = fp32(acc + fp32(a*b))``; ``clear``: ``acc' = fp32(a*b)``."""
    p = fp32_mul(a_bits, b_bits)
    s = fp32_add(acc_bits, p)
    return np.where(np.asarray(clear, dtype=bool), p, s).astype(np.uint32)


def fp32_accumulate(a_bits, b_bits, acc0: int | None = None) -> int:
    """Sequential FP32 MAC over a sequence (k ascending), starting with ``clear`` unless ``acc0``."""
    a, b = _u32(a_bits).ravel(), _u32(b_bits).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal, non-empty sequences, got {a.size} and {b.size} elements")
    acc = np.uint32(0) if acc0 is None else np.uint32(acc0)
    for k in range(a.size):
        acc = fp32_mac(acc, a[k], b[k], clear=(k == 0 and acc0 is None))
    return int(acc)


# -- FP8 ------------------------------------------------------------------------------------

def _codes(codes, fmt: FloatFormat) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"{fmt} codes must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << fmt.bits)):
        raise ValueError(f"{fmt} codes must be in [0, {(1 << fmt.bits) - 1}]")
    return arr.astype(np.int64)


def fp8_decode(codes, fmt) -> np.ndarray:
    """Exact float64 values of FP8 codes (NaN for NaN codes, ±inf for E5M2 Inf)."""
    fmt = fp8_format(fmt)
    c = _codes(codes, fmt)
    s = (c >> (fmt.bits - 1)) & 1
    e = (c >> fmt.man_bits) & fmt.max_exp_field
    m = c & ((1 << fmt.man_bits) - 1)
    sig = np.where(e == 0, m, m + (1 << fmt.man_bits)).astype(np.float64)
    exp = np.maximum(e, 1) - fmt.bias - fmt.man_bits
    val = np.ldexp(sig, exp.astype(np.int32))
    if fmt.ieee_specials:
        top = e == fmt.max_exp_field
        val = np.where(top & (m == 0), np.inf, val)
        val = np.where(top & (m != 0), np.nan, val)
    else:
        val = np.where((e == fmt.max_exp_field) & (m == (1 << fmt.man_bits) - 1), np.nan, val)
    return np.where(s == 1, -val, val)


def fp8_mul(a_codes, b_codes, fmt_a="e4m3", fmt_b="e4m3") -> np.ndarray:
    """Exact FP32 product of two FP8 codes (uint32 bits). Inf*0 (E5M2) is NaN; NaN canonical."""
    a = fp8_decode(a_codes, fmt_a)
    b = fp8_decode(b_codes, fmt_b)
    with np.errstate(all="ignore"):
        p = a * b
        r = p.astype(np.float32)
    exact = np.isnan(p) | (r.astype(np.float64) == p)
    assert bool(np.all(exact)), "an FP8 product was not exact in FP32"
    return _finish(r)


def fp8_mac(acc_bits, a_codes, b_codes, fmt_a="e4m3", fmt_b="e4m3", clear=False) -> np.ndarray:
    """One FP8 MAC step with FP32 accumulate: ``acc' = fp32_add(acc, fp8_mul(a, b))``."""
    p = fp8_mul(a_codes, b_codes, fmt_a, fmt_b)
    s = fp32_add(acc_bits, p)
    return np.where(np.asarray(clear, dtype=bool), p, s).astype(np.uint32)


def fp8_accumulate(a_codes, b_codes, fmt_a="e4m3", fmt_b="e4m3") -> int:
    """Sequential FP8 MAC (k ascending), first step clears."""
    p = fp8_mul(np.ravel(a_codes), np.ravel(b_codes), fmt_a, fmt_b)
    if p.size == 0:
        raise ValueError("need a non-empty sequence")
    acc = p[0]
    for k in range(1, p.size):
        acc = fp32_add(acc, p[k])
    return int(acc)


# -- INT8 -----------------------------------------------------------------------------------

def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def int8_mac(acc, a, b, clear=False) -> np.ndarray:
    """INT8 x INT8 -> INT32 MAC, wrapping modulo 2^32 (signed values in, signed values out)."""
    a, b, acc = (np.asarray(x, dtype=np.int64) for x in (a, b, acc))
    acc_lo, acc_hi = -(1 << (INT32_ACC_BITS - 1)), (1 << (INT32_ACC_BITS - 1)) - 1
    for name, v, lo, hi in (("a", a, INT8_MIN, INT8_MAX), ("b", b, INT8_MIN, INT8_MAX), ("acc", acc, acc_lo, acc_hi)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"{name} must be in [{lo}, {hi}]")
    p = a * b
    return np.where(np.asarray(clear, dtype=bool), p, _wrap32(acc + p))


def int8_accumulate(a, b) -> int:
    """Sequential INT8 MAC (k ascending), first step clears; INT32 wrap-around."""
    a, b = np.ravel(np.asarray(a, dtype=np.int64)), np.ravel(np.asarray(b, dtype=np.int64))
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal, non-empty sequences, got {a.size} and {b.size} elements")
    return int(_wrap32(np.asarray(np.sum(a * b))))


# -- same-lane dot-product baselines (docs/numerics.md §3.1, fair baselines) ---------------------------
#
# An L-lane dot-product PE takes one *beat* of L operand pairs per cycle, like the MLS dot PE.
#
# FP8 dot PE (``fp8_dot_mac``): acc <- fp32_rne(acc + sum_l a_l * w_l), ONE rounding per beat.
#   - Every FP8 value is an integer times 2^fp8_fixed_lsb(fmt) (subnormals kept, as in fp8_mul),
#     so every lane product is an integer in units of 2^(lsb_a + lsb_w) and the beat's sum of
#     products is computed exactly (a wide fixed-point adder tree in the hardware).
#   - The accumulator (FP32) is DAZ: a subnormal acc counts as a zero of the same sign.
#   - NaN: any NaN operand, an Inf x 0 lane (E5M2), a NaN acc, or Inf terms of both signs among
#     acc and the lane products give the canonical NaN. Otherwise an Inf term gives that Inf.
#   - Finite terms: the exact value acc + S is rounded once to FP32, RNE. An exact result below
#     2^-126 in magnitude would flush to a zero of its sign (tininess before rounding, as
#     fp32_mul) and an overflow would round to Inf; neither can happen for FP8 products
#     (docs/numerics.md): every sum of products is a multiple of 2^(lsb_a + lsb_w) >= 2^-32 and
#     at most 1024 * 57344^2 < 2^42 in magnitude, far from both ends of FP32.
#   - An exact zero result is -0 only if every addend (acc and each lane product) is -0; else +0
#     (IEEE's rule for x + y, extended to the L + 1 addends of the beat).
#   - ``first`` starts a tile: the beat is added to -0, the additive identity, so a tile's first
#     result is fp32_rne(sum_l a_l * w_l) and keeps the sign of an all -0 beat.
#   At L = 1 this is exactly the scalar FP8 PE (fp8_mac; an FP8 product is exact in FP32); at
#   L = 2 a first beat is exactly fp32_add(fp8_mul(a0, w0), fp8_mul(a1, w1)).
#
# INT8 dot PE (``int8_dot_mac``): acc <- wrap32(acc + sum_l a_l * w_l); ``first``: wrap32(sum).

#: Canonical patterns of the FP32 signed zeros and infinities.
FP32_NEG_ZERO = 0x80000000
FP32_POS_INF, FP32_NEG_INF = 0x7F800000, 0xFF800000


def fp8_fixed_lsb(fmt) -> int:
    """Exponent of the LSB of an FP8 format's values: every finite value is an integer times
    ``2**fp8_fixed_lsb(fmt)`` (``1 - bias - man_bits``: -9 for E4M3, -16 for E5M2)."""
    fmt = fp8_format(fmt)
    return 1 - fmt.bias - fmt.man_bits


def fp8_max_fixed(fmt) -> int:
    """Largest finite FP8 magnitude in units of ``2**fp8_fixed_lsb(fmt)`` (448 * 2^9 for E4M3)."""
    fmt = fp8_format(fmt)
    return int(fmt.max_finite * 2.0 ** -fp8_fixed_lsb(fmt))


def fp8_dot_product_lsb(fmt_a, fmt_w) -> int:
    """Exponent of the LSB of a lane product and of the beat's exact sum: -18 for E4M3 x E4M3,
    -25 for E4M3 x E5M2, -32 for E5M2 x E5M2."""
    return fp8_fixed_lsb(fmt_a) + fp8_fixed_lsb(fmt_w)


def fp8_dot_max_product(fmt_a, fmt_w) -> int:
    """Largest lane-product magnitude in units of ``2**fp8_dot_product_lsb``."""
    return fp8_max_fixed(fmt_a) * fp8_max_fixed(fmt_w)


def _fp8_fixed(code: int, fmt: FloatFormat) -> tuple[str, int, int]:
    """(kind, sign, magnitude): kind is "nan", "inf" or "finite"; a finite magnitude is in
    units of 2^fp8_fixed_lsb(fmt) (exact, subnormals kept)."""
    sign = (code >> (fmt.bits - 1)) & 1
    exp = (code >> fmt.man_bits) & fmt.max_exp_field
    man = code & ((1 << fmt.man_bits) - 1)
    if exp == fmt.max_exp_field:
        if fmt.ieee_specials:
            return ("inf" if man == 0 else "nan"), sign, 0
        if man == (1 << fmt.man_bits) - 1:  # OCP E4M3 "FN": S.1111.111 is NaN, no Inf
            return "nan", sign, 0
    sig = man | ((exp != 0) << fmt.man_bits)
    return "finite", sign, sig << (max(exp, 1) - 1)


def _fp32_terms(bits: int) -> tuple[str, int, int, int]:
    """(kind, sign, magnitude, exponent) of an FP32 pattern after DAZ: value = ±magnitude·2^exponent."""
    sign, exp, man = bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if exp == 0xFF:
        return ("nan" if man else "inf"), sign, 0, 0
    if exp == 0:  # DAZ
        return "finite", sign, 0, 0
    return "finite", sign, man | (1 << 23), exp - 150


def fp32_round_exact(sign: int, magnitude: int, exponent: int) -> int:
    """FP32 bits of the exact nonzero value ``(-1)^sign · magnitude · 2^exponent``, rounded once
    to nearest even; |value| < 2^-126 flushes to a zero of its sign (tininess before rounding),
    and a value that rounds above the largest finite number is Inf."""
    if magnitude <= 0:
        raise ValueError(f"magnitude must be positive, got {magnitude}")
    top = exponent + magnitude.bit_length() - 1  # value in [2^top, 2^(top+1))
    if top < FP32.min_normal_exponent:
        return sign << 31
    drop = magnitude.bit_length() - FP32.sig_bits
    if drop > 0:
        sig, rest = magnitude >> drop, magnitude & ((1 << drop) - 1)
        half = 1 << (drop - 1)
        if rest > half or (rest == half and sig & 1):
            sig += 1
            if sig >> FP32.sig_bits:  # 1.11..1 rounded up to 10.00..0
                sig, top = sig >> 1, top + 1
    else:
        sig = magnitude << -drop
    if top > FP32.bias:
        return (sign << 31) | FP32_POS_INF
    return (sign << 31) | ((top + FP32.bias) << FP32.man_bits) | (sig & ((1 << FP32.man_bits) - 1))


_FP8_FIXED_TABLES: dict = {}


def _fp8_fixed_table(fmt: FloatFormat) -> tuple:
    table = _FP8_FIXED_TABLES.get(fmt)
    if table is None:
        table = _FP8_FIXED_TABLES[fmt] = tuple(_fp8_fixed(code, fmt) for code in range(1 << fmt.bits))
    return table


def _beat_codes(codes, fmt: FloatFormat, what: str) -> list[int]:
    try:
        lanes = [operator.index(c) for c in codes]
    except TypeError:
        raise TypeError(f"{what} must be a 1-D sequence of integer {fmt} codes, got {codes!r}") from None
    if not lanes:
        raise ValueError(f"{what} must hold at least one lane code")
    for code in lanes:
        if not 0 <= code < 1 << fmt.bits:
            raise ValueError(f"{fmt} codes must be in [0, {(1 << fmt.bits) - 1}], got {code} in {what}")
    return lanes


def _fp32_word(bits, what: str) -> int:
    try:
        word = operator.index(bits)
    except TypeError:
        raise TypeError(f"{what} must be an integer FP32 bit pattern, not {bits!r}") from None
    if not 0 <= word <= 0xFFFFFFFF:
        raise ValueError(f"{what} must be in [0, 2**32 - 1], got {word}")
    return word


def fp8_dot_mac(acc_bits: int, a_codes, w_codes, fmt_a="e4m3", fmt_w="e4m3", first: bool = False) -> int:
    """One beat of the FP8 dot-product PE: ``fp32_rne(acc + sum_l a_l * w_l)``, one rounding.

    ``a_codes``, ``w_codes``: the beat's L codes of A (``fmt_a``) and W (``fmt_w``), lane 0
    first. ``first``: the tile's first beat, added to -0 instead of ``acc_bits``. Returns the
    new accumulator's FP32 bits (rules at the top of this section).
    """
    fa, fw = fp8_format(fmt_a), fp8_format(fmt_w)
    a = _beat_codes(a_codes, fa, "a_codes")
    w = _beat_codes(w_codes, fw, "w_codes")
    if len(a) != len(w):
        raise ValueError(f"a beat needs as many A as W codes, got {len(a)} and {len(w)}")
    acc = FP32_NEG_ZERO if first else _fp32_word(acc_bits, "acc_bits")

    nan = pos_inf = neg_inf = False
    total = 0           # exact sum of the finite lane products, in units of 2^lsb
    all_neg_zero = True
    ta, tw = _fp8_fixed_table(fa), _fp8_fixed_table(fw)
    for ca, cw in zip(a, w):
        (ka, sa, ma), (kw, sw, mw) = ta[ca], tw[cw]
        sign = sa ^ sw
        if "nan" in (ka, kw) or (ka == "inf" and mw == 0 and kw == "finite") \
                or (kw == "inf" and ma == 0 and ka == "finite"):
            nan = True
            all_neg_zero = False
        elif "inf" in (ka, kw):
            pos_inf, neg_inf = pos_inf or not sign, neg_inf or bool(sign)
            all_neg_zero = False
        else:
            product = ma * mw
            total += -product if sign else product
            all_neg_zero &= product == 0 and sign == 1
    return fp32_add_exact(acc, total, fp8_dot_product_lsb(fa, fw), nan=nan, pos_inf=pos_inf, neg_inf=neg_inf,
                          neg_zero=all_neg_zero)


def fp32_add_exact(acc_bits: int, total: int, total_lsb: int, *, nan: bool = False, pos_inf: bool = False,
                   neg_inf: bool = False, neg_zero: bool = False) -> int:
    """``fp32_rne(acc + total · 2^total_lsb)`` with ONE rounding: the FP8 dot PE's accumulator add
    (``hw.baseline.FP32WideAdder``). ``acc_bits`` is DAZ; ``total`` is an exact integer.

    The flags describe the other addends (the beat's lanes): ``nan`` (a NaN lane), ``pos_inf``
    / ``neg_inf`` (an infinite lane; both, or one against an opposite Inf acc, is NaN), and
    ``neg_zero`` (every lane is -0, so ``total`` is 0; a zero result is -0 only if this holds and
    acc is -0). NaN results are canonical.
    """
    acc = _fp32_word(acc_bits, "acc_bits")
    if isinstance(total, bool) or not isinstance(total, int) or isinstance(total_lsb, bool) \
            or not isinstance(total_lsb, int):
        raise TypeError(f"total and total_lsb must be ints, not {total!r} and {total_lsb!r}")
    if neg_zero and total != 0:
        raise ValueError(f"neg_zero says every lane is -0, but total is {total}")
    acc_kind, acc_sign, acc_mag, acc_exp = _fp32_terms(acc)
    pos_inf = pos_inf or (acc_kind == "inf" and not acc_sign)
    neg_inf = neg_inf or (acc_kind == "inf" and bool(acc_sign))
    if nan or acc_kind == "nan" or (pos_inf and neg_inf):
        return CANONICAL_NAN
    if pos_inf or neg_inf:
        return FP32_POS_INF if pos_inf else FP32_NEG_INF
    # acc + total exactly, as an integer times 2^low.
    low = min(total_lsb, acc_exp)
    exact = (total << (total_lsb - low)) + ((-acc_mag if acc_sign else acc_mag) << (acc_exp - low))
    if exact == 0:
        return FP32_NEG_ZERO if (neg_zero and acc_sign and acc_mag == 0) else 0
    return fp32_round_exact(int(exact < 0), abs(exact), low)


def _beats(codes, what: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty (beats, lanes) array, got shape {arr.shape}")
    return arr


def fp8_dot_accumulate(a_beats, w_beats, fmt_a="e4m3", fmt_w="e4m3") -> int:
    """One tile of the FP8 dot PE: beats in order, the first with ``first``; returns FP32 bits.
    ``a_beats``, ``w_beats``: (beats, lanes) arrays of codes (pad lanes with zero codes)."""
    a, w = _beats(a_beats, "a_beats"), _beats(w_beats, "w_beats")
    if a.shape != w.shape:
        raise ValueError(f"a_beats and w_beats must have the same shape, got {a.shape} and {w.shape}")
    acc = FP32_NEG_ZERO
    for i in range(a.shape[0]):
        acc = fp8_dot_mac(acc, a[i], w[i], fmt_a, fmt_w, first=(i == 0))
    return acc


def int8_dot_mac(acc, a, w, first=False) -> np.ndarray:
    """One beat of the INT8 dot-product PE: ``wrap32(acc + sum_l a_l * w_l)`` (``first``: no acc).

    ``a``, ``w``: INT8 values with the lanes on the last axis (any leading shape); ``acc`` and
    ``first`` broadcast against the leading shape. Returns signed INT32 values (int64 array).
    """
    a, w, acc = (np.asarray(x, dtype=np.int64) for x in (a, w, acc))
    if a.shape != w.shape or a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError(f"a and w must have the same shape with the lanes last, got {a.shape} and {w.shape}")
    acc_lo, acc_hi = -(1 << (INT32_ACC_BITS - 1)), (1 << (INT32_ACC_BITS - 1)) - 1
    for name, v, lo, hi in (("a", a, INT8_MIN, INT8_MAX), ("w", w, INT8_MIN, INT8_MAX), ("acc", acc, acc_lo, acc_hi)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"{name} must be in [{lo}, {hi}], got values in [{v.min()}, {v.max()}]")
    beat_sum = np.sum(a * w, axis=-1)
    return _wrap32(np.where(np.asarray(first, dtype=bool), 0, acc) + beat_sum)


def int8_dot_accumulate(a_beats, w_beats) -> int:
    """One tile of the INT8 dot PE (beats in order, the first with ``first``): signed INT32."""
    a, w = _beats(a_beats, "a_beats"), _beats(w_beats, "w_beats")
    if a.shape != w.shape:
        raise ValueError(f"a_beats and w_beats must have the same shape, got {a.shape} and {w.shape}")
    acc = 0
    for i in range(a.shape[0]):
        acc = int(int8_dot_mac(acc, a[i], w[i], first=(i == 0)))
    return acc
