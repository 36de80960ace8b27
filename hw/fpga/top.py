"""Board top level: clock/reset from the platform (or an ECP5 PLL), UART and LED pins, the UART bridge."""

from __future__ import annotations

import operator

from amaranth import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from .uart_bridge import UARTBridge

__all__ = ["BoardTop", "DEFAULT_BAUD", "ecp5_pll_config"]

DEFAULT_BAUD = 115200


def ecp5_pll_config(f_in_hz: float, f_out_hz: float, *, tolerance: float = 1e-3) -> dict:
    """Dividers of an ECP5 ``EHXPLLL`` (feedback from CLKOP) for ``f_out_hz`` from ``f_in_hz``:
    ``{"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "f_out_hz", "f_vco_hz"}`` with f_out = f_in * CLKFB_DIV
    / CLKI_DIV, the PFD (f_in / CLKI_DIV) in 3.125 .. 400 MHz and the VCO (f_out * CLKOP_DIV) in
    400 .. 800 MHz (the ECP5 data sheet's ranges, the ones Lattice's and the open tools' PLL
    calculators use). ValueError naming the nearest reachable frequency if none is within
    ``tolerance`` (relative)."""
    if not 3.125e6 <= f_out_hz <= 400e6:
        raise ValueError(f"an ECP5 PLL output must be between 3.125 and 400 MHz, not {f_out_hz / 1e6:g} MHz")
    best = None
    for clki in range(1, 129):
        f_pfd = f_in_hz / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            f_out = f_pfd * clkfb
            for clkop in range(1, 129):
                if 400e6 <= f_out * clkop <= 800e6:
                    # nearest frequency first, then the VCO nearest the middle of its range
                    key = (round(abs(f_out - f_out_hz)), abs(f_out * clkop - 600e6))
                    if best is None or key < best[0]:
                        best = (key, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                                      "f_out_hz": f_out, "f_vco_hz": f_out * clkop})
    if best is None or best[0][0] > tolerance * f_out_hz:
        near = "none" if best is None else f"{best[1]['f_out_hz'] / 1e6:.4f} MHz"
        raise ValueError(f"no ECP5 PLL setting gives {f_out_hz / 1e6:g} MHz from {f_in_hz / 1e6:g} MHz "
                         f"within {tolerance:.1%} (nearest: {near})")
    return best[1]


class BoardTop(Elaboratable):
    """``uart`` 0 of the platform -> :class:`UARTBridge` around ``dut``; LED 0 shows 'running'.

    By default the sync domain is the board oscillator (amaranth-boards' default clock and reset
    synchronizer), so the design runs at the board clock; the report's Fmax says how much
    faster a PLL could run it. ``pll`` (``ecp5_pll_config``'s dict, ECP5 boards only) instead
    runs the sync domain from an ``EHXPLLL`` fed by the board oscillator, held in reset until the
    PLL locks (for a design whose Fmax is below the board clock, e.g. the engine).
    """

    def __init__(self, dut: wiring.Component, *, baud: int = DEFAULT_BAUD, in_depth: int = 64,
                 out_depth: int = 64, pll: dict | None = None):
        baud = operator.index(baud)
        if not 300 <= baud <= 3_000_000:
            raise ValueError(f"baud must be between 300 and 3000000, not {baud}")
        self.baud = baud
        self.dut, self.in_depth, self.out_depth = dut, in_depth, out_depth
        self.pll = pll
        # The bridge (and its port table) exists before the platform gives the clock rate.
        self._core = None

    def divisor(self, clk_hz: float) -> int:
        return round(clk_hz / self.baud)

    def core(self, clk_hz: float) -> UARTBridge:
        if self._core is None:
            self._core = UARTBridge(self.dut, divisor=self.divisor(clk_hz), in_depth=self.in_depth,
                                    out_depth=self.out_depth)
        return self._core

    def clock_hz(self, platform) -> float:
        """The sync domain's frequency: the PLL's output, or the board clock."""
        return self.pll["f_out_hz"] if self.pll else platform.default_clk_frequency

    def _pll_domain(self, m, platform):
        p = self.pll
        clk_in = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_in)
        if platform.default_rst is not None:
            m.submodules.rst_buf = rst_buf = io.Buffer("i", platform.request(platform.default_rst, dir="-"))
            rst_i = rst_buf.i
        else:
            rst_i = Const(0)
        clk_out, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1,
            p_CLKOP_FPHASE=0,
            a_FREQUENCY_PIN_CLKI=f"{platform.default_clk_frequency / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p['f_out_hz'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk_out, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(clk_out)
        m.submodules.reset_sync = ResetSynchronizer(rst_i | ~locked, domain="sync")
        # No constraint of our own on clk_out: nextpnr derives the PLL output's from the EHXPLLL's
        # dividers and the oscillator's constraint ("Derived frequency constraint of 15.0 MHz").

    def elaborate(self, platform):
        m = Module()
        if self.pll:
            self._pll_domain(m, platform)
        m.submodules.core = core = self.core(self.clock_hz(platform))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_buf = led_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx), led_buf.o.eq(core.running)]
        return m
