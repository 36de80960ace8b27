"""``amaranth.lib.data`` layouts for the binary floating-point formats of ``model.floats``."""

from __future__ import annotations

from amaranth.lib import data

from model.floats import FloatFormat

__all__ = ["float_layout", "leading_zeros"]


def float_layout(fmt: FloatFormat) -> data.StructLayout:
    """Mantissa in the low bits, then exponent, then sign: the IEEE bit order of the code."""
    if not isinstance(fmt, FloatFormat):
        raise TypeError(f"fmt must be a FloatFormat, not {fmt!r}")
    return data.StructLayout({"man": fmt.man_bits, "exp": fmt.exp_bits, "sign": 1})


def leading_zeros(m, value, width: int):
    """Return a signal counting the leading zeros of ``value[:width]`` (``width`` when zero)."""
    from amaranth.hdl import Signal

    lz = Signal(range(width + 1))
    m.d.comb += lz.eq(width)
    # Later assignments win, so the highest set bit decides.
    for i in range(width):
        with m.If(value[i]):
            m.d.comb += lz.eq(width - 1 - i)
    return lz
