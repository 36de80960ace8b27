"""UART + host bridge: the whole board wrapper minus the pins, so it can be simulated."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bridge import HostBridge
from .uart_rx import UARTRx
from .uart_tx import UARTTx

__all__ = ["UARTBridge"]


class UARTBridge(wiring.Component):
    """``rx`` line -> :class:`UARTRx` -> :class:`HostBridge` (around ``dut``) -> :class:`UARTTx` -> ``tx``.

    Members
    -------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host.
    running : Out(1)
        The bridge's run state (an LED on a board).
    """

    def __init__(self, dut: wiring.Component, *, divisor: int, in_depth: int = 64, out_depth: int = 64):
        self.bridge = HostBridge(dut, in_depth=in_depth, out_depth=out_depth)
        self.uart_rx, self.uart_tx = UARTRx(divisor), UARTTx(divisor)
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "running": Out(1)})

    @property
    def ports(self):
        return self.bridge.ports

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.uart_rx = rx = self.uart_rx
        m.submodules.uart_tx = tx = self.uart_tx
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.running.eq(bridge.running),
                     bridge.ext_flags.eq(rx.overrun | (rx.framing << 1))]
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        return m
