"""IEEE FP32 multiply with round-to-nearest-even and gradual underflow (optionally flushed)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from ..baseline.layout import float_layout, leading_zeros

__all__ = ["FP32Multiply", "FP32_QUIET_NAN"]

_FP32 = float_layout(FP32)
_M, _SIG, _BIAS, _MAX_FIELD = FP32.man_bits, FP32.sig_bits, FP32.bias, FP32.max_exp_field
#: The NaN this unit produces (0 x inf): the canonical quiet NaN, sign clear.
FP32_QUIET_NAN = 0x7FC00000


class FP32Multiply(wiring.Component):
    """``y = fp32_rne(a * b)``, combinational, IEEE 754 with subnormal inputs and outputs.

    This is ``torch.float32`` multiplication bit for bit on finite, zero and infinite operands
    (a NaN operand or ``0 * inf`` gives ``FP32_QUIET_NAN``). With ``flush=True`` a result below
    2**-126 *after* IEEE rounding (on the subnormal grid) becomes +0: ``torch.where(|p| <
    2**-126, 0, p)`` of the IEEE product, which is what ``model.arith.output_convert`` does.

    Members
    -------
    a, b : In(32)
        FP32 bit patterns.
    y : Out(32)
        FP32 bit pattern of the product.
    nan : Out(1)
        ``y`` is the NaN (a NaN operand, or zero times infinity).
    """

    def __init__(self, *, flush: bool = False):
        if not isinstance(flush, bool):
            raise TypeError(f"flush must be a bool, not {flush!r}")
        self._flush = flush
        super().__init__({"a": In(FP32.bits), "b": In(FP32.bits), "y": Out(FP32.bits), "nan": Out(1)})

    @property
    def flush(self) -> bool:
        return self._flush

    def elaborate(self, platform):
        m = Module()
        a, b = _FP32(self.a), _FP32(self.b)
        sign = a.sign ^ b.sign

        def unpack(x):
            # significand (hidden bit for normals) and effective unbiased exponent max(e, 1) - bias
            sig = Cat(x.man, x.exp != 0)
            exp = Signal(signed(10))
            m.d.comb += exp.eq(Mux(x.exp == 0, 1, x.exp) - _BIAS)
            inf = (x.exp == _MAX_FIELD) & (x.man == 0)
            nan = (x.exp == _MAX_FIELD) & (x.man != 0)
            zero = (x.exp == 0) & (x.man == 0)
            return sig, exp, inf, nan, zero

        sig_a, exp_a, inf_a, nan_a, zero_a = unpack(a)
        sig_b, exp_b, inf_b, nan_b, zero_b = unpack(b)

        prod = Signal(2 * _SIG)
        m.d.comb += prod.eq(sig_a * sig_b)
        lz = leading_zeros(m, prod, 2 * _SIG)
        norm = Signal(2 * _SIG)                   # leading one at bit 47
        m.d.comb += norm.eq((prod << lz)[:2 * _SIG])
        # the product lies in [2**e, 2**(e+1)) with e = (47 - lz) + exp_a + exp_b - 46
        e = Signal(signed(12))
        m.d.comb += e.eq(1 - lz + exp_a + exp_b)
        # below the normal range the result sits on the subnormal grid (LSB 2**-149): shift right
        # by d = -126 - e first; d >= 25 leaves nothing but sticky bits
        d = Signal(range(26))
        m.d.comb += d.eq(Mux(e >= 1 - _BIAS, 0, Mux(-(_BIAS - 1) - e > 25, 25, -(_BIAS - 1) - e)))
        shifted = Signal(2 * _SIG)
        lost = Signal()
        m.d.comb += [
            shifted.eq(norm >> d),
            lost.eq((norm & ((Const(1, 2 * _SIG + 1) << d) - 1)[:2 * _SIG]).any()),
        ]
        kept = shifted[_SIG:]
        guard = shifted[_SIG - 1]
        sticky = shifted[:_SIG - 1].any() | lost
        rounded = Signal(_SIG + 1)
        m.d.comb += rounded.eq(kept + (guard & (sticky | kept[0])))
        # bits = (biased exponent - 1) << 23 + rounded: the hidden bit (and a rounding carry)
        # lands in the exponent field; a subnormal result has base 0 and may round up to 2**-126
        base = Signal(signed(13))
        m.d.comb += base.eq(Mux(d == 0, e + _BIAS - 1, 0))
        magnitude = Signal(signed(40))
        m.d.comb += magnitude.eq((base << _M) + rounded)

        nan = nan_a | nan_b | (inf_a & zero_b) | (zero_a & inf_b)
        inf = inf_a | inf_b | (magnitude >= (_MAX_FIELD << _M))
        zero = zero_a | zero_b
        inf_bits = Cat(Const(0, _M), Const(_MAX_FIELD, FP32.exp_bits), sign)
        m.d.comb += self.nan.eq(nan)
        with m.If(nan):
            m.d.comb += self.y.eq(FP32_QUIET_NAN)
        with m.Elif(inf):
            m.d.comb += self.y.eq(inf_bits)
        with m.Elif(zero):
            m.d.comb += self.y.eq(0 if self._flush else Cat(Const(0, 31), sign))
        elif_flush = magnitude < (1 << _M)
        if self._flush:
            with m.Elif(elif_flush):
                m.d.comb += self.y.eq(0)
        with m.Else():
            m.d.comb += self.y.eq(Cat(magnitude[:31], sign))
        return m
