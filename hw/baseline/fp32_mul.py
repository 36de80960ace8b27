"""IEEE binary32 multiplier: RNE, DAZ inputs, FTZ with tininess before rounding, canonical NaN."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import CANONICAL_NAN
from model.floats import FP32

from .layout import float_layout

__all__ = ["FP32Multiplier"]


class FP32Multiplier(wiring.Component):
    """Combinational FP32 product ``o = fp32_mul(a, b)`` of :mod:`model.baseline_arith`.

    Members
    -------
    a, b : In(float_layout(FP32))
    o : Out(float_layout(FP32))
    """

    def __init__(self):
        self.fmt = FP32
        layout = float_layout(FP32)
        super().__init__({"a": In(layout), "b": In(layout), "o": Out(layout)})

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        mb, emax = f.man_bits, f.max_exp_field
        a, b, o = self.a, self.b, self.o

        a_zero, b_zero = a.exp == 0, b.exp == 0          # DAZ: subnormals are zeros
        a_inf = (a.exp == emax) & (a.man == 0)
        b_inf = (b.exp == emax) & (b.man == 0)
        a_nan = (a.exp == emax) & (a.man != 0)
        b_nan = (b.exp == emax) & (b.man != 0)
        sign = a.sign ^ b.sign

        prod = Signal(2 * f.sig_bits)                     # in [2^46, 2^48)
        m.d.comb += prod.eq(Cat(a.man, C(1, 1)) * Cat(b.man, C(1, 1)))
        hi = prod[-1]
        # Normalize to 24 significand bits + guard + sticky.
        sig = Mux(hi, prod[mb + 1:], prod[mb:-1])
        guard = Mux(hi, prod[mb], prod[mb - 1])
        sticky = Mux(hi, prod[:mb].any(), prod[:mb - 1].any())
        exp = Signal(signed(12))
        m.d.comb += exp.eq(a.exp + b.exp - f.bias + hi)
        rounded = Signal(f.sig_bits + 1)
        m.d.comb += rounded.eq(sig + (guard & (sticky | sig[0])))
        exp_r = Signal(signed(12))
        m.d.comb += exp_r.eq(exp + rounded[-1])

        with m.If(a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero)):
            m.d.comb += o.eq(CANONICAL_NAN)
        with m.Elif(a_inf | b_inf):
            m.d.comb += [o.sign.eq(sign), o.exp.eq(emax), o.man.eq(0)]
        with m.Elif(a_zero | b_zero | (exp <= 0)):         # tiny before rounding: flush
            m.d.comb += [o.sign.eq(sign), o.exp.eq(0), o.man.eq(0)]
        with m.Elif(exp_r >= emax):
            m.d.comb += [o.sign.eq(sign), o.exp.eq(emax), o.man.eq(0)]
        with m.Else():
            m.d.comb += [o.sign.eq(sign), o.exp.eq(exp_r), o.man.eq(rounded[:mb])]
        return m
