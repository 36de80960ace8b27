"""Exact FP8 x FP8 -> FP32 multiplier (E4M3 / E5M2, any mix); FP8 subnormals are kept."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import CANONICAL_NAN
from model.floats import FP32, FloatFormat, fp8_format

from .layout import float_layout, leading_zeros

__all__ = ["FP8Multiplier"]


class FP8Multiplier(wiring.Component):
    """Combinational exact product ``o = fp8_mul(a, b, fmt_a, fmt_b)`` as an FP32 pattern.

    The (Ma+1) x (Mb+1)-bit significand product always fits FP32's 24 bits and its exponent
    stays in FP32's normal range, so there is no rounding and no flush.

    Parameters
    ----------
    fmt_a, fmt_b : FloatFormat or str
        ``"e4m3"`` or ``"e5m2"`` (:mod:`model.floats`).

    Members
    -------
    a : In(float_layout(fmt_a))
    b : In(float_layout(fmt_b))
    o : Out(float_layout(FP32))
    """

    def __init__(self, fmt_a: FloatFormat | str = "e4m3", fmt_b: FloatFormat | str = "e4m3"):
        self.fmt_a = fp8_format(fmt_a)
        self.fmt_b = fp8_format(fmt_b)
        super().__init__({"a": In(float_layout(self.fmt_a)), "b": In(float_layout(self.fmt_b)),
                          "o": Out(float_layout(FP32))})

    @property
    def latency(self) -> int:
        return 0

    @staticmethod
    def _specials(x, fmt: FloatFormat):
        top = x.exp == fmt.max_exp_field
        if fmt.ieee_specials:
            return top & (x.man != 0), top & (x.man == 0)
        return top & (x.man == (1 << fmt.man_bits) - 1), C(0, 1)   # OCP FN: no Inf

    def elaborate(self, platform):
        m = Module()
        fa, fb = self.fmt_a, self.fmt_b
        a, b, o = self.a, self.b, self.o
        a_nan, a_inf = self._specials(a, fa)
        b_nan, b_inf = self._specials(b, fb)
        sign = a.sign ^ b.sign

        # Significands with the hidden bit from e != 0; subnormals use exponent 1.
        pw = fa.sig_bits + fb.sig_bits
        prod = Signal(pw)
        m.d.comb += prod.eq(Cat(a.man, a.exp != 0) * Cat(b.man, b.exp != 0))
        a_zero = (a.exp == 0) & (a.man == 0)
        b_zero = (b.exp == 0) & (b.man == 0)
        a_e = Signal(fa.exp_bits)
        b_e = Signal(fb.exp_bits)
        m.d.comb += [a_e.eq(a.exp | (a.exp == 0)), b_e.eq(b.exp | (b.exp == 0))]

        lz = leading_zeros(m, prod, pw)
        norm = Signal(pw)
        m.d.comb += norm.eq(prod << lz)
        # FP32 biased exponent of prod * 2^(a_e - bias_a - Ma + b_e - bias_b - Mb).
        offset = FP32.bias + (pw - 1) - fa.bias - fa.man_bits - fb.bias - fb.man_bits
        exp = Signal(FP32.exp_bits)
        m.d.comb += exp.eq(a_e + b_e + offset - lz)
        man = Cat(C(0, FP32.man_bits - (pw - 1)), norm[:pw - 1])

        with m.If(a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero)):
            m.d.comb += o.eq(CANONICAL_NAN)
        with m.Elif(a_inf | b_inf):
            m.d.comb += [o.sign.eq(sign), o.exp.eq(FP32.max_exp_field), o.man.eq(0)]
        with m.Elif(prod == 0):
            m.d.comb += [o.sign.eq(sign), o.exp.eq(0), o.man.eq(0)]
        with m.Else():
            m.d.comb += [o.sign.eq(sign), o.exp.eq(exp), o.man.eq(man)]
        return m
