"""The specification side of the proofs, written from docs/numerics.md §3 and the docs, not from the RTL.

Every helper builds an Amaranth expression over the *inputs* of a proof wrapper; none of them
instantiates or imitates a datapath component. The §3 integer of an element is decoded directly
from its fields, and products are plain wide multiplications of those integers.
"""

from __future__ import annotations

from amaranth import Mux, signed
from amaranth.hdl import Const

from model.formats import MLSFormat

__all__ = ["decoded_int", "decoded_elem_int", "group_offset", "sat_add_spec"]


def _sig_and_elem_shift(fmt: MLSFormat, elem):
    M, E = fmt.man_bits, fmt.exp_bits
    man = elem.man.as_unsigned() if M else Const(0, 1)
    if not E:                      # fixed point: no hidden bit, no exponent
        return man, Const(0, 1)
    exp = elem.exp.as_unsigned()
    return Mux(exp != 0, man | (1 << M), man), Mux(exp != 0, (exp - 1)[:E], 0)


def group_offset(fmt: MLSFormat, g):
    """``2^G - 1 - g``: how far a group exponent ``g`` shifts its elements left (0 for G = 0)."""
    G = fmt.group_bits
    return (((1 << G) - 1) - g.as_unsigned())[:G] if G else Const(0, 1)


def _signed_magnitude(sign, magnitude, width):
    magnitude = magnitude[:width - 1]
    return Mux(sign, -magnitude, magnitude).as_signed()[:width].as_signed()


def decoded_elem_int(fmt: MLSFormat, elem):
    """``(-1)^s * sig * 2^(max(e,1) - 1)``: the §3 integer of an element at ``g = 2^G - 1``
    (element exponent only, the lane operand of §3.1). ``elem`` is an ``element_layout`` view."""
    sig, elem_shift = _sig_and_elem_shift(fmt, elem)
    width = 1 + (fmt.max_sig << fmt.elem_shift_max).bit_length()
    return _signed_magnitude(elem.sign, sig << elem_shift, width)


def decoded_int(fmt: MLSFormat, operand):
    """``int(s, e, m, g) = (-1)^s * sig * 2^(max(e,1) - 1 + (2^G - 1 - g))`` as a signed value.

    ``operand`` is a view of ``hw.pe.layout.operand_layout(fmt)`` (fields ``elem.sign``,
    ``elem.exp``, ``elem.man``, ``g``); fields of zero width in the format are ignored.
    """
    sig, elem_shift = _sig_and_elem_shift(fmt, operand.elem)
    return _signed_magnitude(operand.elem.sign, sig << (elem_shift + group_offset(fmt, operand.g)), fmt.int_bits)


def sat_add_spec(base, value, acc_bits: int):
    """(sum, saturated, overflowed) of ``base + value`` clamped to ``acc_bits`` signed bits.

    Written from the representability of the exact sum (all bits from ``acc_bits - 1`` up equal
    the sign), not from comparisons against the rails as the accumulator does.
    """
    total = (base.as_signed() + value.as_signed())
    width = len(total)
    top = total[acc_bits - 1:width]            # sign bit of the narrow word and everything above it
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    negative = total[width - 1]
    rail = Mux(negative, Const(-(1 << (acc_bits - 1)), signed(acc_bits)),
               Const((1 << (acc_bits - 1)) - 1, signed(acc_bits)))
    narrow = Mux(fits, total[:acc_bits], rail).as_signed()
    return total, narrow, ~fits
