"""Significand multiplier: (M_a+1) x (M_b+1) bits with the hidden bit from ``e != 0``, signs XORed."""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .layout import element_layout

__all__ = ["SignificandMultiplier"]


class SignificandMultiplier(wiring.Component):
    """Combinational product of two element significands (docs/numerics.md §3).

    ``sig = (e != 0) * 2**M + m`` (just ``m`` for a fixed-point E = 0 format). ``fmt_b`` is the
    second operand's format (default: ``fmt``; the dot-product PE multiplies mixed formats).

    Members
    -------
    a : In(element_layout(fmt)); b : In(element_layout(fmt_b))
    product : Out(fmt.sig_product_bits(fmt_b))
        ``sig_a * sig_b``, unsigned.
    sign : Out(1)
        ``a.sign ^ b.sign``.
    """

    def __init__(self, fmt: MLSFormat, fmt_b: MLSFormat | None = None):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        if not isinstance(fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {fmt!r}")
        fmt_b = fmt if fmt_b is None else fmt_b
        if not isinstance(fmt_b, MLSFormat):
            raise TypeError(f"fmt_b must be an MLSFormat, not {fmt_b!r}")
        self._fmt, self._fmt_b = fmt, fmt_b
        super().__init__({
            "a": In(element_layout(fmt)),
            "b": In(element_layout(fmt_b)),
            "product": Out(fmt.sig_product_bits(fmt_b)),
            "sign": Out(1),
        })
        del self._MustUse__silence

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    @property
    def fmt_b(self) -> MLSFormat:
        return self._fmt_b

    @staticmethod
    def _sig(elem, fmt):
        man = elem.man[:fmt.man_bits] if fmt.man_bits else None
        if not fmt.exp_bits:
            return man
        hidden = elem.exp.any()
        return Cat(man, hidden) if man is not None else hidden

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.product.eq(self._sig(self.a, self._fmt) * self._sig(self.b, self._fmt_b)),
            self.sign.eq(self.a.sign ^ self.b.sign),
        ]
        return m
