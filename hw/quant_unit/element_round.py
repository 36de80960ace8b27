"""Round ``|y| * 2**g`` onto the element grid: nearest-even or stochastic, with saturation."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from model.floats import FP32
from model.formats import MLSFormat

from ..baseline.layout import float_layout

__all__ = ["ElementRounder"]

_FP32 = float_layout(FP32)


class ElementRounder(wiring.Component):
    """docs/numerics.md §2 step 5 for one element, combinational; bit-exact with
    ``model.quantize.round_to_codes``.

    ``z = |y| * 2**g = sig * 2**(ez - 23)`` lies in binade ``b = max(ez, 1 - bias)`` whose ulp
    is ``2**(b - M)``, so ``z`` in ulps is ``sig >> s`` with ``s = 23 - M + (b - ez)``. The
    code ``(b - (1 - bias)) * 2**M + n`` is linear in the grid (mantissa carries and the
    subnormal seam are free) and saturates at the largest code.

    - nearest: ``n = round(sig / 2**s)`` from the guard and a sticky bit, ties to the even code;
    - stochastic: ``n = (floor(sig * 2**R / 2**s) + r) >> R`` with the R random bits ``r``.

    Members
    -------
    y : In(32)
        FP32 bit pattern (normal or +0, as ``FP32ScaleMul`` makes it).
    g : In(G)
    stochastic : In(1)
    r : In(R)
    code : Out(1 + E + M)
        ``s << (E + M) | e << M | m``; zero is the canonical +0.
    """

    def __init__(self, fmt, sr_bits: int = 8):
        self._fmt = MLSFormat.parse(fmt)
        if not 1 <= sr_bits <= 24:
            raise ValueError(f"sr_bits must be in [1, 24], got {sr_bits}")
        self._sr_bits = sr_bits
        super().__init__({
            "y": In(FP32.bits),
            "g": In(max(self._fmt.group_bits, 1)),
            "stochastic": In(1),
            "r": In(sr_bits),
            "code": Out(self._fmt.elem_bits),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, R = self._fmt, self._sr_bits
        M = fmt.man_bits
        bmin = fmt.min_normal_exponent
        mag_bits = fmt.exp_bits + M
        max_code = (1 << mag_bits) - 1

        y = _FP32(self.y)   # the FP32 fields
        F, S = FP32.man_bits, FP32.sig_bits   # fraction bits 23, significand bits 24
        exp_field = y.exp
        sig = Cat(y.man, Const(1, 1))
        ez = Signal(signed(10))
        m.d.comb += ez.eq(exp_field - FP32.bias + self.g)
        below = ez < bmin

        # shift from the FP32 lsb to R bits below the target ulp, clamped where all bits are lost
        s_full = S + R
        shift = Signal(range(s_full + 1))
        under = Signal(signed(11))
        m.d.comb += under.eq(bmin - ez)
        with m.If(below & (under > s_full - (F - M))):
            m.d.comb += shift.eq(s_full)
        with m.Elif(below):
            m.d.comb += shift.eq(F - M + under)
        with m.Else():
            m.d.comb += shift.eq(F - M)

        wide = Signal(S + R)
        m.d.comb += wide.eq(Cat(Const(0, R), sig))
        ext = Signal(S + R)  # z in units of 2**(b - M - R), truncated
        m.d.comb += ext.eq(wide >> shift)
        lost = Signal()
        m.d.comb += lost.eq((ext << shift)[: S + R] != wide)

        trunc = ext[R:]
        half = ext[R - 1]
        rest = ext[: R - 1].any() | lost if R > 1 else lost
        offset_max = FP32.bias + fmt.max_group_exp - bmin + 1
        offset = Signal(range(offset_max + 1))
        m.d.comb += offset.eq(Mux(below, 0, ez - bmin))

        # ties go to the even *code*: the even mantissa for M >= 1; for M = 0 the code's lsb is
        # the binade's (model.quantize.round_to_codes)
        odd = trunc[0] ^ offset[0] if M == 0 else trunc[0]
        n = Signal(range((1 << (M + 2)) + (1 << S)))
        with m.If(self.stochastic):
            m.d.comb += n.eq((ext + self.r) >> R)
        with m.Else():
            m.d.comb += n.eq(trunc + (half & (rest | odd)))
        code = Signal(bits_for(offset_max) + M + S + 1)
        m.d.comb += code.eq((offset << M) + n)
        mag = Signal(mag_bits)
        with m.If(exp_field == 0):
            m.d.comb += mag.eq(0)
        with m.Elif(code > max_code):
            m.d.comb += mag.eq(max_code)  # saturate at ±elem_max
        with m.Else():
            m.d.comb += mag.eq(code)
        m.d.comb += self.code.eq(Cat(mag, y.sign & (mag != 0)))
        return m
