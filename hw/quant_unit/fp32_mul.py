"""FP32 multiply by the inverse tensor scale, RNE with DAZ on the input and FTZ on the result."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32ScaleMul"]

_MIN_NORMAL = 0x0080_0000


class FP32ScaleMul(wiring.Component):
    """``y = ftz(fp32_rne(daz(x) * inv))`` (DESIGN §2.3), combinational.

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
        super().__init__({"x": In(32), "inv": In(32), "y": Out(32), "invalid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        x_exp, inv_exp = self.x[23:31], self.inv[23:31]
        sign = self.x[31] ^ self.inv[31]
        special = (x_exp == 0xFF) | (inv_exp == 0xFF)
        zero = (x_exp == 0) | (inv_exp == 0)  # DAZ on both operands

        prod = Signal(48)
        m.d.comb += prod.eq(Cat(self.x[0:23], Const(1, 1)) * Cat(self.inv[0:23], Const(1, 1)))
        top = prod[47]
        sig = Signal(24)
        guard = Signal()
        sticky = Signal()
        m.d.comb += [
            sig.eq(Mux(top, prod[24:48], prod[23:47])),
            guard.eq(Mux(top, prod[23], prod[22])),
            sticky.eq(Mux(top, prod[0:23].any(), prod[0:22].any())),
        ]
        # biased exponent of the normalized, unrounded product
        exp = Signal(signed(11))
        m.d.comb += exp.eq(x_exp + inv_exp - 127 + top)
        rounded = Signal(25)
        m.d.comb += rounded.eq(sig + (guard & (sticky | sig[0])))  # ties to even
        carry = rounded[24]
        exp_r = Signal(signed(12))
        m.d.comb += exp_r.eq(exp + carry)
        man_r = Mux(carry, rounded[1:24], rounded[0:23])
        overflow = (exp >= 1) & (exp_r >= 0xFF)

        with m.If(special | overflow):
            m.d.comb += self.y.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
        with m.Elif(zero):
            m.d.comb += self.y.eq(0)
        with m.Elif(exp >= 1):
            m.d.comb += self.y.eq(Cat(man_r, exp_r[0:8], sign))
        with m.Elif((exp == 0) & (sig == 0xFF_FFFF)):
            # gradual underflow would round 0x7FFFFF.1 ulps (subnormal grid) up to 2**-126
            m.d.comb += self.y.eq(Cat(Const(_MIN_NORMAL, 31), sign))
        with m.Else():
            m.d.comb += self.y.eq(0)  # FTZ
        m.d.comb += self.invalid.eq(special | (overflow & ~zero))
        return m
