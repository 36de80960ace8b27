"""Group shifter of the dot-product PE: one shift per beat by the two group offsets."""

from __future__ import annotations

import operator

from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .layout import field_width

__all__ = ["GroupShifter"]


class GroupShifter(wiring.Component):
    """Combinational ``shifted = value << ((2**G_a - 1 - g_a) + (2**G_w - 1 - g_w))``.

    docs/numerics.md §3.1: the beat's exact lane sum ``T`` moves to the accumulator's fixed point once
    per beat, by the group offsets of its chunk (``2**G - 1 - g`` is the bitwise NOT of the
    G-bit ``g``). The output is ``in_bits + fmt_a.group_shift_max(fmt_w)`` bits: exact.

    Members
    -------
    value : In(signed(in_bits))
    g_a : In(G_a); g_w : In(G_w)
        The chunk's group exponents (one unused bit for G = 0).
    shifted : Out(signed(in_bits + fmt_a.group_shift_max(fmt_w)))
    """

    def __init__(self, fmt_a: MLSFormat, fmt_w: MLSFormat, in_bits: int):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        for name, fmt in (("fmt_a", fmt_a), ("fmt_w", fmt_w)):
            if not isinstance(fmt, MLSFormat):
                raise TypeError(f"{name} must be an MLSFormat, not {fmt!r}")
        if isinstance(in_bits, bool) or not isinstance(in_bits, int):
            raise TypeError(f"in_bits must be an int, not {in_bits!r}")
        if operator.index(in_bits) < 1:
            raise ValueError(f"in_bits must be at least 1, got {in_bits}")
        self._fmt_a, self._fmt_w, self._in_bits = fmt_a, fmt_w, operator.index(in_bits)
        super().__init__({
            "value": In(signed(in_bits)),
            "g_a": In(field_width(fmt_a.group_bits)),
            "g_w": In(field_width(fmt_w.group_bits)),
            "shifted": Out(signed(self.out_bits)),
        })
        del self._MustUse__silence

    @property
    def in_bits(self) -> int:
        return self._in_bits

    @property
    def out_bits(self) -> int:
        return self._in_bits + self._fmt_a.group_shift_max(self._fmt_w)

    def elaborate(self, platform):
        m = Module()
        offsets = [~g[:fmt.group_bits] for g, fmt in ((self.g_a, self._fmt_a), (self.g_w, self._fmt_w))
                   if fmt.group_bits]
        if not offsets:  # G_a = G_w = 0: nothing to shift
            m.d.comb += self.shifted.eq(self.value)
        else:
            shift = offsets[0] + offsets[1] if len(offsets) == 2 else offsets[0]
            m.d.comb += self.shifted.eq(self.value << shift)
        return m
