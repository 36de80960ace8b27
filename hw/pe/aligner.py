"""Aligner: shift the significand product into the accumulator's fixed point and apply the sign."""

from __future__ import annotations

from amaranth import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .exp_add import ExponentAdder

__all__ = ["Aligner"]


class Aligner(wiring.Component):
    """Combinational ``(-1)**sign * (product << shift)``, the exact product of two elements
    (docs/numerics.md §3).

    Members
    -------
    product : In(fmt.sig_product_bits())
    sign : In(1)
    shift : In(ExponentAdder.shift_bits(fmt))
    value : Out(signed(fmt.product_bits()))
        Exactly the width of one signed product (``MLSFormat.product_bits``).
    """

    def __init__(self, fmt: MLSFormat):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        if not isinstance(fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {fmt!r}")
        self._fmt = fmt
        super().__init__({
            "product": In(fmt.sig_product_bits()),
            "sign": In(1),
            "shift": In(ExponentAdder.shift_bits(fmt)),
            "value": Out(signed(self.product_bits(fmt))),
        })
        del self._MustUse__silence

    @staticmethod
    def product_bits(fmt: MLSFormat) -> int:
        """Width of ``value``: ``fmt.product_bits()``."""
        return fmt.product_bits()

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        magnitude = self.product << self.shift
        m.d.comb += self.value.eq(Mux(self.sign, -magnitude, magnitude))
        return m
