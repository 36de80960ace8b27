"""Shared helpers of the dot-product PE testbenches: beats packed from ``hw.pe.beat_layout``
offsets, and golden integers from ``model/`` (``MLSFormat.int_value``, ``model.arith.accumulate``)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from hw.pe.layout import beat_layout
from model.arith import accumulate
from model.formats import MLSFormat

__all__ = ["Beat", "BeatPacker", "IntTable", "beats_of_chunks", "tile_reference"]


def split_code(fmt: MLSFormat, code: int) -> tuple[int, int, int]:
    """(sign, exp, man) of an element code ``s << (E+M) | e << M | m`` (``MLSTensor.codes()``)."""
    man = code & ((1 << fmt.man_bits) - 1)
    exp = (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    return code >> (fmt.exp_bits + fmt.man_bits), exp, man


class IntTable:
    """``int(code, g)`` of DESIGN §3 for every code and g, from ``MLSFormat.int_value``."""

    def __init__(self, fmt: MLSFormat):
        self.fmt = fmt
        self._table = [[fmt.int_value(*split_code(fmt, code), g) for g in range(fmt.max_group_exp + 1)]
                       for code in range(fmt.code_count)]

    def __call__(self, code: int, g: int) -> int:
        return self._table[code][g]


class BeatPacker:
    """Packs ``lanes`` element codes and one g into the flat bits of ``beat_layout(fmt, lanes)``."""

    def __init__(self, fmt: MLSFormat, lanes: int):
        self.fmt, self.lanes = fmt, lanes
        layout = beat_layout(fmt, lanes)
        elems = layout["elems"]
        elem = elems.shape.elem_shape
        self.width = layout.size
        self._elem_base, self._elem_size = elems.offset, elem.size
        self._man, self._exp, self._sign = (elem[name].offset for name in ("man", "exp", "sign"))
        self._g = layout["g"].offset

    def pack(self, codes, g: int) -> int:
        if len(codes) != self.lanes:
            raise ValueError(f"a beat has {self.lanes} lanes, got {len(codes)} codes")
        bits = g << self._g
        for lane, code in enumerate(codes):
            sign, exp, man = split_code(self.fmt, code)
            bits |= ((man << self._man) | (exp << self._exp) | (sign << self._sign)) << (
                self._elem_base + lane * self._elem_size)
        return bits


@dataclass(frozen=True)
class Beat:
    """One beat: the A and W codes of every lane and the chunk's group exponents."""
    a_codes: tuple[int, ...]
    w_codes: tuple[int, ...]
    g_a: int
    g_w: int


def beats_of_chunks(chunks, lanes: int) -> list[Beat]:
    """DESIGN §3.1 beat order: chunks in order, inside a chunk lanes 0..L-1; a chunk's last beat
    is padded with zero codes; no beat mixes two chunks. ``chunks`` holds
    ``(a_codes, w_codes, g_a, g_w)`` with equal-length code lists."""
    beats = []
    for a_codes, w_codes, g_a, g_w in chunks:
        for start in range(0, len(a_codes), lanes):
            a = list(a_codes[start:start + lanes])
            w = list(w_codes[start:start + lanes])
            pad = lanes - len(a)
            beats.append(Beat(tuple(a + [0] * pad), tuple(w + [0] * pad), g_a, g_w))
    return beats


def beat_values(beats, ints_a: IntTable, ints_w: IntTable) -> list[int]:
    """Each beat's exact ``sum_l int(a_l, g_a) * int(w_l, g_w)``."""
    return [sum(ints_a(a, b.g_a) * ints_w(w, b.g_w) for a, w in zip(b.a_codes, b.w_codes)) for b in beats]


def tile_reference(beats, ints_a: IntTable, ints_w: IntTable, acc_bits: int) -> tuple[int, int]:
    """Golden ``(acc, overflow)`` of one tile: saturate after each beat's add (DESIGN §3.1)."""
    acc, ovf = accumulate(torch.tensor([beat_values(beats, ints_a, ints_w)], dtype=torch.int64), acc_bits)
    return int(acc[0]), int(ovf[0])


def per_product_reference(beats, ints_a: IntTable, ints_w: IntTable, acc_bits: int) -> tuple[int, int]:
    """What a PE that saturates after every *product* would give (the scalar PE's order)."""
    products = [ints_a(a, b.g_a) * ints_w(w, b.g_w) for b in beats for a, w in zip(b.a_codes, b.w_codes)]
    acc, ovf = accumulate(torch.tensor([products], dtype=torch.int64), acc_bits)
    return int(acc[0]), int(ovf[0])


def random_codes(rng: random.Random, fmt: MLSFormat, n: int, style: str) -> list[int]:
    """``n`` codes: ``uniform``, ``max`` (largest magnitude, one sign), ``sparse`` (zeros, ±0 and
    the smallest subnormal mixed with random codes)."""
    top = 1 << (fmt.exp_bits + fmt.man_bits)
    if style == "uniform":
        return [rng.randrange(fmt.code_count) for _ in range(n)]
    if style == "max":
        sign = rng.randrange(2) * top
        return [sign | (top - 1)] * n
    if style == "sparse":
        return [rng.choice([0, top, 1, top | 1, rng.randrange(fmt.code_count)]) for _ in range(n)]
    raise ValueError(f"unknown code style {style!r}")
