"""FP32 accumulator plus an exact wide fixed-point sum, with one RNE rounding (the FP8 dot PE's add)."""

from __future__ import annotations

import operator

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import CANONICAL_NAN, FP32_NEG_INF, FP32_POS_INF
from model.floats import FP32

from .layout import float_layout, leading_zeros

__all__ = ["FP32WideAdder"]


def _check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    value = operator.index(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


class FP32WideAdder(wiring.Component):
    """Combinational ``o = fp32_rne(acc + sum · 2^sum_lsb)`` with ONE rounding, as
    ``model.baseline_arith.fp8_dot_mac`` adds a beat (DAZ acc, canonical NaN, n-ary zero sign).

    The exact sum ``sum`` (``sum_bits``, two's complement) and the accumulator's 24-bit
    significand meet in one window of ``window_bits`` bits whose LSB weighs
    ``2^(sum_lsb - GUARD)``: the sum sits ``GUARD`` bits up, the significand is shifted to its
    own exponent. Bits of a small accumulator that fall below the window are ORed into the
    window's LSB (sticky jamming; with ``GUARD`` = 26 a nonzero sum puts the result's rounding
    point at least two bits above it, so the rounding sees exactly what the exact sum would
    give). An accumulator at least ``sum_bits + 2`` binades above the sum's LSB is returned
    unchanged: the sum is then below a quarter of its ulp and cannot move it. One two's-complement
    add, one leading-zero count and normalization, one round to nearest even.

    The window never reaches FP32's subnormal or overflow range: the constructor checks that
    every result exponent lies in [1, 254], so the adder has no flush or overflow logic (the
    FP8 dot PE's sums, ``2^-32 <= |S| < 2^42``, are far inside).

    Flags from the lanes: ``nan`` (a NaN lane), ``pos_inf`` / ``neg_inf`` (an infinite lane),
    ``neg_zero`` (every lane is -0; then ``sum`` = 0). Inf of both signs is NaN, as IEEE.

    Parameters
    ----------
    sum_bits : int in [2, 512]
    sum_lsb : int in [-149, 127]
        Exponent of ``sum``'s LSB.

    Members
    -------
    acc : In(float_layout(FP32)); sum : In(signed(sum_bits))
    nan, pos_inf, neg_inf, neg_zero : In(1)
    o : Out(float_layout(FP32))
    """

    #: Window bits below the sum's LSB: room for a 24-bit significand, guard and the jam bit.
    GUARD = 26
    #: Buffer bits below the window that collect the accumulator's shifted-out (sticky) bits.
    _STICKY = FP32.sig_bits + 1

    def __init__(self, sum_bits: int, sum_lsb: int):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._sum_bits = _check_int("sum_bits", sum_bits, 2, 512)
        self._sum_lsb = _check_int("sum_lsb", sum_lsb, FP32.min_normal_exponent - FP32.man_bits, FP32.bias)
        lo, hi = self.result_exponents
        if lo < 1 or hi > FP32.max_exp_field - 1:
            raise ValueError(f"sum_bits={sum_bits} and sum_lsb={sum_lsb} give biased FP32 result exponents "
                             f"[{lo}, {hi}]; this adder needs them in [1, {FP32.max_exp_field - 1}] "
                             "(it has no flush-to-zero or overflow logic)")
        layout = float_layout(FP32)
        super().__init__({"acc": In(layout), "sum": In(signed(self._sum_bits)),
                          "nan": In(1), "pos_inf": In(1), "neg_inf": In(1), "neg_zero": In(1),
                          "o": Out(layout)})
        del self._MustUse__silence

    @property
    def sum_bits(self) -> int:
        return self._sum_bits

    @property
    def sum_lsb(self) -> int:
        return self._sum_lsb

    @property
    def window_bits(self) -> int:
        """Signed window: ``GUARD`` bits, the sum, and an accumulator up to ``sum_bits + 1``
        binades above the sum's LSB (24 bits, plus a carry and a sign)."""
        return self._sum_bits + self.GUARD + FP32.sig_bits + 3

    @property
    def result_exponents(self) -> tuple[int, int]:
        """Smallest and largest biased exponent a rounded window value can have."""
        base = self._sum_lsb - self.GUARD + FP32.bias        # a leading one at window bit 0
        return base, base + (self.window_bits - 2) + 1       # top magnitude bit, plus a rounding carry

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        f = FP32
        acc, o = self.acc, self.o
        n, guard_bits, sticky_bits = self.window_bits, self.GUARD, self._STICKY
        emax = f.max_exp_field

        acc_zero = acc.exp == 0                                     # DAZ
        acc_nan = (acc.exp == emax) & (acc.man != 0)
        acc_inf = (acc.exp == emax) & (acc.man == 0)
        any_nan = Signal()
        pos_inf, neg_inf = Signal(), Signal()
        m.d.comb += [
            pos_inf.eq(self.pos_inf | (acc_inf & ~acc.sign)),
            neg_inf.eq(self.neg_inf | (acc_inf & acc.sign)),
            any_nan.eq(self.nan | acc_nan | (pos_inf & neg_inf)),
        ]

        # Position of the accumulator's LSB in the window: q = (e - 150) - sum_lsb + GUARD.
        q = Signal(signed(f.exp_bits + 12))
        m.d.comb += q.eq(acc.exp - (f.bias + f.man_bits) - self._sum_lsb + guard_bits)
        above = Signal()                 # so far above the sum that acc + sum rounds back to acc
        m.d.comb += above.eq(q >= self._sum_bits + guard_bits + 2)

        # Align the significand: buffer bit `sticky_bits` is window bit 0.
        sig = Signal(f.sig_bits)
        m.d.comb += sig.eq(Mux(acc_zero, 0, Cat(acc.man, C(1, 1))))
        shift = Signal(range(n + sticky_bits))
        m.d.comb += shift.eq(Mux(q + sticky_bits < 0, 0, Mux(above, 0, q + sticky_bits)))
        buffer = Signal(n + sticky_bits)
        m.d.comb += buffer.eq(sig << shift)
        aligned = Signal(n)
        m.d.comb += aligned.eq(buffer[sticky_bits:] | buffer[:sticky_bits].any())   # jam the lost bits

        total = Signal(signed(n))
        m.d.comb += total.eq((self.sum << guard_bits) + Mux(acc.sign, -aligned, aligned))

        # One normalization and one rounding of |total|.
        negative = total[-1]
        magnitude = Signal(n - 1)
        m.d.comb += magnitude.eq(Mux(negative, -total, total))
        lz = leading_zeros(m, magnitude, n - 1)
        norm = Signal(n - 1)
        m.d.comb += norm.eq(magnitude << lz)
        top_sig = norm[n - 1 - f.sig_bits:]
        guard = norm[n - 2 - f.sig_bits]
        sticky = norm[:n - 2 - f.sig_bits].any()
        rounded = Signal(f.sig_bits + 1)
        m.d.comb += rounded.eq(top_sig + (guard & (sticky | top_sig[0])))
        exp = Signal(signed(16))
        # leading one at window bit n - 2 - lz, weight 2^(sum_lsb - GUARD + n - 2 - lz)
        m.d.comb += exp.eq(self._sum_lsb - guard_bits + (n - 2) + f.bias - lz + rounded[-1])
        man = Mux(rounded[-1], 0, rounded[:f.man_bits])

        with m.If(any_nan):
            m.d.comb += o.eq(CANONICAL_NAN)
        with m.Elif(pos_inf):
            m.d.comb += o.eq(FP32_POS_INF)
        with m.Elif(neg_inf):
            m.d.comb += o.eq(FP32_NEG_INF)
        with m.Elif(self.sum == 0):
            with m.If(acc_zero):                                   # -0 only if every addend is -0
                m.d.comb += [o.sign.eq(acc.sign & self.neg_zero), o.exp.eq(0), o.man.eq(0)]
            with m.Else():
                m.d.comb += o.eq(acc)
        with m.Elif(above & ~acc_zero):
            m.d.comb += o.eq(acc)
        with m.Elif(total == 0):                                   # exact cancellation: +0
            m.d.comb += o.eq(0)
        with m.Else():
            m.d.comb += [o.sign.eq(negative), o.exp.eq(exp), o.man.eq(man)]
        return m
