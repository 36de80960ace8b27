"""Board top level: clock/reset from the platform, UART and LED pins, the UART bridge."""

from __future__ import annotations

import operator

from amaranth import Elaboratable, Module
from amaranth.lib import io, wiring

from .uart_bridge import UARTBridge

__all__ = ["BoardTop", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115200


class BoardTop(Elaboratable):
    """``uart`` 0 of the platform -> :class:`UARTBridge` around ``dut``; LED 0 shows 'running'.

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
        self.dut, self.in_depth, self.out_depth = dut, in_depth, out_depth
        # The bridge (and its port table) exists before the platform gives the clock rate.
        self._core = None

    def divisor(self, clk_hz: float) -> int:
        return round(clk_hz / self.baud)

    def core(self, clk_hz: float) -> UARTBridge:
        if self._core is None:
            self._core = UARTBridge(self.dut, divisor=self.divisor(clk_hz), in_depth=self.in_depth,
                                    out_depth=self.out_depth)
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core(platform.default_clk_frequency)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_buf = led_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx), led_buf.o.eq(core.running)]
        return m
