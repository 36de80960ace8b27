"""Element aligner of the dot-product PE: one lane's exact product, element exponents only."""

from __future__ import annotations

from amaranth import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.formats import MLSFormat

from .layout import field_width

__all__ = ["ElementAligner"]


class ElementAligner(wiring.Component):
    """Combinational ``p = (-1)**sign * (product << ((max(e_a,1) - 1) + (max(e_w,1) - 1)))``.

    This is the lane product of docs/numerics.md §3.1: the group exponents are left out (one ``GroupShifter``
    applies them to the whole beat), so the shift range is only
    ``fmt_a.elem_product_shift_max(fmt_w) = (2**E_a - 2) + (2**E_w - 2)`` and ``p`` is
    ``fmt_a.elem_product_bits(fmt_w)`` wide (both from ``model.formats.MLSFormat``).

    Members
    -------
    product : In(fmt_a.sig_product_bits(fmt_w))
        ``sig_a * sig_w`` from the ``SignificandMultiplier``.
    sign : In(1)
    a_exp : In(E_a); w_exp : In(E_w)
        The element exponent fields (one unused bit for E = 0).
    value : Out(signed(fmt_a.elem_product_bits(fmt_w)))
    """

    def __init__(self, fmt_a: MLSFormat, fmt_w: MLSFormat):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        for name, fmt in (("fmt_a", fmt_a), ("fmt_w", fmt_w)):
            if not isinstance(fmt, MLSFormat):
                raise TypeError(f"{name} must be an MLSFormat, not {fmt!r}")
        self._fmt_a, self._fmt_w = fmt_a, fmt_w
        super().__init__({
            "product": In(fmt_a.sig_product_bits(fmt_w)),
            "sign": In(1),
            "a_exp": In(field_width(fmt_a.exp_bits)),
            "w_exp": In(field_width(fmt_w.exp_bits)),
            "value": Out(signed(fmt_a.elem_product_bits(fmt_w))),
        })
        del self._MustUse__silence

    @staticmethod
    def max_magnitude(fmt_a: MLSFormat, fmt_w: MLSFormat) -> int:
        """Largest ``|p|``: both significands at their maximum, both element exponents at the top."""
        return (fmt_a.max_sig * fmt_w.max_sig) << fmt_a.elem_product_shift_max(fmt_w)

    @property
    def fmt_a(self) -> MLSFormat:
        return self._fmt_a

    @property
    def fmt_w(self) -> MLSFormat:
        return self._fmt_w

    @staticmethod
    def _offset(exp, fmt: MLSFormat):
        if not fmt.exp_bits:
            return 0
        return Mux(exp == 0, 0, exp[:fmt.exp_bits] - 1)  # max(e, 1) - 1

    def elaborate(self, platform):
        m = Module()
        shift = (self._offset(self.a_exp, self._fmt_a) + self._offset(self.w_exp, self._fmt_w))
        if isinstance(shift, int):  # two fixed-point formats: no shift at all
            magnitude = self.product
        else:
            magnitude = self.product << shift[:self._fmt_a.elem_product_shift_max(self._fmt_w).bit_length()]
        m.d.comb += self.value.eq(Mux(self.sign, -magnitude, magnitude))
        return m
