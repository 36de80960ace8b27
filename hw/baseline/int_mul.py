"""Signed integer multiplier (the INT8 baseline's multiplier, costed alone)."""

from __future__ import annotations

import operator

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IntMultiplier"]


class IntMultiplier(wiring.Component):
    """Combinational ``o = a * b`` for signed ``width``-bit operands (exact, 2*width bits).

    Members
    -------
    a, b : In(signed(width))
    o : Out(signed(2 * width))
    """

    def __init__(self, width: int = 8):
        width = operator.index(width)
        if not 2 <= width <= 32:
            raise ValueError(f"width must be in [2, 32], got {width}")
        self.width = width
        super().__init__({"a": In(signed(width)), "b": In(signed(width)), "o": Out(signed(2 * width))})

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.a * self.b)
        return m
