"""Board top level: clock/reset from the platform, UART pins, host bridge, the wrapped design."""

from __future__ import annotations

import operator

from amaranth import Elaboratable, Module
from amaranth.lib import io, wiring

from .bridge import HostBridge
from .uart_rx import UARTRx
from .uart_tx import UARTTx

__all__ = ["BoardTop", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115200


class BoardTop(Elaboratable):
    """``uart`` 0 of the platform -> ``HostBridge`` -> ``dut``; LED 0 shows 'running'.

    The sync domain is the board oscillator (amaranth-boards' default clock and reset
    synchronizer), so the design runs at the board clock; the report's Fmax says how much
    faster a PLL could run it.
    """

    def __init__(self, dut: wiring.Component, *, baud: int = DEFAULT_BAUD, in_depth: int = 64,
                 out_depth: int = 64):
        baud = operator.index(baud)
        if not 300 <= baud <= 3_000_000:
            raise ValueError(f"baud must be between 300 and 3000000, not {baud}")
        self.baud = baud
        self.bridge = HostBridge(dut, in_depth=in_depth, out_depth=out_depth)

    def divisor(self, clk_hz: float) -> int:
        return round(clk_hz / self.baud)

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor(platform.default_clk_frequency)
        m.submodules.bridge = bridge = self.bridge
        m.submodules.uart_rx = rx = UARTRx(divisor)
        m.submodules.uart_tx = tx = UARTTx(divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_buf = led_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [rx.rx.eq(rx_buf.i), tx_buf.o.eq(tx.tx), led_buf.o.eq(bridge.running),
                     bridge.ext_flags.eq(rx.overrun | (rx.framing << 1))]
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        return m
