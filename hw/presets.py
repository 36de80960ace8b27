"""Named hardware configurations for ``python -m hw.build --preset NAME`` (``--list`` prints them)."""

from __future__ import annotations

from dataclasses import dataclass

from model.formats import MLSFormat
from model.grouping import Grouping

__all__ = ["Preset", "PRESETS", "DEFAULT_PRESET", "DEFAULT_ARRAY_PRESET", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """A format with the grouping its operands are quantized with, an array size and the lanes
    per beat.

    The grouping does not change the gateware (every operand carries its own g); it is recorded
    in the manifest so a host knows how to feed the array. ``pe`` other than ``"mls"`` is an
    array of baseline PEs (``hw.array.SystolicArray(pe=...)``): no MLS format, no grouping.
    ``lanes`` > 1 is an array of L-lane dot-product PEs (``SystolicArray(..., lanes=L)``); 1 is
    the scalar PE.
    """

    name: str
    fmt: str | None
    grouping: str | None
    rows: int = 8
    cols: int = 8
    description: str = ""
    pe: str = "mls"
    lanes: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or self.lanes < 1:
            raise ValueError(f"preset {self.name!r}: lanes must be an int >= 1, got {self.lanes!r}")
        if self.pe == "mls":
            MLSFormat.parse(self.fmt)
            Grouping.parse(self.grouping)
        elif self.fmt is not None or self.grouping is not None:
            raise ValueError(f"preset {self.name!r}: a baseline PE ({self.pe!r}) takes no format or grouping")

    @property
    def what(self) -> str:
        """The element format, or the baseline PE kind."""
        return self.fmt if self.pe == "mls" else f"pe={self.pe}"


PRESETS = {p.name: p for p in (
    Preset("e2m1g3", "e2m1g3", "channel", description="MLS paper default: FP4 (E2M1) elements, 3-bit channel-group exponent"),
    Preset("e3m3g3", "e3m3g3", "channel", description="7-bit elements with more range and precision"),
    Preset("e2m1g3-16x16", "e2m1g3", "channel", 16, 16, description="the default format on a 16x16 array"),
    *(Preset(f"e2m1g3-l{lanes}", "e2m1g3", "channel", lanes=lanes,
             description=(f"the default format with {lanes}-lane dot-product PEs (a beat: {lanes} elements of one "
                          f"chunk + one g)" if lanes > 1 else "the default format, one lane: the scalar MLSPE "
                          "array (the same as e2m1g3)"))
      for lanes in (1, 4, 9, 16)),
    Preset("mx-e2m1", "e2m1g3", "block:32",
           description="MX-style: E2M1 elements, one group exponent per 32 consecutive elements along K"),
    Preset("fp32-8x8", None, None, pe="fp32",
           description="baseline: the same array of FP32 multiply-add PEs (FP32 accumulate, RNE, DAZ/FTZ)"),
    Preset("fp8-e4m3-8x8", None, None, pe="fp8-e4m3",
           description="baseline: FP8 E4M3 x E4M3 PEs, exact product, FP32 accumulate"),
    Preset("fp8-e5m2-8x8", None, None, pe="fp8-e5m2",
           description="baseline: FP8 E5M2 x E5M2 PEs, exact product, FP32 accumulate"),
    Preset("int8-8x8", None, None, pe="int8",
           description="baseline: INT8 x INT8 PEs, INT32 accumulate (wraps)"),
    Preset("fp8-e4m3-l16", None, None, pe="fp8-e4m3", lanes=16,
           description="baseline: 16-lane FP8 E4M3 dot-product PEs, exact beat sum, one FP32 rounding per beat"),
    Preset("int8-l16", None, None, pe="int8", lanes=16,
           description="baseline: 16-lane INT8 dot-product PEs, wrapping INT32 accumulate"),
)}

#: The scalar e2m1g3 8x8 array: the default of ``--target pe``, ``--target engine`` and of
#: ``--board`` (the board bridge streams one element per operand, and an 8x8 array of 9-lane PEs
#: would need 576 of the ULX3S's 156 DSP blocks).
DEFAULT_PRESET = "e2m1g3"

#: The default of ``python -m hw.build`` (the array target): the configuration the design-space
#: sweep recommends for ResNet-20 (``reports/dse.md``: e2m1g3, L = 9, Gc = 1, the lowest energy per
#: training step whose GEMM SNR reaches the scalar e2m1g3's). The accumulator stays exact for
#: ``--max-k`` (the sweep's 8-bit-narrower one is ``--acc-bits``; docs/hardware.md says why).
DEFAULT_ARRAY_PRESET = "e2m1g3-l9"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
