"""Two-entry register slice (skid buffer): cuts every combinational path of a stream, full rate."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """``o`` is ``i`` one cycle later; ``o.valid``/``o.payload`` come from registers and ``i.ready``
    from a register, so neither side's logic reaches the other. One transfer per cycle.

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(width))
    """

    def __init__(self, width: int):
        self.width = width
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self.width)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            # The output register is free (or being emptied): refill from the skid first.
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            # Output stalled: park the word that arrived this cycle.
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
