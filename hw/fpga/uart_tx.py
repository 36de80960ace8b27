"""8N1 UART transmitter: a stream of bytes in, a serial line out."""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx"]


class UARTTx(wiring.Component):
    """Send each byte of ``i`` as an 8N1 frame (start bit, 8 data bits LSB first, stop bit).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``round(clk_hz / baud)``), at least 4.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ready while the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, divisor: int):
        divisor = operator.index(divisor)
        if divisor < 4:
            raise ValueError(f"UART divisor must be at least 4 clock cycles per bit, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)  # stop bit, data, start bit: shifted out LSB first

        m.d.comb += self.tx.eq(shreg[0])
        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                         bits.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
