"""Significand multiplier: (M+1) x (M+1) bits with the hidden bit from ``e != 0``, signs XORed."""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .layout import element_layout

__all__ = ["SignificandMultiplier"]


class SignificandMultiplier(wiring.Component):
    """Combinational product of two element significands (DESIGN §3).

    ``sig = (e != 0) * 2**M + m`` (just ``m`` for a fixed-point E = 0 format).

    Members
    -------
    a, b : In(element_layout(fmt))
    product : Out(2 * sig_bits)
        ``sig_a * sig_b``, unsigned.
    sign : Out(1)
        ``a.sign ^ b.sign``.
    """

    def __init__(self, fmt: MLSFormat):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        if not isinstance(fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {fmt!r}")
        self._fmt = fmt
        super().__init__({
            "a": In(element_layout(fmt)),
            "b": In(element_layout(fmt)),
            "product": Out(2 * fmt.sig_bits),
            "sign": Out(1),
        })
        del self._MustUse__silence

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    def _sig(self, elem):
        man = elem.man[:self._fmt.man_bits] if self._fmt.man_bits else None
        if not self._fmt.exp_bits:
            return man
        hidden = elem.exp.any()
        return Cat(man, hidden) if man is not None else hidden

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.product.eq(self._sig(self.a) * self._sig(self.b)),
            self.sign.eq(self.a.sign ^ self.b.sign),
        ]
        return m
