"""``amaranth.lib.data`` layouts of the PE's operands, derived from an ``MLSFormat``.

Zero-width fields (E = 0 or G = 0) are kept one bit wide so every Verilog port exists; the extra
bit is ignored by the datapath (a fixed-point element has no exponent, G = 0 means g = 0). The
control that travels with the operands is ``hw.pe.signature.control_layout()``.
"""

from __future__ import annotations

from amaranth.lib import data

from model.formats import MLSFormat

__all__ = ["element_layout", "operand_layout", "beat_layout", "field_width"]


def field_width(bits: int) -> int:
    """Port width of a field of ``bits`` bits (at least 1)."""
    return max(bits, 1)


def element_layout(fmt: MLSFormat) -> data.StructLayout:
    """One element code: ``man`` (M bits), ``exp`` (E bits), ``sign`` (1), LSB first like ``MLSTensor.codes()``."""
    return data.StructLayout({"man": field_width(fmt.man_bits), "exp": field_width(fmt.exp_bits), "sign": 1})


def operand_layout(fmt: MLSFormat) -> data.StructLayout:
    """An element together with its group exponent ``g`` (G bits)."""
    return data.StructLayout({"elem": element_layout(fmt), "g": field_width(fmt.group_bits)})


def beat_layout(fmt: MLSFormat, lanes: int) -> data.StructLayout:
    """One beat of a dot-product PE (docs/numerics.md §3.1): ``lanes`` elements of one chunk (``elems``,
    lane 0 at the LSB end) and the chunk's one group exponent ``g``."""
    return data.StructLayout({"elems": data.ArrayLayout(element_layout(fmt), lanes), "g": field_width(fmt.group_bits)})
