"""Binary floating-point formats of the baselines: FP32, FP16, BF16 and FP8 (E4M3, E5M2).

One frozen dataclass, :class:`FloatFormat`, describes each format; the bit-exact baseline
references (:mod:`model.baseline_arith`), the baseline gateware (``hw/baseline/``) and the cost
model (``sim.energy``) all read their widths, biases and limits from the five instances here.

Every format has one canonical name (``str(fmt)``): ``fp32``, ``fp16``, ``bf16``, ``e4m3``,
``e5m2``. :func:`float_format` also reads the FP8 names with an ``fp8`` prefix (``fp8e4m3``,
``fp8-e4m3``, ``fp8_e4m3``), the spelling of the cost model's design names such as
``fp8e4m3-fp32acc``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "FloatFormat", "FP32", "FP16", "BF16", "E4M3", "E5M2",
    "FLOAT_FORMATS", "FP8_FORMATS", "float_format", "fp8_format",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: sign, ``exp_bits`` exponent bits, ``man_bits`` fraction bits.

    ``ieee_specials``: the all-ones exponent field holds Inf (m = 0) and NaN (m ≠ 0), as in IEEE.
    Otherwise (OCP E4M3 "FN") there is no Inf and only the all-ones code (per sign) is NaN.
    """

    name: str
    exp_bits: int
    man_bits: int
    ieee_specials: bool = True

    @property
    def bits(self) -> int:
        """Width of one code: sign + exponent + fraction."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def max_exp_field(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def min_normal_exponent(self) -> int:
        return 1 - self.bias

    @property
    def sig_bits(self) -> int:
        """Significand width including the hidden bit."""
        return self.man_bits + 1

    @property
    def max_finite(self) -> float:
        """Largest finite magnitude (448 for E4M3, 57344 for E5M2)."""
        if self.ieee_specials:
            return (2 - 2.0 ** -self.man_bits) * 2.0 ** (self.max_exp_field - 1 - self.bias)
        return (2 - 2.0 ** (1 - self.man_bits)) * 2.0 ** (self.max_exp_field - self.bias)

    def __str__(self) -> str:
        return self.name


FP32 = FloatFormat("fp32", 8, 23)
FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
E4M3 = FloatFormat("e4m3", 4, 3, ieee_specials=False)
E5M2 = FloatFormat("e5m2", 5, 2)

#: Every format by its canonical name.
FLOAT_FORMATS = {str(f): f for f in (FP32, FP16, BF16, E4M3, E5M2)}
#: The FP8 formats by canonical name.
FP8_FORMATS = {str(f): f for f in (E4M3, E5M2)}

# "fp8e4m3", "fp8-e4m3", "fp8_e4m3" name the FP8 format "e4m3".
_FP8_PREFIX = re.compile(r"^fp8[-_]?(?=e\d+m\d+$)")


def _canonical(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"float format name must be a str, not {name!r}")
    return _FP8_PREFIX.sub("", name.strip().lower())


def float_format(name: str | FloatFormat) -> FloatFormat:
    """Look up a float format by name (case-insensitive): ``fp32``, ``fp16``, ``bf16``,
    ``e4m3``, ``e5m2``, or an FP8 name with an ``fp8`` prefix (``fp8e4m3``, ``fp8-e5m2``)."""
    if isinstance(name, FloatFormat):
        return name
    try:
        return FLOAT_FORMATS[_canonical(name)]
    except KeyError:
        raise ValueError(f"unknown float format {name!r}; expected one of {sorted(FLOAT_FORMATS)}") from None


def fp8_format(name: str | FloatFormat) -> FloatFormat:
    """Look up an FP8 format (``"e4m3"`` or ``"e5m2"``, also ``"fp8e4m3"`` ...); anything else raises."""
    if isinstance(name, FloatFormat):
        if name not in FP8_FORMATS.values():
            raise ValueError(f"{name} is not an FP8 format; expected one of {sorted(FP8_FORMATS)}")
        return name
    try:
        return FP8_FORMATS[_canonical(name)]
    except KeyError:
        raise ValueError(f"unknown FP8 format {name!r}; expected one of {sorted(FP8_FORMATS)}") from None
