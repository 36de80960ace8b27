"""INT8 PE: INT8 x INT8 product, INT32 accumulate wrapping modulo 2^32."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .int_mul import IntMultiplier

__all__ = ["Int8MAC"]

IN_BITS = 8
ACC_BITS = 32


class Int8MAC(wiring.Component):
    """Output-stationary INT8 MAC, the reference of ``model.baseline_arith.int8_mac``.

    Members
    -------
    a, b : In(signed(8))
    valid, clear : In(1)
    acc : Out(signed(32))
    """

    def __init__(self):
        super().__init__({"a": In(signed(IN_BITS)), "b": In(signed(IN_BITS)), "valid": In(1),
                          "clear": In(1), "acc": Out(signed(ACC_BITS))})

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = IntMultiplier(IN_BITS)
        m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.b)]
        with m.If(self.valid):
            with m.If(self.clear):
                m.d.sync += self.acc.eq(mul.o)
            with m.Else():
                m.d.sync += self.acc.eq(self.acc + mul.o)   # truncation to 32 bits wraps
        return m
