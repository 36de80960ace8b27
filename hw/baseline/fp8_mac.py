"""FP8 PE: exact FP8 x FP8 product, FP32 accumulate (``acc <- fp32(acc + a*b)``)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32, FloatFormat, fp8_format

from .fp32_add import FP32Adder
from .fp8_mul import FP8Multiplier
from .layout import float_layout

__all__ = ["FP8MAC"]


class FP8MAC(wiring.Component):
    """Output-stationary FP8 MAC, the reference of ``model.baseline_arith.fp8_mac``.

    Parameters
    ----------
    fmt_a, fmt_b : ``"e4m3"`` or ``"e5m2"`` (a mix serves the E4M3 x E5M2 backward GEMMs).

    Members
    -------
    a : In(float_layout(fmt_a))
    b : In(float_layout(fmt_b))
    valid, clear : In(1)
    acc : Out(float_layout(FP32))
    """

    def __init__(self, fmt_a: FloatFormat | str = "e4m3", fmt_b: FloatFormat | str = "e4m3"):
        self.fmt_a = fp8_format(fmt_a)
        self.fmt_b = fp8_format(fmt_b)
        super().__init__({"a": In(float_layout(self.fmt_a)), "b": In(float_layout(self.fmt_b)),
                          "valid": In(1), "clear": In(1), "acc": Out(float_layout(FP32))})

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = FP8Multiplier(self.fmt_a, self.fmt_b)
        m.submodules.add = add = FP32Adder()
        m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.b), add.a.eq(self.acc), add.b.eq(mul.o)]
        with m.If(self.valid):
            with m.If(self.clear):
                m.d.sync += self.acc.eq(mul.o)
            with m.Else():
                m.d.sync += self.acc.eq(add.o)
        return m
