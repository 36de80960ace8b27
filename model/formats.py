"""The MLS element format: one frozen dataclass from which every derived quantity comes.

A real tensor is held as ``S_t * 2**-g * elem(s, e, m)`` (docs/numerics.md §1).  ``MLSFormat`` describes
the element (E exponent bits, M mantissa bits) and the group exponent (G bits); `hw/` and `sim/`
read every width, bias and limit from here instead of restating them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = ["MLSFormat", "MAX_EXP_BITS", "MAX_MAN_BITS", "MAX_GROUP_BITS", "DEFAULT_MAX_K"]

# Limits keep every element, and every element times 2**-g, exactly representable as an FP32
# normal number (bias + M - 1 + 2**G - 1 <= 126), and every element code at most 16 bits wide.
MAX_EXP_BITS = 5
MAX_MAN_BITS = 10
MAX_GROUP_BITS = 6

#: Reduction length an exact hardware accumulator is sized for unless told otherwise:
#: the arrays, PEs and build/synthesis flows use ``acc_bits_exact(DEFAULT_MAX_K)`` by default.
DEFAULT_MAX_K = 1 << 20

_NAME_RE = re.compile(r"^e(\d+)m(\d+)g(\d+)$")


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


@dataclass(frozen=True, order=True)
class MLSFormat:
    """Element format ``e<E>m<M>g<G>``.

    - ``exp_bits`` (E): element exponent field width; E = 0 means a pure fixed-point element
      (integer mantissa, no hidden bit, bias 0).
    - ``man_bits`` (M): element mantissa field width.
    - ``group_bits`` (G): width of the unsigned per-group exponent g (factor ``2**-g``).
    """

    exp_bits: int
    man_bits: int
    group_bits: int = 0

    def __post_init__(self) -> None:
        _check_int("exp_bits", self.exp_bits, 0, MAX_EXP_BITS)
        _check_int("man_bits", self.man_bits, 0, MAX_MAN_BITS)
        _check_int("group_bits", self.group_bits, 0, MAX_GROUP_BITS)
        if self.exp_bits + self.man_bits == 0:
            raise ValueError("exp_bits + man_bits must be at least 1, got 0 (e0m0 has no nonzero value)")

    # -- naming ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, name: str | MLSFormat) -> MLSFormat:
        """Parse ``"e2m1g3"`` (case-insensitive). ``str(fmt)`` gives the name back."""
        if isinstance(name, MLSFormat):
            return name
        if not isinstance(name, str):
            raise TypeError(f"format name must be a str, not {name!r}")
        match = _NAME_RE.match(name.strip().lower())
        if match is None:
            raise ValueError(f"format name {name!r} does not match 'e<E>m<M>g<G>', e.g. 'e2m1g3'")
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"e{self.exp_bits}m{self.man_bits}g{self.group_bits}"

    # -- element fields -------------------------------------------------------------------
    @property
    def elem_bits(self) -> int:
        """Width of one element code: sign + exponent + mantissa."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def code_count(self) -> int:
        """Number of distinct element codes (both zeros counted)."""
        return 1 << self.elem_bits

    @property
    def bias(self) -> int:
        """Exponent bias, ``2**(E-1) - 1``; 0 for the fixed-point E = 0 format."""
        return (1 << (self.exp_bits - 1)) - 1 if self.exp_bits else 0

    @property
    def max_exp_field(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def max_group_exp(self) -> int:
        """Largest group exponent g, ``2**G - 1``."""
        return (1 << self.group_bits) - 1

    @property
    def min_normal_exponent(self) -> int:
        """Exponent of the smallest normal binade, ``1 - bias``; below it the grid is uniform."""
        return 1 - self.bias

    @property
    def elem_max(self) -> float:
        """Largest element magnitude (exact in FP32)."""
        return float(self.decode_fraction(0, self.max_exp_field, (1 << self.man_bits) - 1))

    @property
    def elem_min_subnormal(self) -> float:
        """Smallest nonzero element magnitude, one ulp of the uniform bottom of the grid."""
        return 2.0 ** (self.min_normal_exponent - self.man_bits)

    # -- the exact integer view of docs/numerics.md §3 -----------------------------------------------
    @property
    def lsb_exponent(self) -> int:
        """L of docs/numerics.md §3: an element times ``2**-g`` equals ``int * 2**-L``.

        A product of two elements of this format is in units of ``2**-(2 L)``.
        """
        return self.bias + self.man_bits - 1 + self.max_group_exp

    @property
    def sig_bits(self) -> int:
        """Significand width (M + 1 with the hidden bit; M for E = 0)."""
        return self.man_bits + 1 if self.exp_bits else self.man_bits

    @property
    def max_sig(self) -> int:
        """Largest significand, ``2**M - 1`` plus the hidden ``2**M`` when E > 0."""
        return (1 << self.man_bits) - 1 + ((1 << self.man_bits) if self.exp_bits else 0)

    @property
    def elem_shift_max(self) -> int:
        """Largest element-exponent shift ``max(e, 1) - 1``: ``2**E - 2`` (0 for E <= 1)."""
        return max(self.max_exp_field, 1) - 1

    @property
    def max_shift(self) -> int:
        """Largest left shift of a significand in the §3 integer: ``max(e,1) - 1 + 2**G - 1``,
        ``elem_shift_max + max_group_exp``."""
        return self.elem_shift_max + self.max_group_exp

    @property
    def max_int(self) -> int:
        """Largest magnitude of the §3 integer of one element (at g = 0)."""
        return self.max_sig << self.max_shift

    @property
    def int_bits(self) -> int:
        """Two's-complement width of one element's §3 integer."""
        return 1 + self.max_int.bit_length()

    # -- widths of one product of this format (A) with ``other`` (W; default: this format) ----
    # The scalar PE multiplies significands (``sig_product_bits``), adds both operands' element
    # and group offsets into one shift (``product_shift_max``, ``product_shift_bits``) and shifts
    # the product by it (``shifted_product_bits`` unsigned, ``product_bits`` signed). The
    # dot-product PE shifts by the element offsets per lane (``elem_product_shift_max``,
    # ``elem_product_bits``), sums the lanes of a beat (``beat_sum_bits``) and shifts that sum once
    # by the group offsets (``group_shift_max``).
    def sig_product_bits(self, other: MLSFormat | None = None) -> int:
        """Width of the unsigned significand product ``sig_a * sig_w``: ``sig_bits_a + sig_bits_w``."""
        other = self._other(other)
        return self.sig_bits + other.sig_bits

    def elem_product_shift_max(self, other: MLSFormat | None = None) -> int:
        """Largest element-exponent shift of a product: ``elem_shift_max_a + elem_shift_max_w``."""
        other = self._other(other)
        return self.elem_shift_max + other.elem_shift_max

    def group_shift_max(self, other: MLSFormat | None = None) -> int:
        """Largest group shift of a product, ``(2**G_a - 1) + (2**G_w - 1)`` (both g = 0)."""
        other = self._other(other)
        return self.max_group_exp + other.max_group_exp

    def product_shift_max(self, other: MLSFormat | None = None) -> int:
        """Largest total left shift of a product, element plus group: ``max_shift_a + max_shift_w``."""
        other = self._other(other)
        return self.max_shift + other.max_shift

    def product_shift_bits(self, other: MLSFormat | None = None) -> int:
        """Width of the shift amount ``0 .. product_shift_max``; 0 when no product ever shifts."""
        return self.product_shift_max(other).bit_length()

    def shifted_product_bits(self, other: MLSFormat | None = None) -> int:
        """Width of the unsigned shifter output: ``sig_product_bits + product_shift_max``."""
        return self.sig_product_bits(other) + self.product_shift_max(other)

    def product_bits(self, other: MLSFormat | None = None) -> int:
        """Two's-complement width of one exact signed product ``int(a) * int(w)``
        (``acc_bits_exact(1, other)``)."""
        return self.acc_bits_exact(1, other)

    def elem_product_bits(self, other: MLSFormat | None = None) -> int:
        """Two's-complement width of one dot-product lane ``±sig_a * sig_w * 2**(element shifts)``
        (the §3 product without the group shift)."""
        return self.beat_sum_bits(1, other)

    def beat_sum_bits(self, lanes: int, other: MLSFormat | None = None) -> int:
        """Two's-complement width of the exact sum of ``lanes`` lane products of one beat
        (the dot-product PE's adder tree): holds ``±lanes * max|lane product|``."""
        if isinstance(lanes, bool) or not isinstance(lanes, int):
            raise TypeError(f"lanes must be an int, not {lanes!r}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        other = self._other(other)
        lane_max = (self.max_sig * other.max_sig) << self.elem_product_shift_max(other)
        return 1 + (lanes * lane_max).bit_length()

    def _other(self, other: MLSFormat | None) -> MLSFormat:
        if other is None:
            return self
        if not isinstance(other, MLSFormat):
            raise TypeError(f"other must be an MLSFormat, not {other!r}")
        return other

    def acc_bits_exact(self, k: int, other: MLSFormat | None = None) -> int:
        """Smallest two's-complement accumulator width holding ``±k * max|int_a| * max|int_b|``.

        ``other`` is the second operand's format (default: this format).
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"reduction length k must be an int, not {k!r}")
        if k < 1:
            raise ValueError(f"reduction length k must be at least 1, got {k}")
        other = self._other(other)
        return 1 + (k * self.max_int * other.max_int).bit_length()

    def max_k_for_acc_bits(self, acc_bits: int, other: MLSFormat | None = None) -> int:
        """Largest reduction length an ``acc_bits``-wide accumulator holds exactly (0 if none)."""
        other = self._other(other)
        return ((1 << (acc_bits - 1)) - 1) // (self.max_int * other.max_int)

    # -- scalar reference decode ------------------------------------------------------------
    def decode_fraction(self, sign: int, exp: int, man: int) -> Fraction:
        """Readable scalar reference of docs/numerics.md §1: the exact value of one element code."""
        _check_int("sign", sign, 0, 1)
        _check_int("exp", exp, 0, self.max_exp_field)
        _check_int("man", man, 0, (1 << self.man_bits) - 1)
        if exp == 0:
            magnitude = Fraction(man, 1 << self.man_bits) * Fraction(2) ** (1 - self.bias)
        else:
            magnitude = (1 + Fraction(man, 1 << self.man_bits)) * Fraction(2) ** (exp - self.bias)
        return -magnitude if sign else magnitude

    def int_value(self, sign: int, exp: int, man: int, group_exp: int) -> int:
        """Scalar reference of the §3 integer of one element with group exponent g."""
        _check_int("group_exp", group_exp, 0, self.max_group_exp)
        self.decode_fraction(sign, exp, man)  # validates the fields
        sig = ((1 << self.man_bits) if exp and self.exp_bits else 0) + man
        value = sig << (max(exp, 1) - 1 + self.max_group_exp - group_exp)
        return -value if sign else value

    def grid(self) -> torch.Tensor:
        """All non-negative element values, ascending, as a float64 tensor (positive codes only)."""
        values = [
            float(self.decode_fraction(0, exp, man))
            for exp in range(self.max_exp_field + 1)
            for man in range(1 << self.man_bits)
        ]
        return torch.tensor(values, dtype=torch.float64)
