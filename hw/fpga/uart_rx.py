"""8N1 UART receiver: a serial line in, a stream of bytes out."""

from __future__ import annotations

import operator

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx"]


class UARTRx(wiring.Component):
    """Receive 8N1 frames; one byte per stream transfer.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``round(clk_hz / baud)``), at least 4.

    Members
    -------
    rx : In(1)
        The serial line (idle high); synchronized inside.
    o : Out(stream.Signature(8))
        Received bytes. A UART cannot wait, so a byte that is still pending when the next one
        completes is replaced and ``overrun`` is set.
    overrun, framing : Out(1)
        Sticky error flags (a byte lost; a stop bit that was low).
    """

    def __init__(self, divisor: int):
        divisor = operator.index(divisor)
        if divisor < 4:
            raise ValueError(f"UART divisor must be at least 4 clock cycles per bit, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overrun": Out(1),
            "framing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bit = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # Wait 1.5 bit times to sample the middle of data bit 0.
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq(Cat(shreg[1:], rx)),  # LSB first
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += self.framing.eq(1)
                    # A low stop bit (a break): wait for the line to go idle before the next start bit.
                    m.next = "IDLE"
                    with m.If(~rx):
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
