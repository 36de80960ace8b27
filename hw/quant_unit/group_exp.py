"""Per-group exponent g from the group's largest |y|, exactly, from exponent and mantissa fields."""

import numpy as np
from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32
from model.formats import MLSFormat

from ..baseline.layout import float_layout
from ..layout_pack import unpack

__all__ = ["GroupExponent", "fp32_fields"]

_FP32 = float_layout(FP32)


def fp32_fields(value: float) -> tuple[int, int]:
    """(biased exponent field, mantissa field) of ``value`` rounded to FP32."""
    fields = unpack(_FP32, int(np.float32(value).view(np.uint32)))
    return fields["exp"], fields["man"]


class GroupExponent(wiring.Component):
    """docs/numerics.md §2 step 4: the largest g in [0, 2**G - 1] with ``gmax * 2**g <= elem_max``
    (combinational).

    With ``gmax = 1.mg * 2**eg`` and ``elem_max = 1.me * 2**ee`` (FP32 fields) the condition is
    ``(eg + g, mg) <= (ee, me)`` lexicographically, so ``g = ee - eg - (mg > me)`` clamped to
    [0, 2**G - 1]; a zero group takes the clamp 2**G - 1 (``model.quantize.group_exponent``).

    Members
    -------
    gmax : In(31)
        Magnitude bits of the group's largest |y| (an FP32 normal number or +0).
    g : Out(G)
    """

    def __init__(self, fmt):
        self._fmt = MLSFormat.parse(fmt)
        if self._fmt.group_bits < 1:
            raise ValueError(f"GroupExponent needs group_bits >= 1, got {self._fmt}")
        super().__init__({"gmax": In(FP32.bits - 1), "g": Out(self._fmt.group_bits)})

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        max_exp, max_man = fp32_fields(fmt.elem_max)
        gmax = _FP32(Cat(self.gmax, Const(0, 1)))   # a magnitude: the FP32 fields with sign 0
        exp, man = gmax.exp, gmax.man
        diff = Signal(signed(10))
        m.d.comb += diff.eq(max_exp - exp - (man > max_man))
        with m.If(exp == 0):
            m.d.comb += self.g.eq(fmt.max_group_exp)
        with m.Elif(diff < 0):
            m.d.comb += self.g.eq(0)  # a max above elem_max (one FP32 rounding of y) saturates
        with m.Elif(diff > fmt.max_group_exp):
            m.d.comb += self.g.eq(fmt.max_group_exp)
        with m.Else():
            m.d.comb += self.g.eq(diff)
        return m
