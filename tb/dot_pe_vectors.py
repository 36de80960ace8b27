"""Shared helpers of the dot-product PE testbenches: tiles built as ``model.beats`` operands and
packed by the model's beat packer, beats packed into the RTL's ``hw.pe.beat_layout`` bits, and the
golden results from ``model.arith`` (``beat_accumulate``; ``accumulate`` for the per-product
counterfactual)."""

from __future__ import annotations

import random

import torch

from hw.pe.layout import beat_layout
from model.arith import accumulate, beat_accumulate, lane_products
from model.beats import BeatStream, GemmOperand, pack_beats
from model.formats import MLSFormat

__all__ = ["BeatPacker", "Tile", "random_codes", "split_code"]


def split_code(fmt: MLSFormat, code: int) -> tuple[int, int, int]:
    """(sign, exp, man) of an element code ``s << (E+M) | e << M | m`` (``MLSTensor.codes()``)."""
    man = code & ((1 << fmt.man_bits) - 1)
    exp = (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    return code >> (fmt.exp_bits + fmt.man_bits), exp, man


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
        bits = int(g) << self._g
        for lane, code in enumerate(codes):
            sign, exp, man = split_code(self.fmt, int(code))
            bits |= ((man << self._man) | (exp << self._exp) | (sign << self._sign)) << (
                self._elem_base + lane * self._elem_size)
        return bits


class Tile:
    """One output of one PE: an A line and a W line of K elements in chunks, packed into beats
    by ``model.beats.pack_beats``.

    ``chunks`` holds ``(a_codes, w_codes, g_a, g_w, new_w_group)``: a chunk where
    ``new_w_group`` is false keeps the previous chunk's W group (so only A's group changes
    there: the packer must split on either operand's change).
    """

    def __init__(self, fmt_a: MLSFormat, fmt_w: MLSFormat, lanes: int, chunks):
        a_codes, a_g, a_id, w_codes, w_g, w_id = [], [], [], [], [], []
        w_group = -1
        for index, (a, w, g_a, g_w, new_w_group) in enumerate(chunks):
            if len(a) != len(w) or not a:
                raise ValueError(f"chunk {index}: {len(a)} A codes, {len(w)} W codes")
            if new_w_group or w_group < 0:
                w_group += 1
            elif g_w != w_g[-1]:
                raise ValueError(f"chunk {index} keeps W's group but changes g_w")
            a_codes += a
            w_codes += w
            a_g += [g_a] * len(a)
            w_g += [g_w] * len(w)
            a_id += [index] * len(a)
            w_id += [w_group] * len(w)
        line = lambda values: torch.tensor([values], dtype=torch.int64)  # noqa: E731
        self.a = GemmOperand(fmt_a, line(a_codes), line(a_g), line(a_id))
        self.w = GemmOperand(fmt_w, line(w_codes), line(w_g), line(w_id))
        self.chunk_lengths = [len(c[0]) for c in chunks]
        self.stream: BeatStream = pack_beats(self.a, self.w, lanes)

    @property
    def beats(self) -> list[tuple[list[int], list[int], int, int]]:
        """``(a_codes, w_codes, g_a, g_w)`` of every beat, in stream order."""
        s = self.stream
        return [(s.a_codes[b, 0].tolist(), s.w_codes[b, 0].tolist(), int(s.a_group[b, 0]), int(s.w_group[b, 0]))
                for b in range(s.beats)]

    def reference(self, acc_bits: int) -> tuple[int, int]:
        """Golden ``(acc, overflow)``: ``model.arith.beat_accumulate`` (saturate per beat)."""
        acc, ovf = beat_accumulate(self.stream, acc_bits)
        return int(acc[0, 0]), int(ovf[0, 0])

    def exact_sum(self) -> int:
        """``sum_k int(a_k) * int(w_k)`` straight from the operands, independent of the beats."""
        return int((self.a.to_int() * self.w.to_int()).sum())

    def per_product_reference(self, acc_bits: int) -> tuple[int, int]:
        """What saturating after every *product* (lanes in order) would give instead."""
        s, fa, fw = self.stream, self.stream.fmt_a, self.stream.fmt_w
        shift = (fa.max_group_exp - s.a_group[:, 0]) + (fw.max_group_exp - s.w_group[:, 0])
        products = lane_products(s.a_codes[:, 0], s.w_codes[:, 0], fa, fw) << shift[:, None]
        acc, ovf = accumulate(products.reshape(1, -1), acc_bits)
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
