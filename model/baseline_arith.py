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
"""

from __future__ import annotations

import numpy as np

# The format descriptors live in model.floats; re-exported here for the baseline references' users.
from .floats import E4M3, E5M2, FP8_FORMATS, FP32, FloatFormat, float_format, fp8_format

__all__ = [
    "FloatFormat", "FP32", "E4M3", "E5M2", "FP8_FORMATS", "float_format", "fp8_format", "CANONICAL_NAN",
    "INT8_BITS", "INT8_MIN", "INT8_MAX", "INT32_ACC_BITS", "INT8_MAX_K_EXACT", "int8_acc_bits_exact",
    "fp32_daz", "fp32_mul", "fp32_add", "fp32_mac", "fp32_accumulate",
    "fp8_decode", "fp8_mul", "fp8_mac", "fp8_accumulate",
    "int8_mac", "int8_accumulate", "bits_to_f32", "f32_to_bits",
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
