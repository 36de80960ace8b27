"""Named hardware configurations for ``python -m hw.build --preset NAME`` (``--list`` prints them)."""

from __future__ import annotations

from dataclasses import dataclass

from model.formats import MLSFormat
from model.grouping import Grouping

__all__ = ["Preset", "PRESETS", "DEFAULT_PRESET", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """A format with the grouping its operands are quantized with, and an array size.

    The grouping does not change the gateware (every operand carries its own g); it is recorded
    in the manifest so a host knows how to feed the array.
    """

    name: str
    fmt: str
    grouping: str
    rows: int = 8
    cols: int = 8
    description: str = ""

    def __post_init__(self) -> None:
        MLSFormat.parse(self.fmt)
        Grouping.parse(self.grouping)


PRESETS = {p.name: p for p in (
    Preset("e2m1g3", "e2m1g3", "channel", description="MLS paper default: FP4 (E2M1) elements, 3-bit channel-group exponent"),
    Preset("e3m3g3", "e3m3g3", "channel", description="7-bit elements with more range and precision"),
    Preset("e2m1g3-16x16", "e2m1g3", "channel", 16, 16, description="the default format on a 16x16 array"),
    Preset("mx-e2m1", "e2m1g3", "block:32",
           description="MX-style: E2M1 elements, one group exponent per 32 consecutive elements along K"),
)}

DEFAULT_PRESET = "e2m1g3"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
