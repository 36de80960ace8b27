"""Shared helpers of the PE and array testbenches: operand packing from the RTL layouts, and
golden integers from ``model/`` (MLSTensor.to_int, model.arith.accumulate)."""

from __future__ import annotations

import torch

from hw.pe.layout import operand_layout
from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor

__all__ = ["OperandPacker", "element_ints", "to_signed"]


class OperandPacker:
    """Packs (sign, exp, man, g) into the flat bits of ``operand_layout(fmt)`` using its offsets."""

    def __init__(self, fmt: MLSFormat):
        layout = operand_layout(fmt)
        elem = layout["elem"]
        base = elem.offset
        self.width = layout.size
        self.off_man = base + elem.shape["man"].offset
        self.off_exp = base + elem.shape["exp"].offset
        self.off_sign = base + elem.shape["sign"].offset
        self.off_g = layout["g"].offset

    def pack(self, t: MLSTensor) -> torch.Tensor:
        """int64 tensor of packed operands, same shape as ``t``."""
        return ((t.man.to(torch.int64) << self.off_man) | (t.exp.to(torch.int64) << self.off_exp)
                | (t.sign.to(torch.int64) << self.off_sign) | (t.group_exp_per_element().to(torch.int64) << self.off_g))


def element_ints(fmt: MLSFormat, codes: torch.Tensor, group_exp: torch.Tensor, axis: int = -1) -> MLSTensor:
    """An MLSTensor with one group exponent per element (``Grouping.blocks(1, axis)``)."""
    return MLSTensor.from_codes(codes, group_exp, 1.0, fmt, Grouping.blocks(1, axis))


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
