"""FP32 multiply by the inverse tensor scale, RNE with DAZ on the input and FTZ on the result."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from ..baseline.layout import float_layout

__all__ = ["FP32ScaleMul"]

_FP32 = float_layout(FP32)
_M, _MAX_EXP = FP32.man_bits, FP32.max_exp_field
#: Magnitude bits of 2**-126, the smallest normal number.
_MIN_NORMAL = 1 << _M


class FP32ScaleMul(wiring.Component):
    """``y = ftz(fp32_rne(daz(x) * inv))`` (docs/numerics.md §2 step 3), combinational.

    Bit-exact with ``model.quantize.scale_input``: a result that IEEE gradual underflow would
    round up to exactly 2**-126 (possible only from ``0xFFFFFF * 2**-150 <= |x*inv| < 2**-126``)
    is kept as 2**-126, every other sub-normal result becomes +0.

    Members
    -------
    x, inv : In(32)
        FP32 bit patterns. ``inv`` is the host-supplied ``model.quantize.tensor_scale(...)[1]``.
    y : Out(32)
        FP32 bit pattern of the product (+0 when flushed).
    invalid : Out(1)
        ``x`` or ``inv`` is NaN/Inf, or the product overflows FP32 (``y`` is then ±Inf).
    """

    def __init__(self):
        super().__init__({"x": In(FP32.bits), "inv": In(FP32.bits), "y": Out(FP32.bits), "invalid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        x, inv = _FP32(self.x), _FP32(self.inv)   # the FP32 fields of both operands
        sign = x.sign ^ inv.sign
        special = (x.exp == _MAX_EXP) | (inv.exp == _MAX_EXP)
        zero = (x.exp == 0) | (inv.exp == 0)  # DAZ on both operands

        # the 2 * 24-bit product of the significands (hidden bits set), in [2**46, 2**48)
        sig_bits = FP32.sig_bits
        prod = Signal(2 * sig_bits)
        m.d.comb += prod.eq(Cat(x.man, Const(1, 1)) * Cat(inv.man, Const(1, 1)))
        top = prod[-1]
        sig = Signal(sig_bits)
        guard = Signal()
        sticky = Signal()
        m.d.comb += [
            sig.eq(Mux(top, prod[sig_bits:], prod[_M:-1])),
            guard.eq(Mux(top, prod[_M], prod[_M - 1])),
            sticky.eq(Mux(top, prod[0:_M].any(), prod[0:_M - 1].any())),
        ]
        # biased exponent of the normalized, unrounded product
        exp = Signal(signed(11))
        m.d.comb += exp.eq(x.exp + inv.exp - FP32.bias + top)
        rounded = Signal(sig_bits + 1)
        m.d.comb += rounded.eq(sig + (guard & (sticky | sig[0])))  # ties to even
        carry = rounded[-1]
        exp_r = Signal(signed(12))
        m.d.comb += exp_r.eq(exp + carry)
        man_r = Mux(carry, rounded[1:sig_bits], rounded[0:_M])
        overflow = (exp >= 1) & (exp_r >= _MAX_EXP)

        with m.If(special | overflow):
            m.d.comb += self.y.eq(Cat(Const(0, _M), Const(_MAX_EXP, FP32.exp_bits), sign))
        with m.Elif(zero):
            m.d.comb += self.y.eq(0)
        with m.Elif(exp >= 1):
            m.d.comb += self.y.eq(Cat(man_r, exp_r[0:FP32.exp_bits], sign))
        with m.Elif((exp == 0) & (sig == (1 << sig_bits) - 1)):
            # gradual underflow would round 0x7FFFFF.1 ulps (subnormal grid) up to 2**-126
            m.d.comb += self.y.eq(Cat(Const(_MIN_NORMAL, FP32.bits - 1), sign))
        with m.Else():
            m.d.comb += self.y.eq(0)  # FTZ
        m.d.comb += self.invalid.eq(special | (overflow & ~zero))
        return m
