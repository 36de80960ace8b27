"""Vectorized twins of the array testbench's per-tile helpers, for the long regression
(``python -m tb.regression``) and the fast side of ``bench/bench_rtl.py``.

A *batch* is N random tiles of one shape (same K and chunk length, so the same beat structure):

- ``random_batch``: codes and per-chunk group exponents, drawn with torch;
- ``batch_beats``: the beats ``model.beats.pack_beats`` makes of each tile (the gather of one
  tile's ``lane_k`` applied to all N);
- ``batch_golden``: ``model.arith.beat_accumulate`` over a batch dimension (the same
  ``lane_products`` and saturating shifted add of ``model.arith``; all beats' lane sums at once,
  then the sequential saturating add over beats);
- ``pack_payloads`` / ``expected_rows``: the A/W payload words and the expected ``c`` rows as
  binary strings (MSB first), the form cocotb's GPI writes and reads without conversion.

``check_twins`` compares one tile of a batch with the readable per-tile references
(``pack_beats``, ``beat_accumulate``, ``tb.dot_pe_vectors.BeatPacker``); the regression calls
it on every batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from amaranth.hdl import Shape

from hw.pe.layout import beat_layout
from model.arith import _saturating_shifted_add, beat_accumulate, lane_products
from model.beats import GemmOperand, pack_beats
from model.formats import MLSFormat

__all__ = ["Batch", "random_batch", "batch_beats", "batch_golden", "LinePacker", "payload_bits", "pack_payloads",
           "expected_row_bits", "expected_rows", "decode_row", "check_twins"]


@dataclass
class Batch:
    """N tiles of R A lines and C W lines of K codes; ``*_g [N, lines, chunks]`` per chunk."""

    fmt_a: MLSFormat
    fmt_w: MLSFormat
    k: int
    k_chunk: int
    a_codes: torch.Tensor
    a_g: torch.Tensor
    w_codes: torch.Tensor
    w_g: torch.Tensor

    @property
    def tiles(self) -> int:
        return self.a_codes.shape[0]

    def operand(self, n: int, side: str) -> GemmOperand:
        """Tile ``n``'s A or W lines as a ``GemmOperand`` (for the per-tile references)."""
        fmt, codes, g = (self.fmt_a, self.a_codes, self.a_g) if side == "a" else (self.fmt_w, self.w_codes, self.w_g)
        ids = torch.arange(self.k) // self.k_chunk
        lines = codes.shape[1]
        return GemmOperand(fmt, codes[n].clone(), g[n][:, ids].clone(), ids.expand(lines, -1).clone())


def random_batch(gen: torch.Generator, fa: MLSFormat, fw: MLSFormat, tiles: int, rows: int, cols: int, k: int,
                 k_chunk: int, sparse: float = 0.0) -> Batch:
    """Uniform random codes (a fraction ``sparse`` replaced by ±0 and the smallest subnormals)
    and uniform random g per chunk."""
    chunks = -(-k // k_chunk)

    def codes(fmt, lines):
        c = torch.randint(fmt.code_count, (tiles, lines, k), generator=gen)
        if sparse:
            top = 1 << (fmt.exp_bits + fmt.man_bits)
            small = torch.tensor([0, top, 1, top | 1])[torch.randint(4, c.shape, generator=gen)]
            c = torch.where(torch.rand(c.shape, generator=gen) < sparse, small, c)
        return c

    def groups(fmt, lines):
        return torch.randint(fmt.max_group_exp + 1, (tiles, lines, chunks), generator=gen)

    return Batch(fa, fw, k, k_chunk, codes(fa, rows), groups(fa, rows), codes(fw, cols), groups(fw, cols))


def batch_beats(batch: Batch, lanes: int):
    """``(stream0, a_codes [N, beats, R, L], a_group [N, beats, R], w_codes, w_group)``:
    ``stream0`` is ``pack_beats`` of tile 0; its gather (``lane_k``, ``beat_chunk``) is applied to
    every tile (all tiles of a batch have the same chunk boundaries)."""
    stream0 = pack_beats(batch.operand(0, "a"), batch.operand(0, "w"), lanes)
    gather, pad = stream0.lane_k.clamp(min=0), stream0.lane_k < 0
    chunk = stream0.beat_chunk

    def side(codes, g):
        c = codes[:, :, gather].permute(0, 2, 1, 3)              # [N, beats, lines, L]
        c = torch.where(pad[None, :, None, :], torch.zeros_like(c), c)
        return c.contiguous(), g[:, :, chunk].permute(0, 2, 1).contiguous()  # [N, beats, lines]

    return (stream0,) + side(batch.a_codes, batch.a_g) + side(batch.w_codes, batch.w_g)


def _lane_values(codes: torch.Tensor, fmt: MLSFormat) -> torch.Tensor:
    """``lane_products(codes, 1.0)`` for one side: ``±sig * 2**(max(e, 1) - 1)``, int64."""
    magnitude = codes & ((1 << (fmt.exp_bits + fmt.man_bits)) - 1)
    exp, man = magnitude >> fmt.man_bits, magnitude & ((1 << fmt.man_bits) - 1)
    sig = torch.where(exp > 0, man + (1 << fmt.man_bits), man) if fmt.exp_bits else man
    value = sig << (exp.clamp(min=1) - 1)
    return torch.where((codes >> (fmt.exp_bits + fmt.man_bits)).bool(), -value, value)


def _beat_totals(fa: MLSFormat, fw: MLSFormat, a_codes, w_codes) -> torch.Tensor:
    """Lane sums ``Σ_l lane_products(a_l, w_l)`` of every beat, ``[N, beats, R, C]`` int64.

    The lanes' sum is a batched matrix product of the two sides' signed lane values. It runs
    in float64 where every partial sum is an integer below 2**53 (so the float sum is exact),
    which is the case for the formats in the presets; otherwise it is the int64 broadcast of
    ``lane_products`` itself."""
    lanes = a_codes.shape[-1]
    if fa.elem_product_bits(fw) + max(lanes - 1, 1).bit_length() <= 52:
        n, beats, r, _ = a_codes.shape
        c = w_codes.shape[2]
        va = _lane_values(a_codes, fa).to(torch.float64).reshape(n * beats, r, lanes)
        vw = _lane_values(w_codes, fw).to(torch.float64).reshape(n * beats, c, lanes)
        return torch.bmm(va, vw.transpose(1, 2)).to(torch.int64).reshape(n, beats, r, c)
    return lane_products(a_codes[:, :, :, None, :], w_codes[:, :, None, :, :], fa, fw).sum(-1)


def batch_golden(fa: MLSFormat, fw: MLSFormat, a_codes, a_group, w_codes, w_group, acc_bits: int):
    """``beat_accumulate`` of every tile of the batch: ``(acc [N, R, C], overflow [N, R, C])``.

    Where no partial sum can leave int64 and no prefix of the beats leaves the accumulator's
    range, the saturating per-beat add is the plain sum (a cumulative sum over beats shows
    which); otherwise it runs beat by beat as ``model.arith`` does."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    totals = _beat_totals(fa, fw, a_codes, w_codes)  # [N, beats, R, C]
    shifts = ((fa.max_group_exp - a_group)[:, :, :, None] + (fw.max_group_exp - w_group)[:, :, None, :])
    n, beats, r, c = totals.shape
    max_shift = fa.max_group_exp + fw.max_group_exp  # (max - g_a) + (max - g_w), g >= 0
    lanes = a_codes.shape[-1]
    bound_bits = fa.elem_product_bits(fw) + max(lanes - 1, 1).bit_length() + max_shift + max(beats, 1).bit_length()
    if bound_bits <= 62:
        prefix = torch.cumsum(totals << shifts, dim=1)
        if bool(((prefix >= lo) & (prefix <= hi)).all()):
            return prefix[:, -1] if beats else torch.zeros((n, r, c), dtype=torch.int64), \
                torch.zeros((n, r, c), dtype=torch.bool)
    acc = torch.zeros((n, r, c), dtype=torch.int64)
    overflow = torch.zeros((n, r, c), dtype=torch.bool)
    for beat in range(totals.shape[1]):
        acc, saturated = _saturating_shifted_add(acc, totals[:, beat], shifts[:, beat], lo, hi)
        overflow |= saturated
    return acc, overflow


class LinePacker:
    """The bit positions of ``hw.pe.beat_layout(fmt, lanes)`` (elements, lane 0 at the LSB end,
    each ``man | exp | sign`` as the layout places them; then g), vectorized over any leading
    dimensions."""

    def __init__(self, fmt: MLSFormat, lanes: int):
        layout = beat_layout(fmt, lanes)
        elems, g = layout["elems"], layout["g"]
        elem = elems.shape.elem_shape
        self.fmt, self.lanes, self.width = fmt, lanes, layout.size
        self.elem_base, self.elem_size = elems.offset, elem.size
        self.man, self.exp, self.sign = (elem[name].offset for name in ("man", "exp", "sign"))
        self.g_base, self.g_size = g.offset, Shape.cast(g.shape).width
        if elems.shape.size + self.g_size != self.width:
            raise ValueError(f"beat_layout({fmt}, {lanes}) has fields besides elems and g: {layout}")

    def bits(self, codes: torch.Tensor, group: torch.Tensor) -> np.ndarray:
        """uint8 bits ``[..., lines * width]`` (LSB first) of ``codes [..., lines, L]`` and ``group [..., lines]``."""
        f = self.fmt
        man = codes & ((1 << f.man_bits) - 1)
        exp = (codes >> f.man_bits) & ((1 << f.exp_bits) - 1)
        sign = codes >> (f.exp_bits + f.man_bits)
        elem = (man << self.man) | (exp << self.exp) | (sign << self.sign)
        # bit planes as uint8 (the fields are narrower than 32 bits; int32 shifts, uint8 storage)
        ebits = ((elem.to(torch.int32)[..., None] >> torch.arange(self.elem_size, dtype=torch.int32)) & 1).to(torch.uint8)
        gbits = ((group.to(torch.int64)[..., None] >> torch.arange(self.g_size)) & 1).to(torch.uint8)
        line = torch.empty(codes.shape[:-1] + (self.width,), dtype=torch.uint8)
        line[..., self.elem_base:self.elem_base + self.lanes * self.elem_size] = ebits.flatten(-2)
        line[..., self.g_base:self.g_base + self.g_size] = gbits
        return line.flatten(-2).numpy()


def _binstr(bits: np.ndarray) -> list[str]:
    """Rows of LSB-first bits as MSB-first '0'/'1' strings."""
    chars = (bits[:, ::-1] + ord("0")).astype(np.uint8)
    width = chars.shape[1]
    raw = chars.tobytes().decode("ascii")
    return [raw[i * width:(i + 1) * width] for i in range(chars.shape[0])]


def payload_bits(packers, a_codes, a_group, w_codes, w_group, a_data_bits: int):
    """``(a_bits, w_bits)``: uint8 LSB-first bits ``[beats, width]`` of every beat of the whole
    batch, tiles in order; the A word carries ``last`` (bit ``a_data_bits``) on each tile's
    final beat."""
    pa, pw = packers
    n, beats = a_codes.shape[:2]
    a_bits = pa.bits(a_codes, a_group).reshape(n * beats, -1)
    if a_bits.shape[1] != a_data_bits:
        raise ValueError(f"A beat of {a_bits.shape[1]} bits, the array's a layout has {a_data_bits} data bits")
    last = np.zeros((n, beats, 1), dtype=np.uint8)
    last[:, -1] = 1
    a_bits = np.concatenate([a_bits, last.reshape(n * beats, 1)], axis=1)
    w_bits = pw.bits(w_codes, w_group).reshape(n * beats, -1)
    return a_bits, w_bits


def pack_payloads(packers, a_codes, a_group, w_codes, w_group, a_data_bits: int):
    """``(a_strs, w_strs)``: ``payload_bits`` as one binary string (MSB first) per beat."""
    a_bits, w_bits = payload_bits(packers, a_codes, a_group, w_codes, w_group, a_data_bits)
    return _binstr(a_bits), _binstr(w_bits)


def expected_row_bits(acc: torch.Tensor, overflow: torch.Tensor, acc_bits: int) -> np.ndarray:
    """The ``c`` payload of every output row (tiles in order, rows 0..R-1) as uint8 LSB-first
    bits ``[rows, width]``: C two's-complement accumulators (column 0 at the LSB end), then C
    sticky flags, then ``last``."""
    n, r, c = acc.shape
    data = ((acc[..., None] >> torch.arange(acc_bits)) & 1)                 # two's complement, LSB first
    flags = overflow.to(torch.int64)[..., None]
    last = torch.zeros((n, r, 1), dtype=torch.int64)
    last[:, -1] = 1
    bits = torch.cat([data.flatten(-2), flags.flatten(-2), last], dim=-1).reshape(n * r, -1)
    return bits.numpy().astype(np.uint8)


def expected_rows(acc: torch.Tensor, overflow: torch.Tensor, acc_bits: int) -> list[str]:
    """``expected_row_bits`` as binary strings (MSB first), the form cocotb's GPI reads."""
    return _binstr(expected_row_bits(acc, overflow, acc_bits))


def decode_row(s: str, cols: int, acc_bits: int):
    """(data, flags, last) of one ``c`` row string, for error messages (the raw string if it has X/Z bits)."""
    if set(s) - {"0", "1"}:
        return s
    word = int(s, 2)
    data = []
    for j in range(cols):
        v = (word >> (j * acc_bits)) & ((1 << acc_bits) - 1)
        data.append(v - (1 << acc_bits) if v >> (acc_bits - 1) else v)
    flags = [(word >> (cols * acc_bits + j)) & 1 for j in range(cols)]
    return data, flags, (word >> (cols * acc_bits + cols)) & 1


def check_twins(batch: Batch, lanes: int, acc_bits: int, beats, golden, strs, packers, a_data_bits: int) -> None:
    """Tile 0 of a batch through the readable references: ``pack_beats`` + ``beat_accumulate``
    + ``BeatPacker`` (tb.dot_pe_vectors) must give what the vectorized twins gave."""
    from tb.dot_pe_vectors import BeatPacker

    stream0, a_codes, a_group, w_codes, w_group = beats
    acc, ovf = golden
    ref_acc, ref_ovf = beat_accumulate(stream0, acc_bits)
    assert torch.equal(ref_acc, acc[0]) and torch.equal(ref_ovf, ovf[0]), "batch_golden differs from beat_accumulate"
    assert torch.equal(stream0.a_codes, a_codes[0]) and torch.equal(stream0.w_group, w_group[0]), \
        "batch_beats differs from pack_beats"
    pa, pw = BeatPacker(batch.fmt_a, lanes), BeatPacker(batch.fmt_w, lanes)
    a_strs, w_strs = strs
    for b in range(stream0.beats):
        a_word = sum(pa.pack(stream0.a_codes[b, i].tolist(), int(stream0.a_group[b, i])) << (i * pa.width)
                     for i in range(stream0.a_codes.shape[1]))
        a_word |= int(b == stream0.beats - 1) << a_data_bits
        w_word = sum(pw.pack(stream0.w_codes[b, j].tolist(), int(stream0.w_group[b, j])) << (j * pw.width)
                     for j in range(stream0.w_codes.shape[1]))
        assert int(a_strs[b], 2) == a_word and int(w_strs[b], 2) == w_word, f"beat {b}: packed words differ from BeatPacker"
