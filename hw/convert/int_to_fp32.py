"""Accumulator integer to FP32: ``fp32_rne(C_int * 2**-L)`` with FTZ and +-inf past the range."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from ..baseline.layout import leading_zeros

__all__ = ["IntToFP32", "MAX_ACC_BITS", "MAX_LSB_EXPONENT"]

#: Widest accumulator the converter takes (``model.arith.MAX_EXACT_BITS``: what int64 holds).
MAX_ACC_BITS = 63
#: Largest |L| of the LSB weight 2**-L (L of any MLS format pair is far below this).
MAX_LSB_EXPONENT = 1024

_M, _SIG, _BIAS, _MAX_FIELD = FP32.man_bits, FP32.sig_bits, FP32.bias, FP32.max_exp_field


def check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


class IntToFP32(wiring.Component):
    """``y = fp32_from_int(value, lsb_exponent)`` of ``model.arith``, combinational.

    The magnitude is rounded once to 24 significant bits, ties to even, with an unbounded
    exponent; a rounded result below 2**-126 is flushed to +0 and one of 2**128 or more becomes
    +-inf. Zero gives +0.

    Parameters
    ----------
    acc_bits : int
        Width of the two's-complement input, in [2, 63].
    lsb_exponent : int
        L: the input counts units of 2**-L; in [-1024, 1024].

    Members
    -------
    value : In(signed(acc_bits))
    y : Out(32)
    """

    def __init__(self, acc_bits: int, lsb_exponent: int):
        self._acc_bits = check_int("acc_bits", acc_bits, 2, MAX_ACC_BITS)
        self._lsb_exponent = check_int("lsb_exponent", lsb_exponent, -MAX_LSB_EXPONENT, MAX_LSB_EXPONENT)
        super().__init__({"value": In(signed(acc_bits)), "y": Out(FP32.bits)})

    acc_bits = property(lambda self: self._acc_bits)
    lsb_exponent = property(lambda self: self._lsb_exponent)

    def elaborate(self, platform):
        m = Module()
        W, L = self._acc_bits, self._lsb_exponent
        N = max(W, _SIG + 1)                      # room for 24 kept bits and a guard bit
        negative = self.value < 0
        magnitude = Signal(W)                     # |-2**(W-1)| = 2**(W-1) still fits unsigned
        m.d.comb += magnitude.eq(Mux(negative, -self.value, self.value))
        lz = leading_zeros(m, magnitude, W)
        norm = Signal(N)                          # leading one at bit N - 1
        m.d.comb += norm.eq((Cat(Const(0, N - W), magnitude) << lz)[:N])
        kept = norm[N - _SIG:]
        guard = norm[N - _SIG - 1]
        sticky = norm[:N - _SIG - 1].any() if N - _SIG - 1 > 0 else Const(0)
        rounded = Signal(_SIG + 1)
        m.d.comb += rounded.eq(kept + (guard & (sticky | kept[0])))
        carry = rounded[_SIG]
        # value = magnitude * 2**-L lies in [2**e, 2**(e+1)), e = (W - 1 - lz) - L; rounding may carry
        exp = Signal(signed(13))
        m.d.comb += exp.eq(W - 1 - L - lz + carry)
        man = Mux(carry, 0, rounded[:_M])
        with m.If((magnitude == 0) | (exp < 1 - _BIAS)):
            m.d.comb += self.y.eq(0)
        with m.Elif(exp > _MAX_FIELD - 1 - _BIAS):
            m.d.comb += self.y.eq(Cat(Const(0, _M), Const(_MAX_FIELD, FP32.exp_bits), negative))
        with m.Else():
            m.d.comb += self.y.eq(Cat(man, (exp + _BIAS)[:FP32.exp_bits], negative))
        return m
