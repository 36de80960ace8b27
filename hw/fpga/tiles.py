"""Host-side GEMM tiles for the systolic array of ``hw.array`` as bridge words (A as ``a`` beats,
W as ``w`` beats, results from ``c`` beats).

The words are packed by ``hw.layout_pack`` from the same layout objects the RTL uses, so a layout
change in ``hw/pe/layout.py`` or ``hw/array`` cannot silently desynchronize the host.
"""

from __future__ import annotations

from amaranth.lib import data

from ..layout_pack import pack, unpack

__all__ = ["array_tile_words", "array_results"]


def _operand(t, g, idx):
    return {"elem": {"man": int(t.man[idx]), "exp": int(t.exp[idx]), "sign": int(t.sign[idx])},
            "g": int(g[idx])}


def _raw(shape, code):
    """A raw operand code (FP32 bits, FP8 code, or a signed INT8 value) as a field value of ``shape``."""
    if isinstance(shape, data.Layout):
        return unpack(shape, int(code))   # the code's bits, field by field
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
