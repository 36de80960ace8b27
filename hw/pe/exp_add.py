"""Exponent/shift adder: element exponents plus the group offsets of docs/numerics.md §3."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .layout import field_width

__all__ = ["ExponentAdder"]


class ExponentAdder(wiring.Component):
    """Combinational left-shift amount of a product of two elements.

    ``shift = (max(e_a, 1) - 1 + 2**G - 1 - g_a) + (max(e_b, 1) - 1 + 2**G - 1 - g_b)``,
    at most ``fmt.product_shift_max()`` (``2 * fmt.max_shift``). ``2**G - 1 - g`` is the bitwise NOT of the G-bit ``g``.

    Members
    -------
    a_exp, b_exp : In(E)
    a_g, b_g : In(G)
    shift : Out(max(fmt.product_shift_bits(), 1))
    """

    def __init__(self, fmt: MLSFormat):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        if not isinstance(fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {fmt!r}")
        self._fmt = fmt
        super().__init__({
            "a_exp": In(field_width(fmt.exp_bits)),
            "b_exp": In(field_width(fmt.exp_bits)),
            "a_g": In(field_width(fmt.group_bits)),
            "b_g": In(field_width(fmt.group_bits)),
            "shift": Out(self.shift_bits(fmt)),
        })
        del self._MustUse__silence

    @staticmethod
    def shift_bits(fmt: MLSFormat) -> int:
        """Width of ``shift``: ``fmt.product_shift_bits()``, at least one bit (a port even when no
        product ever shifts)."""
        return max(fmt.product_shift_bits(), 1)

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    def _offset(self, exp, g):
        fmt = self._fmt
        parts = []
        if fmt.exp_bits:
            parts.append(Mux(exp == 0, 0, exp[:fmt.exp_bits] - 1))
        if fmt.group_bits:
            parts.append(~g[:fmt.group_bits])  # 2**G - 1 - g
        return parts

    def elaborate(self, platform):
        m = Module()
        parts = self._offset(self.a_exp, self.a_g) + self._offset(self.b_exp, self.b_g)
        total = 0
        for part in parts:
            total = total + part
        m.d.comb += self.shift.eq(total)
        return m
