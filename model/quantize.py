"""Dynamic quantization FP32 -> MLS, bit-exact: the definition (docs/numerics.md, "Quantization").

Every step is exact integer or exactly-rounded IEEE FP32 arithmetic, so the hardware quantization
unit can be checked against it bit for bit. The public step functions (``tensor_scale``,
``scale_input``, ``group_exponent``, ``round_to_codes``) are the pieces the RTL implements;
``quantize`` runs steps 1-5 and returns an ``MLSTensor`` (``model.mls_tensor``, which holds
step 6, dequantization, and the packed layout).

The rest of the package around it: ``model.random_bits`` (the R random bits of stochastic
rounding), ``model.fake_quantize`` (the training fast paths, tested bit for bit against
``quantize``), ``model.fp32`` (DAZ/FTZ and exact powers of two).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch

from .formats import MLSFormat
from .fp32 import FP32_MIN_NORMAL, daz, ftz, pow2
from .grouping import Grouping
from .mls_tensor import MLSTensor, _times_groups
from .random_bits import DEFAULT_SR_BITS, check_random_bits, random_bits_like

__all__ = [
    "ROUNDINGS",
    "Rounding",
    "check_finite",
    "convert",
    "group_exponent",
    "quantize",
    "round_to_codes",
    "scale_input",
    "tensor_scale",
]

Rounding = Literal["nearest", "stochastic"]
ROUNDINGS = ("nearest", "stochastic")


# -- input checks (step 1) ---------------------------------------------------------------------
def _as_fp32(x: torch.Tensor | np.ndarray | float) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        raise TypeError(f"quantize expects a floating-point tensor, got dtype {x.dtype}")
    return x.to(torch.float32)


def check_finite(x: torch.Tensor, what: str = "tensor") -> None:
    """Raise ValueError naming the shape and the count of NaN/Inf values."""
    bad = ~torch.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        first = tuple(int(i) for i in torch.nonzero(bad)[0]) if x.dim() else ()
        n_nan = int(torch.isnan(x).sum())
        raise ValueError(
            f"cannot quantize {what} of shape {tuple(x.shape)}: {n_bad} non-finite value(s) "
            f"({n_nan} NaN, {n_bad - n_nan} Inf), first at index {first}"
        )


# -- steps 2-5 ----------------------------------------------------------------------------------
def tensor_scale(amax: float | torch.Tensor, fmt: MLSFormat) -> tuple[float, float]:
    """Step 2: ``(S_t, inv) = (fp32(amax / elem_max), fp32(elem_max / amax))``, one IEEE division each.

    ``amax`` must already be an FP32 value after DAZ. All-zero tensors get ``(1.0, 1.0)``.
    """
    amax_t = torch.as_tensor(amax, dtype=torch.float32)
    if not torch.isfinite(amax_t) or amax_t < 0:
        raise ValueError(f"amax must be finite and non-negative, got {float(amax_t)}")
    if amax_t == 0:
        return 1.0, 1.0
    elem_max = torch.tensor(fmt.elem_max, dtype=torch.float32)
    scale = amax_t / elem_max
    inv = elem_max / amax_t
    if not torch.isfinite(inv):
        raise ValueError(
            f"inverse scale elem_max/amax = {fmt.elem_max}/{float(amax_t):.6g} overflows FP32 for {fmt}; "
            f"amax must be at least {fmt.elem_max / float(torch.finfo(torch.float32).max):.6g}"
        )
    return float(scale), float(inv)


def scale_input(x: torch.Tensor, inv: float) -> torch.Tensor:
    """Step 3: ``y = ftz(fp32(x * inv))``, an IEEE FP32 multiply with RNE then flush-to-zero."""
    return ftz(x * torch.tensor(inv, dtype=torch.float32))


def group_exponent(group_max: torch.Tensor, fmt: MLSFormat) -> torch.Tensor:
    """Step 4: largest g in [0, 2**G-1] with ``group_max * 2**g <= elem_max``, from exponents and mantissas.

    With ``group_max = my * 2**ey`` and ``elem_max = me * 2**ee`` (frexp, mantissas in [0.5, 1)),
    the condition holds iff ``g < ee - ey`` or (``g == ee - ey`` and ``my <= me``). A group whose
    max exceeds elem_max (possible by one FP32 rounding of y) gets g = 0 and saturates; an
    all-zero group gets the clamp ``2**G - 1``.
    """
    group_max = group_max.to(torch.float32)
    my, ey = torch.frexp(group_max)
    me, ee = torch.frexp(torch.tensor(fmt.elem_max, dtype=torch.float32))
    g = ee.to(torch.int32) - ey.to(torch.int32) - (my > me).to(torch.int32)
    g = torch.where(group_max == 0, torch.full_like(g, fmt.max_group_exp), g)
    return g.clamp(0, fmt.max_group_exp).to(torch.uint8)


def round_to_codes(
    magnitude: torch.Tensor,
    fmt: MLSFormat,
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    sr_bits: int = DEFAULT_SR_BITS,
) -> torch.Tensor:
    """Step 5: round non-negative FP32 magnitudes (``|y| * 2**g``) onto the grid; return unsigned codes.

    The code ``e << M | m`` is linear in the grid: a magnitude in binade b (clamped below at the
    smallest normal binade) with ``n`` ulps of ``2**(b-M)`` has code ``(b - b_min) * 2**M + n``,
    which makes mantissa carries and the subnormal/normal seam automatic. Codes saturate at the
    largest code (elem_max).

    - ``nearest``: round to nearest, ties to the even code (the even mantissa when M >= 1;
      for M = 0 the code's LSB is the exponent's, the only well-defined parity).
    - ``stochastic``: ``n = (floor(|z| * 2**(R - u)) + r) >> R`` with R = ``sr_bits`` random bits
      ``r`` per element (an explicit input, so hardware LFSRs can be matched).
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if rounding == "nearest":
        if random_bits is not None:
            raise ValueError("random_bits were given but rounding is 'nearest'")
    else:
        if random_bits is None:
            raise ValueError("stochastic rounding needs random_bits (see random_bits_like)")
        check_random_bits(random_bits, magnitude.shape, sr_bits)
    return _round_codes(magnitude.to(torch.float32), fmt, rounding, random_bits, sr_bits).to(torch.int64)


def _round_codes(z: torch.Tensor, fmt: MLSFormat, rounding: str, random_bits: torch.Tensor | None,
                 sr_bits: int) -> torch.Tensor:
    """Core of ``round_to_codes`` (arguments already checked); returns int32 codes.

    Speed path (same bits as the float64/int64 formulation it replaced): the binade comes from
    the FP32 exponent field (every FP32 subnormal clamps to b_min, as frexp's would), and the
    scalings by ``2**(k - u)`` are exact FP32 multiplies by powers of two built from bits, so
    round/floor act on the same exact values. It needs the integers to fit (M + R + 2 <= 31)
    and ``2**-u`` to be a normal FP32 number; otherwise the float64 path runs.
    """
    max_code = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    b_min, man = fmt.min_normal_exponent, fmt.man_bits
    extra = sr_bits if rounding == "stochastic" else 0
    # M = 0 nearest: ties go to the even *code*, whose parity is not the ulp count's (slow path).
    if man + extra + 2 <= 31 and man + extra >= 1 and not (man == 0 and rounding == "nearest"):
        binade = (z.view(torch.int32) >> 23).clamp_(min=b_min + 127)  # biased; sign bit is 0
        # 2**(extra - u) = 2**(extra + M - b) as FP32 bits: exponent field 127 + extra + M - b.
        factor = (((127 + 127 + extra + man) - binade) << 23).view(torch.float32)
        scaled = z * factor
        if rounding == "nearest":
            ulps = torch.round(scaled).to(torch.int32)  # ties to even ulps = even code for M >= 1
        else:
            ulps = (torch.floor(scaled).to(torch.int32) + random_bits.to(torch.int32)) >> sr_bits
        binade -= b_min + 127
        codes = (binade << man).add_(ulps)
        return codes.clamp_(max=max_code)
    _, z_exp = torch.frexp(z)
    # frexp(0) has exponent 0: zero must sit in the bottom (uniform) binade like any tiny value.
    binade = torch.where(z > 0, z_exp.to(torch.int64) - 1, b_min)
    binade = torch.clamp(binade, min=b_min)
    ulp_exp = binade - man
    base_code = (binade - b_min) * (1 << man)
    if rounding == "nearest":
        scaled = torch.ldexp(z.double(), -ulp_exp.double())
        lower = torch.floor(scaled)
        frac = scaled - lower  # exact: scaled has at most 24 significant bits
        lower_code = base_code + lower.to(torch.int64)
        # Ties go to the even code; for M >= 1 that is the even mantissa (IEEE RNE).
        round_up = (frac > 0.5) | ((frac == 0.5) & (lower_code % 2 == 1))
        codes = lower_code + round_up.to(torch.int64)
    else:
        truncated = torch.floor(torch.ldexp(z.double(), (sr_bits - ulp_exp).double())).to(torch.int64)
        codes = base_code + ((truncated + random_bits.to(torch.int64)) >> sr_bits)
    return codes.clamp(max=max_code).to(torch.int32)


@functools.lru_cache(maxsize=256)
def _fast_limits(fmt: MLSFormat, extra: int) -> tuple[float, float]:
    """``(elem_min_subnormal, limit)``: below ``limit`` a magnitude rounds to code 0 in either
    rounding mode (``extra`` = R bits for stochastic, 1 for nearest)."""
    return fmt.elem_min_subnormal, 2.0 ** (fmt.min_normal_exponent - fmt.man_bits - extra)


# -- the whole pass ----------------------------------------------------------------------------
def _prepare(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int, generator,
             inv: float | None = None):
    """Checks, tensor scale and group exponents (steps 1, 2, 4), shared by every path.

    Returns ``(x, ax, g, scale, inv_t, inv_g, direct, random_bits)``; ``direct`` says that
    ``z = fp32(|x| * inv_g)`` gives the same codes as the step-by-step formulation (see
    ``_quantize_fields``). A given ``inv`` (the host-supplied inverse scale of ``convert``)
    replaces step 2; ``scale`` is then None.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    x = _as_fp32(x)
    if x.numel() == 0:
        raise ValueError(f"cannot quantize an empty tensor of shape {tuple(x.shape)}")
    shape = tuple(x.shape)
    group_shape = grouping.group_shape(shape)  # validates the grouping against the shape
    if rounding == "stochastic":
        if random_bits is None:
            random_bits = random_bits_like(shape, sr_bits, generator, device=x.device)
        else:
            check_random_bits(random_bits, x.shape, sr_bits)
    elif random_bits is not None:
        raise ValueError("random_bits were given but rounding is 'nearest'")
    ax = x.abs()
    group_max_x = grouping.group_amax(ax)
    amax = group_max_x.max()  # NaN and Inf propagate through max
    if not torch.isfinite(amax):
        check_finite(x)
    if inv is None:
        scale, inv = tensor_scale(daz(amax), fmt)
    else:
        scale = None
    inv_t = torch.tensor(inv, dtype=torch.float32, device=x.device)
    group_max_y = ftz(daz(group_max_x) * inv_t)
    if scale is None and not bool(torch.isfinite(group_max_y).all()):
        raise ValueError(f"x * inv overflows FP32: amax {float(amax):.6g} times inv {inv:.6g} exceeds "
                         f"{float(torch.finfo(torch.float32).max):.6g}")
    g = group_exponent(group_max_y, fmt)
    assert tuple(g.shape) == group_shape
    inv_g = inv_t * pow2(g)
    _, limit = _fast_limits(fmt, sr_bits if rounding == "stochastic" else 1)
    largest_flushed = float(torch.tensor(FP32_MIN_NORMAL, dtype=torch.float32) * inv_g.max())
    direct = bool(torch.isfinite(inv_g).all()) and largest_flushed < limit
    return x, ax, g, scale, inv_t, inv_g, direct, random_bits


def _quantize_fields(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                     generator, inv: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Steps 1-5 for ``quantize`` and ``fake_quantize``: ``(negative, codes int32, group_exp, scale)``.

    Same bits as the step-by-step formulation (``daz``, ``tensor_scale``, ``scale_input``,
    ``group_exponent`` on ``group_amax(|y|)``, ``ldexp(|y|, g)``, ``round_to_codes``), computed
    with fewer passes:

    - group maxima of ``|y|`` come from group maxima of ``|x|``: DAZ, the RNE multiply by ``inv``
      and FTZ are all monotone, so they commute with max;
    - when safe, ``z = fp32(|x| * fp32(inv * 2**g))`` in one multiply. Scaling by 2**g commutes
      with RNE for normal results; elements that DAZ/FTZ would zero stay below the smallest
      magnitude that can round to a nonzero code (checked per call, else the plain path runs).
    """
    x, ax, g, scale, inv_t, inv_g, direct, random_bits = _prepare(x, fmt, grouping, rounding, random_bits,
                                                                  sr_bits, generator, inv)
    if direct:
        z = _times_groups(ax, inv_g, grouping)
    else:
        z = _times_groups(ftz(daz(ax) * inv_t), pow2(g), grouping)
    codes = _round_codes(z, fmt, rounding, random_bits, sr_bits)
    return x < 0, codes, g, scale



def quantize(
    x: torch.Tensor,
    fmt: MLSFormat | str,
    grouping: Grouping | str = Grouping.channel(),
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    *,
    sr_bits: int = DEFAULT_SR_BITS,
    generator: torch.Generator | None = None,
) -> MLSTensor:
    """Quantize a tensor to MLS exactly as docs/numerics.md, "Quantization", says (inputs are converted to FP32 first).

    For ``rounding="stochastic"`` give ``random_bits`` (ints in [0, 2**sr_bits), one per element)
    or let them be drawn from torch's RNG (``generator`` for a seeded stream).
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    negative, codes, g, scale = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    sign = (negative & (codes != 0)).to(torch.uint8)
    return MLSTensor(
        fmt, grouping,
        sign=sign,
        exp=(codes >> fmt.man_bits).to(torch.uint8),
        man=(codes & ((1 << fmt.man_bits) - 1)).to(torch.int16),
        group_exp=g,
        scale=scale,
    )


def convert(
    x: torch.Tensor,
    inv: float,
    fmt: MLSFormat | str,
    grouping: Grouping | str = Grouping.channel(),
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    *,
    sr_bits: int = DEFAULT_SR_BITS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1 and 3-5 with a given inverse scale: ``(signed codes, group exponents)``.

    This is the quantization unit's convert pass, whose ``inv`` comes from the host; with
    ``inv = tensor_scale(amax, fmt)[1]`` the result is ``quantize(...)``'s ``codes()`` (int64,
    ``s << (E+M) | e << M | m``) and ``group_exp`` (uint8). ``inv`` must be a positive finite FP32
    value; an ``x * inv`` that overflows FP32 raises ``ValueError`` (the unit raises ``invalid``).
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    inv = float(inv)
    if not (math.isfinite(inv) and inv > 0 and float(np.float32(inv)) == inv):
        raise ValueError(f"inv must be a positive finite FP32 value, got {inv!r}")
    negative, codes, g, _ = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, None, inv)
    sign = (negative & (codes != 0)).to(torch.int64)
    return (sign << (fmt.exp_bits + fmt.man_bits)) | codes.to(torch.int64), g
