"""FP32 multiply-add PE: ``acc <- fp32(acc + fp32(a * b))`` (two roundings)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from .fp32_add import FP32Adder
from .fp32_mul import FP32Multiplier
from .layout import float_layout

__all__ = ["FP32MAC"]


class FP32MAC(wiring.Component):
    """Output-stationary FP32 MAC, the reference of ``model.baseline_arith.fp32_mac``.

    Each cycle with ``valid`` high performs one MAC; ``clear`` starts a new accumulation
    (``acc <- a*b``). ``acc`` shows the result :attr:`latency` cycles later.

    Members
    -------
    a, b : In(float_layout(FP32))
    valid, clear : In(1)
    acc : Out(float_layout(FP32))
    """

    def __init__(self):
        self.fmt = FP32
        layout = float_layout(FP32)
        super().__init__({"a": In(layout), "b": In(layout), "valid": In(1), "clear": In(1),
                          "acc": Out(layout)})

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = FP32Multiplier()
        m.submodules.add = add = FP32Adder()
        m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.b), add.a.eq(self.acc), add.b.eq(mul.o)]
        with m.If(self.valid):
            with m.If(self.clear):
                m.d.sync += self.acc.eq(mul.o)
            with m.Else():
                m.d.sync += self.acc.eq(add.o)
        return m
