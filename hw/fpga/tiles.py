"""Host-side packing of bridge words from ``amaranth.lib.data`` layouts, and MLS GEMM tiles for the
systolic array of ``hw.array`` (A as ``a`` beats, W as ``w`` beats, results from ``c`` beats).

The packing reads field offsets from the same layout objects the RTL uses, so a layout change in
``hw/pe/layout.py`` or ``hw/array`` cannot silently desynchronize the host.
"""

from __future__ import annotations

from amaranth import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "array_tile_words", "array_results"]


def _width(shape) -> int:
    return data.Layout.cast(shape).size if isinstance(shape, data.Layout) else Shape.cast(shape).width


def pack(layout, value) -> int:
    """``value`` (int, dict for a struct, list for an array layout) as a raw bit pattern."""
    if isinstance(layout, data.ArrayLayout):
        if len(value) != layout.length:
            raise ValueError(f"array layout of {layout.length} elements, got {len(value)} values")
        w = _width(layout.elem_shape)
        return sum(pack(layout.elem_shape, v) << (i * w) for i, v in enumerate(value))
    if isinstance(layout, data.Layout):
        names = {name for name, _ in layout}
        if set(value) - names:
            raise ValueError(f"no field(s) {sorted(set(value) - names)} in {layout!r}")
        return sum(pack(field.shape, value.get(name, 0)) << field.offset for name, field in layout)
    shape = Shape.cast(layout)
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)
    if not lo <= value < hi:
        raise ValueError(f"{value} does not fit {shape}")
    return value & ((1 << shape.width) - 1)


def unpack(layout, bits: int):
    """Inverse of :func:`pack` (signed fields come back negative)."""
    if isinstance(layout, data.ArrayLayout):
        w = _width(layout.elem_shape)
        return [unpack(layout.elem_shape, bits >> (i * w)) for i in range(layout.length)]
    if isinstance(layout, data.Layout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    shape = Shape.cast(layout)
    v = bits & ((1 << shape.width) - 1)
    return v - (1 << shape.width) if shape.signed and v >> (shape.width - 1) else v


def _operand(t, g, idx):
    return {"elem": {"man": int(t.man[idx]), "exp": int(t.exp[idx]), "sign": int(t.sign[idx])},
            "g": int(g[idx])}


def _raw(shape, code):
    """A raw operand code (FP32 bits, FP8 code, or a signed INT8 value) as a field value of ``shape``."""
    if isinstance(shape, data.Layout):
        return unpack(shape, int(code) & ((1 << _width(shape)) - 1))
    return int(code)


def array_tile_words(array, a, w) -> tuple[list[int], list[int]]:
    """Bridge words for one tile: ``a`` (MLSTensor [R, K]) and ``w`` (MLSTensor [K, C]).

    For an array of baseline PEs (``array.is_baseline``), ``a`` and ``w`` are 2-D arrays of raw
    codes instead: FP32 bit patterns, FP8 codes, or signed INT8 values.
    Returns ``(a_words, w_words)``, K words each, for the array's ``a`` and ``w`` stream ports.
    """
    R, K = a.shape
    K2, C = w.shape
    if (R, C) != (array.rows, array.cols) or K != K2:
        raise ValueError(f"tile {a.shape} x {w.shape} does not match a {array.rows}x{array.cols} array")
    if K > array.max_k:
        raise ValueError(f"K = {K} exceeds the array's max_k = {array.max_k}")
    a_layout = array.signature.members["a"].signature.members["payload"].shape
    w_layout = array.signature.members["w"].signature.members["payload"].shape
    if array.is_baseline:
        sa, sw = array.a_shape, array.w_shape
        a_words = [pack(a_layout, {"data": [_raw(sa, a[i][k]) for i in range(R)], "last": int(k == K - 1)})
                   for k in range(K)]
        w_words = [pack(w_layout, {"data": [_raw(sw, w[k][j]) for j in range(C)]}) for k in range(K)]
        return a_words, w_words
    ga, gw = a.group_exp_per_element(), w.group_exp_per_element()
    a_words = [pack(a_layout, {"data": [_operand(a, ga, (i, k)) for i in range(R)], "last": int(k == K - 1)})
               for k in range(K)]
    w_words = [pack(w_layout, {"data": [_operand(w, gw, (k, j)) for j in range(C)]}) for k in range(K)]
    return a_words, w_words


def array_results(array, c_words: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    """``(C, overflow)`` of one tile from its R ``c`` words (row 0 first); checks the ``last`` flags.

    C holds signed integers (MLS, INT8) or, for the float baselines, FP32 bit patterns."""
    if len(c_words) != array.rows:
        raise ValueError(f"a tile has {array.rows} result rows, got {len(c_words)} words")
    layout = array.signature.members["c"].signature.members["payload"].shape
    rows = [unpack(layout, word) for word in c_words]
    lasts = [r["last"] for r in rows]
    if lasts != [0] * (array.rows - 1) + [1]:
        raise ValueError(f"result rows out of step: last flags {lasts}")
    elem = array.result_shape if array.is_baseline else None
    if isinstance(elem, data.Layout):   # FP32 results: the raw bit pattern of each word
        data_rows = [[pack(elem, x) for x in r["data"]] for r in rows]
    else:
        data_rows = [r["data"] for r in rows]
    return data_rows, [[r["overflow"] >> j & 1 for j in range(array.cols)] for r in rows]
