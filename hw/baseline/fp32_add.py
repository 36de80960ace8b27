"""IEEE binary32 adder: RNE, DAZ inputs, FTZ (tiny sums are exact), canonical NaN."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import CANONICAL_NAN
from model.floats import FP32

from .layout import float_layout, leading_zeros

__all__ = ["FP32Adder"]

_EXTRA = 3  # guard, round and sticky bits below the significand


class FP32Adder(wiring.Component):
    """Combinational FP32 sum ``o = fp32_add(a, b)`` of :mod:`model.baseline_arith`.

    Classic single-path adder: swap by magnitude, align the smaller operand with a sticky
    shifter, add or subtract, normalize with a leading-zero count, round to nearest even.

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
        mb, emax, sw = f.man_bits, f.max_exp_field, f.sig_bits
        ew = sw + _EXTRA                                    # 27-bit working significand
        a, b, o = self.a, self.b, self.o

        a_zero, b_zero = a.exp == 0, b.exp == 0            # DAZ
        a_inf = (a.exp == emax) & (a.man == 0)
        b_inf = (b.exp == emax) & (b.man == 0)
        a_nan = (a.exp == emax) & (a.man != 0)
        b_nan = (b.exp == emax) & (b.man != 0)

        a_mag = Mux(a_zero, 0, Cat(a.man, a.exp))
        b_mag = Mux(b_zero, 0, Cat(b.man, b.exp))
        swap = b_mag > a_mag
        a_sig = Mux(a_zero, 0, Cat(a.man, C(1, 1)))
        b_sig = Mux(b_zero, 0, Cat(b.man, C(1, 1)))

        l_sig, s_sig = Signal(sw), Signal(sw)
        l_exp, s_exp = Signal(f.exp_bits), Signal(f.exp_bits)
        l_sign, s_sign = Signal(), Signal()
        m.d.comb += [
            l_sig.eq(Mux(swap, b_sig, a_sig)), s_sig.eq(Mux(swap, a_sig, b_sig)),
            l_exp.eq(Mux(swap, b.exp, a.exp)), s_exp.eq(Mux(swap, a.exp, b.exp)),
            l_sign.eq(Mux(swap, b.sign, a.sign)), s_sign.eq(Mux(swap, a.sign, b.sign)),
        ]

        # Align: shift the smaller significand right, keeping every lost bit as sticky.
        diff = Signal(f.exp_bits)
        m.d.comb += diff.eq(l_exp - s_exp)
        dist = Signal(range(ew + 1))
        m.d.comb += dist.eq(Mux(diff > ew, ew, diff))
        wide = Signal(2 * ew)
        m.d.comb += wide.eq(Cat(C(0, ew), C(0, _EXTRA), s_sig) >> dist)
        aligned = Signal(ew)
        m.d.comb += aligned.eq(wide[ew:] | wide[:ew].any())
        l_ext = Cat(C(0, _EXTRA), l_sig)

        total = Signal(ew + 1)
        with m.If(l_sign ^ s_sign):
            m.d.comb += total.eq(l_ext - aligned)             # >= 0: |l| >= |s|
        with m.Else():
            m.d.comb += total.eq(l_ext + aligned)

        # Normalize so that the leading one sits at the top bit of `norm`.
        lz = leading_zeros(m, total, ew + 1)
        norm = Signal(ew + 1)
        m.d.comb += norm.eq(total << lz)
        sig = norm[_EXTRA + 1:]
        guard = norm[_EXTRA]
        sticky = norm[:_EXTRA].any()
        exp = Signal(signed(f.exp_bits + 3))
        m.d.comb += exp.eq(l_exp + 1 - lz)
        rounded = Signal(sw + 1)
        m.d.comb += rounded.eq(sig + (guard & (sticky | sig[0])))
        exp_r = Signal(signed(f.exp_bits + 3))
        m.d.comb += exp_r.eq(exp + rounded[-1])

        with m.If(a_nan | b_nan | (a_inf & b_inf & (a.sign != b.sign))):
            m.d.comb += o.eq(CANONICAL_NAN)
        with m.Elif(a_inf):
            m.d.comb += o.eq(a)
        with m.Elif(b_inf):
            m.d.comb += o.eq(b)
        with m.Elif(total == 0):                              # x - x = +0; -0 + -0 = -0
            m.d.comb += [o.sign.eq(l_sign & s_sign), o.exp.eq(0), o.man.eq(0)]
        with m.Elif(exp <= 0):                                # tiny sums are exact: flush
            m.d.comb += [o.sign.eq(l_sign), o.exp.eq(0), o.man.eq(0)]
        with m.Elif(exp_r >= emax):
            m.d.comb += [o.sign.eq(l_sign), o.exp.eq(emax), o.man.eq(0)]
        with m.Else():
            m.d.comb += [o.sign.eq(l_sign), o.exp.eq(exp_r), o.man.eq(rounded[:mb])]
        return m
