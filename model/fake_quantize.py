"""``fake_quantize``: ``quantize(...).dequantize()`` bit for bit, fast, for training.

The readable definition is ``model.quantize``; this module is its vectorized twin, tested
against it bit for bit (tests/test_fake_quantize.py). Three paths give the same bits:

- the eager fast path (``_fake_quantize_fast``): the grid value in FP32 arithmetic, in
  cache-sized chunks;
- the same kernels fused by ``torch.compile`` (opt-in: ``use_compiled_fake_quantize``);
- the code path of ``quantize`` and ``MLSTensor.dequantize``, wherever the fast path's
  preconditions fail.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .formats import MLSFormat
from .fp32 import FP32_MIN_NORMAL, daz, ftz, pow2
from .grouping import Grouping
from .mls_tensor import _dequantize_fields, _group_view
from .quantize import (Rounding, _as_fp32, _fast_limits, _quantize_fields, check_finite, group_exponent,
                       tensor_scale)
from .random_bits import (DEFAULT_SR_BITS, _draw_words, _split_draw_ok, _split_words, check_random_bits,
                          random_bits_like)

__all__ = ["fake_quantize", "use_compiled_fake_quantize"]


def fake_quantize(
    x: torch.Tensor,
    fmt: MLSFormat | str,
    grouping: Grouping | str = Grouping.channel(),
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    *,
    sr_bits: int = DEFAULT_SR_BITS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``quantize(x, ...).dequantize()`` bit for bit, without building the ``MLSTensor``.

    The training fast path: FP32 GEMMs run on these dequantized values. The common case runs
    ``_fake_quantize_fast`` (fused by torch.compile after ``use_compiled_fake_quantize``); the rest
    runs the code path of ``quantize`` and ``MLSTensor.dequantize``.
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    if _COMPILED_KERNELS is not None and torch.as_tensor(x).numel() >= _COMPILE_MIN_NUMEL:
        out = _fake_quantize_compiled(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    else:
        out = _fake_quantize_fast(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    if out is not None:
        return out
    negative, codes, g, scale = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    return _dequantize_fields(negative, codes, g, scale, fmt, grouping)


# -- the fast path: the grid value in FP32 arithmetic ------------------------------------------
# ``_round_codes`` + ``_dequantize_fields`` compute an integer code and decode it through a
# table. Since the code is linear in the grid (code ``(b - b_min) * 2**M + n`` stands for
# ``n * 2**(b - M)``, b = max(binade, b_min)), the decoded magnitude is ``n * ulp`` with
# ``ulp = 2**(max(binade(z), b_min) - M)``, and every step is exact FP32 arithmetic:
#
# - ulp: the exponent bits of z (a power of two, 0 for subnormal z), times 2**-M, clamped below
#   at 2**(b_min - M) (a normal number by the format limits);
# - nearest: ``n = round(z / ulp)`` (RNE: ties to the even n, the even code for M >= 1), the
#   same value ``_round_codes`` rounds (``z / ulp`` is exact unless it is below 2**-126, and then
#   both round to 0);
# - stochastic: ``n = floor((floor(z * 2**R / ulp) + r) * 2**-R)``, exact while the integers stay
#   below 2**24 (M + R + 2 <= 24);
# - saturation at elem_max (the largest code) is applied to z first: elem_max is on the grid and
#   both roundings are monotone, so clamping before or after rounding gives the same value;
# - the sign: nearest rounds the signed ``x * inv_g`` (RNE is symmetric), stochastic rounds
#   the magnitude and copies the sign of x; ``+ 0.0`` turns the -0 of a negative value that
#   rounded to code 0 into +0, as ``_dequantize_fields`` gives.
#
# Preconditions (else the code path runs): whole groups (no ragged block), the direct
# ``z = fp32(|x| * inv_g)`` of ``_quantize_fields`` is valid, and every per-group factor
# ``2**-g * S_t`` and product with the smallest element is normal (no FTZ), the conditions of
# the no-FTZ branch of ``_dequantize_fields``. ``tests/test_fake_quantize.py`` checks this path
# against ``quantize().dequantize()`` bit for bit.
_EXP_MASK = 0x7F800000


def _fast_format_ok(fmt: MLSFormat, rounding: str, sr_bits: int) -> bool:
    if rounding == "nearest":
        return fmt.man_bits >= 1  # M = 0: ties go to the even code, not the even ulp count
    return rounding == "stochastic" and fmt.man_bits + sr_bits + 2 <= 24


def _ulp(z: torch.Tensor, man_scale: float, ulp_min: float, scratch=None) -> torch.Tensor:
    """``2**(max(binade(z), b_min) - M)`` per element, from the exponent bits of z (into the
    int32 ``scratch`` of z's shape if given)."""
    bits = z.view(torch.int32) & _EXP_MASK if scratch is None else torch.bitwise_and(z.view(torch.int32), _EXP_MASK,
                                                                                      out=scratch)
    return bits.view(torch.float32).mul_(man_scale).clamp_min_(ulp_min)


# ``out`` and ``scratch`` (eager chunks): the result goes to ``out``, the ulp to ``scratch``, so
# that no pass writes to freshly allocated (not yet paged-in) memory.
def _fast_nearest(x, inv_g, factor, elem_max: float, man_scale: float, ulp_min: float, out=None, scratch=None):
    z = (x * inv_g if out is None else torch.mul(x, inv_g, out=out)).clamp_(-elem_max, elem_max)
    ulp = _ulp(z, man_scale, ulp_min, scratch)
    return z.div_(ulp).round_().mul_(ulp).mul_(factor).add_(0.0)


def _fast_stochastic(x, inv_g, factor, r, elem_max: float, man_scale: float, ulp_min: float, sr_scale: float,
                     sr_inv: float, out=None, scratch=None):
    z = (x.abs() * inv_g if out is None else torch.mul(x, inv_g, out=out).abs_()).clamp_max_(elem_max)
    ulp = _ulp(z, man_scale, ulp_min, scratch)
    n = z.mul_(sr_scale).div_(ulp).floor_().add_(r).mul_(sr_inv).floor_()
    return n.mul_(ulp).mul_(factor).copysign_(x).add_(0.0)


def _fast_stochastic_words(x, inv_g, factor, words, mask: int, elem_max: float, man_scale: float, ulp_min: float,
                           sr_scale: float, sr_inv: float):
    """``_fast_stochastic`` with the random bits split from 64-bit draws in the kernel (the bits of
    ``_split_words``): x and the group tensors have a trailing axis of 2 or 1 (element pairs
    2j, 2j+1), words one of 1; the high half of a word goes to the even element."""
    consts = (elem_max, man_scale, ulp_min, sr_scale, sr_inv)
    even = _fast_stochastic(x[..., :1], inv_g[..., :1], factor[..., :1], (words >> 32) & mask, *consts)
    odd = _fast_stochastic(x[..., 1:], inv_g[..., -1:], factor[..., -1:], words & mask, *consts)
    return torch.cat((even, odd), dim=-1)


def _fast_setup(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int, generator,
                fused_absmax=None):
    """Steps 1, 2 and 4 for the fast path: ``(x, views, inv_g, factor)``, or None where the
    fast path does not apply (then the code path runs and raises any error).

    The same values and checks as ``_prepare`` (and the FTZ conditions of ``_dequantize_fields``)
    with two host syncs: every condition depends only on the tensor max and the largest group
    exponent, since ``inv_g = inv * 2**g`` and ``factor = 2**-g * S_t``. The scalar FP32 products
    are formed exactly in float64 and rounded once to FP32 (numpy), as the FP32 multiply would.
    """
    if not _fast_format_ok(fmt, rounding, sr_bits):
        return None
    x = _as_fp32(x).detach()  # like the code path, whose output carries no autograd history
    shape = tuple(x.shape)
    if len(shape) == 0 or x.numel() == 0:
        return None
    views = _group_view(grouping, shape)
    if views is None:
        return None
    elem_view, group_view = views
    if random_bits is not None:
        check_random_bits(random_bits, x.shape, sr_bits)
    if fused_absmax is None:
        # max |x| = max(max x, -min x): one read of x, no |x| copy (NaN and Inf propagate alike;
        # an all-zero group may give -0, which counts as 0 below).
        xg = x.reshape(elem_view[0], elem_view[1], -1) if grouping.span_trailing else x.reshape(elem_view)
        high, low = torch.amax(xg, dim=2, keepdim=True), torch.amin(xg, dim=2, keepdim=True)
        group_max_x = torch.maximum(high, low.neg_()).reshape(group_view)
    else:
        group_max_x = fused_absmax(x)
    amax = float(group_max_x.max())  # NaN and Inf propagate through max
    if not math.isfinite(amax):
        check_finite(x)
    scale, inv = _tensor_scale_scalar(amax if amax >= FP32_MIN_NORMAL else 0.0, fmt)
    if x.device.type == "cpu":
        g = torch.from_numpy(_group_exponent_numpy(group_max_x.detach().numpy(), inv, fmt))
    else:
        g = group_exponent(ftz(daz(group_max_x) * torch.tensor(inv, dtype=torch.float32, device=x.device)), fmt)
    g_max = int(g.max())
    # _prepare's `direct`: every inv_g finite, and fp32(2**-126 * max inv_g) below the limit.
    inv_g_max = inv * 2.0 ** g_max
    elem_min_subnormal, limit = _fast_limits(fmt, sr_bits if rounding == "stochastic" else 1)
    if not (inv_g_max < 2.0 ** 128 and float(np.float32(FP32_MIN_NORMAL * inv_g_max)) < limit):
        return None
    # _dequantize_fields' no-FTZ branch: the smallest factor and its product with the smallest element are normal.
    factor_min = float(np.float32(2.0 ** -g_max * scale))
    if not (factor_min >= FP32_MIN_NORMAL and float(np.float32(elem_min_subnormal * factor_min)) >= FP32_MIN_NORMAL):
        return None
    if x.device.type == "cpu":  # both exact here: inv * 2**g is finite, 2**-g * S_t normal
        g_np = g.numpy().astype(np.int32)
        inv_g = torch.from_numpy(np.ldexp(np.float32(inv), g_np))
        factor = torch.from_numpy(np.ldexp(np.float32(scale), -g_np))
    else:
        inv_g = torch.tensor(inv, dtype=torch.float32, device=x.device) * pow2(g)
        factor = pow2(-g.to(torch.int32)) * torch.tensor(scale, dtype=torch.float32, device=x.device)
    return x, views, inv_g, factor


_FP32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103  # the smallest real number that rounds (RNE) to FP32 inf


def _tensor_scale_scalar(amax: float, fmt: MLSFormat) -> tuple[float, float]:
    """``tensor_scale`` for an FP32 ``amax`` given as a Python float, without tensor ops.

    Each quotient of two FP32 numbers is formed in float64 and rounded once to FP32: for a
    division the float64 rounding never changes the FP32 result (53 >= 2 * 24 + 2 bits).
    Zero, and the inverse-scale overflow (then ``tensor_scale`` raises its error), go to
    ``tensor_scale``. Tested against it in ``tests/test_fake_quantize.py``.
    """
    if amax == 0.0:
        return tensor_scale(amax, fmt)
    elem_max = _scalar_constants(fmt)[0]
    inv = elem_max / amax
    if inv >= _FP32_OVERFLOW:
        return tensor_scale(amax, fmt)
    return float(np.float32(amax / elem_max)), float(np.float32(inv))


@functools.lru_cache(maxsize=256)
def _scalar_constants(fmt: MLSFormat) -> tuple[float, float, int]:
    """``(elem_max, frexp mantissa of elem_max, its frexp exponent)`` per format."""
    me, ee = np.frexp(np.float32(fmt.elem_max))
    return fmt.elem_max, float(me), int(ee)


def _group_exponent_numpy(group_max: np.ndarray, inv: float, fmt: MLSFormat) -> np.ndarray:
    """``group_exponent(ftz(daz(group_max) * inv), fmt)`` in numpy (CPU; float32 arithmetic,
    the same IEEE operations), for the small per-group tensors, where torch's per-op cost rules."""
    _, me, ee = _scalar_constants(fmt)
    y = np.where(group_max < FP32_MIN_NORMAL, np.float32(0), group_max) * np.float32(inv)
    y = np.where(y < FP32_MIN_NORMAL, np.float32(0), y)
    my, ey = np.frexp(y)
    g = ee - ey.astype(np.int32) - (my > me)
    g = np.where(y == 0, fmt.max_group_exp, g)
    return np.clip(g, 0, fmt.max_group_exp).astype(np.uint8)


@functools.lru_cache(maxsize=256)
def _fast_constants(fmt: MLSFormat, sr_bits: int) -> tuple[float, ...]:
    return (fmt.elem_max, 2.0 ** -fmt.man_bits, 2.0 ** (fmt.min_normal_exponent - fmt.man_bits),
            2.0 ** sr_bits, 2.0 ** -sr_bits)


def _fake_quantize_fast(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                        generator) -> torch.Tensor | None:
    """The eager fast path, or None where its preconditions fail (then the code path runs)."""
    setup = _fast_setup(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    if setup is None:
        return None
    x, (elem_view, group_view), inv_g, factor = setup
    consts = _fast_constants(fmt, sr_bits)
    xv, inv_g, factor = x.reshape(elem_view), inv_g.reshape(group_view), factor.reshape(group_view)
    # In chunks of about _CHUNK elements along the first axis, so that the ~10-16 element-wise
    # passes run on cache-resident data. Drawing the random bits chunk by chunk, in order, gives
    # the same stream on the CPU (one generator output per element, see _draw_words).
    pre = elem_view[0]
    rows = max(1, _CHUNK // max(1, x.numel() // pre))
    split = rounding == "stochastic" and random_bits is None and _split_draw_ok(generator, x.device)
    if rounding == "stochastic" and random_bits is None and not split:
        random_bits = random_bits_like(x.shape, sr_bits, generator, device=x.device)
    bits = random_bits.reshape(elem_view) if random_bits is not None else None
    out = torch.empty(elem_view, dtype=torch.float32, device=x.device)
    scratch = torch.empty((min(rows, pre),) + elem_view[1:], dtype=torch.int32, device=x.device)
    for start in range(0, pre, rows):
        rs = slice(start, start + rows)
        chunk = out[rs]
        scratch_rs = scratch[:chunk.shape[0]]
        if rounding == "nearest":
            _fast_nearest(xv[rs], inv_g[rs], factor[rs], *consts[:3], out=chunk, scratch=scratch_rs)
            continue
        if split:
            words, tail = _draw_words(chunk.numel(), generator)
            r = _split_words(words, tail, sr_bits).reshape(chunk.shape)
        else:
            r = bits[rs]
        _fast_stochastic(xv[rs], inv_g[rs], factor[rs], r, *consts, out=chunk, scratch=scratch_rs)
    return out.reshape(x.shape)


#: Elements per chunk of the eager fast path (~0.5 MB of FP32: a few live temporaries fit in L2).
_CHUNK = 1 << 17


# -- optional fused kernel (torch.compile) for the training path --------------------------------
_COMPILED_KERNELS: dict | None = None
#: Below this many elements the eager fast path is as fast as a compiled call (dynamo's per-call
#: cost), so small tensors (most weights) stay eager; the bits are the same either way.
_COMPILE_MIN_NUMEL = 1 << 16


def _fused_absmax(x, span_trailing: bool):
    m = x.abs().amax(dim=2, keepdim=True)  # NaN propagates, as in Grouping.group_amax
    return m.amax(dim=3, keepdim=True) if span_trailing else m


def use_compiled_fake_quantize(enabled: bool = True) -> None:
    """Run ``fake_quantize``'s fast path as ``torch.compile``-fused kernels (same bits; opt-in).

    The kernels are ``_fast_nearest`` / ``_fast_stochastic`` (the latter, where the last axis
    has even length, drawing its random bits as 64-bit words split in the kernel: the same bits
    as ``random_bits_like``) and the group max of |x|; cases the fast path does not cover fall
    back to the eager code path. Compiling costs seconds per new shape, so it pays off on long
    runs and big tensors.
    """
    global _COMPILED_KERNELS
    if not enabled:
        _COMPILED_KERNELS = None
        return
    _COMPILED_KERNELS = {"absmax": torch.compile(_fused_absmax, dynamic=True)}


def _compiled(kind: str, *consts):
    """The compiled kernel ``kind`` with the format's constants baked in (Python floats passed
    as arguments would cost a guard check per call)."""
    key = (kind, *consts)
    if key not in _COMPILED_KERNELS:
        fn = {"nearest": _fast_nearest, "stochastic": _fast_stochastic, "stochastic_words": _fast_stochastic_words}[kind]
        if kind == "nearest":
            def kernel(x, inv_g, factor):
                return fn(x, inv_g, factor, *consts)
        else:
            def kernel(x, inv_g, factor, bits):
                return fn(x, inv_g, factor, bits, *consts)
        _COMPILED_KERNELS[key] = torch.compile(kernel, dynamic=True)
    return _COMPILED_KERNELS[key]


def _fake_quantize_compiled(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                            generator) -> torch.Tensor | None:
    """The fused path, or None where its preconditions fail (then the eager path runs)."""
    if not _fast_format_ok(fmt, rounding, sr_bits):
        return None
    shape = tuple(torch.as_tensor(x).shape)
    if len(shape) == 0 or _group_view(grouping, shape) is None:
        return None
    elem_view, group_view = _group_view(grouping, shape)
    absmax = _COMPILED_KERNELS["absmax"]

    def fused_absmax(t):
        return absmax(t.reshape(elem_view), grouping.span_trailing)

    setup = _fast_setup(x, fmt, grouping, rounding, random_bits, sr_bits, generator, fused_absmax)
    if setup is None:
        return None
    x, _, inv_g, factor = setup
    elem_max, man_scale, ulp_min, sr_scale, sr_inv = _fast_constants(fmt, sr_bits)
    inv_g, factor = inv_g.reshape(group_view), factor.reshape(group_view)
    if rounding == "nearest":
        out = _compiled("nearest", elem_max, man_scale, ulp_min)(x.reshape(elem_view), inv_g, factor)
    elif random_bits is None and elem_view[-1] % 2 == 0 and _split_draw_ok(generator, x.device):
        # Element pairs (2j, 2j+1) along the last axis take the two halves of 64-bit word j.
        pair_view = elem_view[:-1] + (elem_view[-1] // 2, 2)
        group_pairs = group_view[:-1] + ((group_view[-1] // 2, 2) if group_view[-1] > 1 else (1, 1))
        words, _ = _draw_words(x.numel(), generator)
        kernel = _compiled("stochastic_words", (1 << sr_bits) - 1, elem_max, man_scale, ulp_min, sr_scale, sr_inv)
        out = kernel(x.reshape(pair_view), inv_g.reshape(group_pairs), factor.reshape(group_pairs),
                     words.reshape(pair_view[:-1] + (1,)))
    else:
        if random_bits is None:
            random_bits = random_bits_like(shape, sr_bits, generator, device=x.device)
        kernel = _compiled("stochastic", elem_max, man_scale, ulp_min, sr_scale, sr_inv)
        out = kernel(x.reshape(elem_view), inv_g, factor, random_bits.reshape(elem_view))
    return out.reshape(shape)
