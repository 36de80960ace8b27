"""Aligner: shift the significand product into the accumulator's fixed point and apply the sign."""

from __future__ import annotations

from amaranth import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .exp_add import ExponentAdder

__all__ = ["Aligner"]


class Aligner(wiring.Component):
    """Combinational ``(-1)**sign * (product << shift)``, the exact §3 product of two elements.

    Members
    -------
    product : In(2 * sig_bits)
    sign : In(1)
    shift : In(ExponentAdder.shift_bits(fmt))
    value : Out(signed(product_bits))
        ``product_bits = fmt.acc_bits_exact(1)``: exactly the width of one product.
    """

    def __init__(self, fmt: MLSFormat):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        if not isinstance(fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {fmt!r}")
        self._fmt = fmt
        super().__init__({
            "product": In(2 * fmt.sig_bits),
            "sign": In(1),
            "shift": In(ExponentAdder.shift_bits(fmt)),
            "value": Out(signed(self.product_bits(fmt))),
        })
        del self._MustUse__silence

    @staticmethod
    def product_bits(fmt: MLSFormat) -> int:
        return fmt.acc_bits_exact(1)

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        magnitude = self.product << self.shift
        m.d.comb += self.value.eq(Mux(self.sign, -magnitude, magnitude))
        return m
