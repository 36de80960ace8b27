"""Shared helpers of the PE and array testbenches: operand packing from the RTL layouts, and
golden integers from ``model/`` (MLSTensor.to_int, model.arith.accumulate)."""

from __future__ import annotations

import torch

from hw.layout_pack import pack_columns
from hw.pe.layout import operand_layout
from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor

__all__ = ["OperandPacker", "element_ints", "to_signed"]


class OperandPacker:
    """Packs the elements of an MLSTensor (sign, exp, man and each element's g) into the flat bits
    of ``operand_layout(fmt)``, by ``hw.layout_pack.pack_columns`` from that layout."""

    def __init__(self, fmt: MLSFormat):
        self.layout = operand_layout(fmt)
        self.width = self.layout.size

    def pack(self, t: MLSTensor) -> torch.Tensor:
        """int64 tensor of packed operands, same shape as ``t``."""
        return pack_columns(self.layout, {"elem.man": t.man.to(torch.int64), "elem.exp": t.exp.to(torch.int64),
                                          "elem.sign": t.sign.to(torch.int64),
                                          "g": t.group_exp_per_element().to(torch.int64)})


def element_ints(fmt: MLSFormat, codes: torch.Tensor, group_exp: torch.Tensor, axis: int = -1) -> MLSTensor:
    """An MLSTensor with one group exponent per element (``Grouping.blocks(1, axis)``)."""
    return MLSTensor.from_codes(codes, group_exp, 1.0, fmt, Grouping.blocks(1, axis))


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
