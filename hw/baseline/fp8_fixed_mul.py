"""Exact FP8 x FP8 lane product as a signed fixed-point integer (the FP8 dot PE's multiplier)."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import fp8_dot_max_product, fp8_dot_product_lsb
from model.floats import FloatFormat, fp8_format

from .layout import float_layout

__all__ = ["FP8FixedMultiplier"]


class FP8FixedMultiplier(wiring.Component):
    """Combinational ``product = a * w / 2**product_lsb``, exact, with the special cases as flags.

    Every finite FP8 value is ``±sig · 2^(max(e,1) - 1)`` in units of
    ``2^model.baseline_arith.fp8_fixed_lsb(fmt)`` (subnormals kept), so a lane product is the
    integer ``±sig_a·sig_w << ((max(e_a,1) - 1) + (max(e_w,1) - 1))`` in units of
    ``2^product_lsb``. Putting every lane on that one LSB lets an exact integer adder tree sum
    the beat; nothing is rounded before the accumulator's single FP32 rounding.

    A lane whose product is not finite drives ``product = 0`` and raises one flag: ``nan``
    (a NaN operand, or Inf x 0 for E5M2), or ``pos_inf`` / ``neg_inf``. ``neg_zero`` marks a
    finite zero product with a negative sign (the signed-zero rule of
    ``model.baseline_arith.fp8_dot_mac`` needs it).

    Parameters
    ----------
    fmt_a, fmt_w : FloatFormat or str
        ``"e4m3"`` or ``"e5m2"`` (any mix).

    Members
    -------
    a : In(float_layout(fmt_a)); w : In(float_layout(fmt_w))
    product : Out(signed(product_bits))
    nan, pos_inf, neg_inf, neg_zero : Out(1)
    """

    def __init__(self, fmt_a: FloatFormat | str = "e4m3", fmt_w: FloatFormat | str = "e4m3"):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self.fmt_a, self.fmt_w = fp8_format(fmt_a), fp8_format(fmt_w)
        super().__init__({"a": In(float_layout(self.fmt_a)), "w": In(float_layout(self.fmt_w)),
                          "product": Out(signed(self.product_bits)),
                          "nan": Out(1), "pos_inf": Out(1), "neg_inf": Out(1), "neg_zero": Out(1)})
        del self._MustUse__silence

    @property
    def product_lsb(self) -> int:
        """Exponent of the product's LSB (``model.baseline_arith.fp8_dot_product_lsb``)."""
        return fp8_dot_product_lsb(self.fmt_a, self.fmt_w)

    @property
    def max_magnitude(self) -> int:
        """Largest finite product magnitude in LSB units (``fp8_dot_max_product``)."""
        return fp8_dot_max_product(self.fmt_a, self.fmt_w)

    @property
    def product_bits(self) -> int:
        return 1 + self.max_magnitude.bit_length()

    @property
    def latency(self) -> int:
        return 0

    @staticmethod
    def _decode(m, x, fmt: FloatFormat, name: str):
        """(nan, inf, zero, sig, shift) of one code."""
        top = x.exp == fmt.max_exp_field
        if fmt.ieee_specials:
            nan, inf = top & (x.man != 0), top & (x.man == 0)
        else:                                           # OCP E4M3 "FN": S.1111.111 is NaN, no Inf
            nan, inf = top & (x.man == (1 << fmt.man_bits) - 1), C(0, 1)
        zero = (x.exp == 0) & (x.man == 0)
        sig = Signal(fmt.sig_bits, name=f"{name}_sig")
        shift = Signal(fmt.exp_bits, name=f"{name}_shift")     # max(e, 1) - 1
        m.d.comb += [sig.eq(Cat(x.man, x.exp != 0)), shift.eq(Mux(x.exp == 0, 0, x.exp - 1))]
        return nan, inf, zero, sig, shift

    def elaborate(self, platform):
        m = Module()
        a_nan, a_inf, a_zero, a_sig, a_shift = self._decode(m, self.a, self.fmt_a, "a")
        w_nan, w_inf, w_zero, w_sig, w_shift = self._decode(m, self.w, self.fmt_w, "w")
        sign = self.a.sign ^ self.w.sign
        nan = a_nan | w_nan | (a_inf & w_zero) | (w_inf & a_zero)
        inf = (a_inf | w_inf) & ~nan

        magnitude = Signal(self.product_bits - 1)
        # Every finite product fits `magnitude`; a special code's shift may not, so it is masked.
        m.d.comb += magnitude.eq(Mux(nan | inf, 0, (a_sig * w_sig) << (a_shift + w_shift)))
        m.d.comb += [
            self.product.eq(Mux(sign, -magnitude, magnitude)),
            self.nan.eq(nan), self.pos_inf.eq(inf & ~sign), self.neg_inf.eq(inf & sign),
            self.neg_zero.eq((a_zero | w_zero) & ~nan & sign),
        ]
        return m
