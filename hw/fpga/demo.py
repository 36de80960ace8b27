"""A small design of every port kind, to exercise the board flow without the MLS array."""

from __future__ import annotations

import operator

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DotDemo"]


class DotDemo(wiring.Component):
    """Running dot product of signed integer pairs.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(width), 2)))
        Pairs (x, y).
    clear : In(1)
        While high the sum restarts from zero (use the host's 'P' strobe).
    o : Out(stream.Signature(signed(acc_width)))
        The sum after each pair (one output per input, after ``latency`` cycles).
    count : Out(16)
        Pairs accumulated since the last clear.
    """

    def __init__(self, width: int = 8, acc_width: int = 24):
        width, acc_width = operator.index(width), operator.index(acc_width)
        if not 2 <= width <= 18:
            raise ValueError(f"DotDemo width must be between 2 and 18 bits, not {width}")
        if acc_width < 2 * width:
            raise ValueError(f"DotDemo acc_width must be at least 2 * width = {2 * width}, not {acc_width}")
        self.width, self.acc_width = width, acc_width
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(width), 2))),
            "clear": In(1),
            "o": Out(stream.Signature(signed(acc_width))),
            "count": Out(16),
        })

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.acc_width))
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready), self.o.payload.eq(acc)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.clear):
            m.d.sync += [acc.eq(0), self.count.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [acc.eq(acc + self.i.payload[0] * self.i.payload[1]), self.o.valid.eq(1),
                         self.count.eq(self.count + 1)]
        return m
