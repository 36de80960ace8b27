"""Readable scalar reference of docs/numerics.md §2 and §3, in exact rationals (``fractions.Fraction``).

Slow and obvious on purpose: the vectorized twins in ``quantize.py`` and ``arith.py`` are tested
against it. IEEE FP32 operations use numpy float32 scalars, which round to nearest even.
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from .formats import MLSFormat
from .grouping import Grouping

__all__ = [
    "grid_codes",
    "group_exponent_reference",
    "quantize_reference",
    "round_reference",
]

FP32_MIN_NORMAL = Fraction(2) ** -126


@lru_cache(maxsize=64)
def grid_codes(fmt: MLSFormat) -> list[tuple[Fraction, int]]:
    """Every non-negative element value with its unsigned code ``e << M | m``, ascending."""
    return [
        (fmt.decode_fraction(0, exp, man), (exp << fmt.man_bits) | man)
        for exp in range(fmt.max_exp_field + 1)
        for man in range(1 << fmt.man_bits)
    ]


def _binade_ulp(z: Fraction, fmt: MLSFormat) -> Fraction:
    """Grid spacing at magnitude z: 2**(b - M), b = floor(log2 z) clamped at the smallest normal binade."""
    binade = fmt.min_normal_exponent
    while z >= Fraction(2) ** (binade + 1):
        binade += 1
    return Fraction(2) ** (binade - fmt.man_bits)


def round_reference(z: Fraction, fmt: MLSFormat, rounding: str = "nearest",
                    random_bits: int = 0, sr_bits: int = 8) -> int:
    """Round a non-negative magnitude onto the grid; return the unsigned code.

    nearest: the closest grid value, ties to the even code, saturating at elem_max.
    stochastic: with ``frac`` the position of z between its two neighbours in ulps, round up
    iff ``floor(frac * 2**R) + r >= 2**R``.
    """
    grid = grid_codes(fmt)
    top_value, top_code = grid[-1]
    if z >= top_value:
        return top_code
    position = bisect.bisect_right([value for value, _ in grid], z)  # grid is ascending
    below, above = grid[position - 1], grid[position]  # below <= z < above
    if rounding == "nearest":
        if z - below[0] < above[0] - z:
            return below[1]
        if z - below[0] > above[0] - z:
            return above[1]
        return below[1] if below[1] % 2 == 0 else above[1]
    if rounding == "stochastic":
        ulp = _binade_ulp(z, fmt)
        assert above[0] - below[0] == ulp  # neighbours are one ulp apart inside a binade
        frac = (z - below[0]) / ulp
        truncated = (frac * 2**sr_bits).__floor__()
        return above[1] if truncated + random_bits >= 2**sr_bits else below[1]
    raise ValueError(f"unknown rounding {rounding!r}")


def group_exponent_reference(group_max: Fraction, fmt: MLSFormat) -> int:
    """The largest g in [0, 2**G - 1] with group_max * 2**g <= elem_max, else 0."""
    elem_max = Fraction(fmt.elem_max)
    for g in range(fmt.max_group_exp, -1, -1):
        if group_max * 2**g <= elem_max:
            return g
    return 0


def _fp32(value) -> np.float32:
    with np.errstate(over="raise"):
        return np.float32(value)


def _flush(value: np.float32) -> np.float32:
    return np.float32(0.0) if abs(Fraction(float(value))) < FP32_MIN_NORMAL else value


def quantize_reference(x: torch.Tensor, fmt: MLSFormat, grouping: Grouping, rounding: str = "nearest",
                       random_bits: torch.Tensor | None = None, sr_bits: int = 8
                       ) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Element by element docs/numerics.md §2: returns ``(S_t, group_exp, signed codes)``."""
    flat = [_flush(np.float32(v)) for v in x.to(torch.float32).reshape(-1).tolist()]
    amax = max(abs(v) for v in flat)
    if amax == 0:
        scale, inv = np.float32(1.0), np.float32(1.0)
    else:
        scale = _fp32(amax) / _fp32(fmt.elem_max)
        inv = _fp32(fmt.elem_max) / _fp32(amax)
    y = [_flush(v * inv) for v in flat]
    group_shape = grouping.group_shape(tuple(x.shape))
    n_groups = int(np.prod(group_shape))
    group_of = grouping.expand(torch.arange(n_groups).reshape(group_shape), tuple(x.shape)).reshape(-1).tolist()
    group_max = [Fraction(0)] * n_groups
    for value, group in zip(y, group_of):
        group_max[group] = max(group_max[group], abs(Fraction(float(value))))
    g = [group_exponent_reference(m, fmt) for m in group_max]
    bits = [0] * len(y) if random_bits is None else random_bits.reshape(-1).tolist()
    codes = []
    for value, group, r in zip(y, group_of, bits):
        z = abs(Fraction(float(value))) * 2 ** g[group]
        code = round_reference(z, fmt, rounding, r, sr_bits)
        sign = 1 if value < 0 and code != 0 else 0
        codes.append((sign << (fmt.exp_bits + fmt.man_bits)) | code)
    return (float(scale), torch.tensor(g, dtype=torch.int64).reshape(group_shape),
            torch.tensor(codes, dtype=torch.int64).reshape(x.shape))
