"""The quantization unit's view of quantization: stream words, the host's scale, the convert pass, packed bytes.

The unit (``hw/quant_unit``, docs/quant_unit.md) quantizes a row-major FP32 stream in two passes:
an amax pass, then, with an inverse scale the host computes from that amax, a convert pass that
streams element codes and one group exponent per run of ``group_len`` elements. These are that
protocol's golden side, built on ``model.quantize`` (``tensor_scale``, ``convert``) and
``MLSTensor.pack``; testbenches and drivers share them.
"""

from __future__ import annotations

import numpy as np
import torch

from .formats import MLSFormat
from .fp32 import bits_fp32, daz, fp32_bits
from .grouping import Grouping
from .mls_tensor import MLSTensor
from .quantize import Rounding, convert, tensor_scale
from .random_bits import DEFAULT_SR_BITS

__all__ = [
    "assemble_packed",
    "from_words",
    "host_scale",
    "reference_amax",
    "reference_convert",
    "stream_group_len",
    "to_words",
]


def to_words(values, width: int, lanes: int) -> list[int]:
    """Pack a flat sequence into stream payloads: value ``w * lanes + k`` at bits [k*width, ...)."""
    values = [int(v) for v in np.asarray(values).reshape(-1)]
    if len(values) % lanes:
        raise ValueError(f"{len(values)} values do not fill whole words of {lanes} lanes")
    words = []
    for start in range(0, len(values), lanes):
        word = 0
        for k, v in enumerate(values[start:start + lanes]):
            word |= v << (k * width)
        words.append(word)
    return words


def from_words(words, width: int, lanes: int) -> list[int]:
    """Inverse of ``to_words``: the ``lanes`` values of ``width`` bits of each payload, in order."""
    mask = (1 << width) - 1
    return [(int(w) >> (k * width)) & mask for w in words for k in range(lanes)]


def stream_group_len(shape: tuple[int, ...], grouping: Grouping | str) -> int:
    """Elements per group when the tensor streams in row-major order, if every group is one
    contiguous run of equal length (what the unit supports); ValueError otherwise."""
    grouping = Grouping.parse(grouping)
    shape = tuple(shape)
    axis, _pre, length, block, post = grouping._split(shape)
    if length % block:
        raise ValueError(f"axis {axis} of length {length} is not a multiple of the group block {block}; "
                         f"the quantization unit needs equal groups")
    if grouping.span_trailing:
        return block * post
    if post != 1:
        raise ValueError(f"grouping {grouping} on shape {shape} makes strided groups; the quantization unit "
                         f"needs each group contiguous in row-major order")
    return block


def reference_amax(x) -> int:
    """FP32 bits of max|daz(x)| over the finite elements (what the amax pass reports)."""
    x = torch.as_tensor(x).to(torch.float32).reshape(-1)
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    return int(fp32_bits(daz(x).abs().max())[0])


def host_scale(amax_bits: int, fmt: MLSFormat | str) -> tuple[float, float, int]:
    """``(S_t, inv, inv_bits)`` from the unit's amax: ``model.quantize.tensor_scale``."""
    amax = float(bits_fp32([amax_bits])[0])
    scale, inv = tensor_scale(amax, MLSFormat.parse(fmt))
    return scale, inv, int(fp32_bits(inv)[0])


def reference_convert(x, inv: float, fmt: MLSFormat | str, group_len: int, rounding: Rounding = "nearest",
                      random_bits=None, sr_bits: int = DEFAULT_SR_BITS) -> tuple[torch.Tensor, torch.Tensor]:
    """Golden convert pass for any host ``inv``: (signed codes int64 [n], group exponents [n/group_len]).

    ``model.quantize.convert`` on the flat stream, each run of ``group_len`` elements one group.
    """
    x = torch.as_tensor(x).to(torch.float32).reshape(1, -1)
    if x.numel() % group_len:
        raise ValueError(f"{x.numel()} elements are not a whole number of groups of {group_len}")
    if random_bits is not None:
        random_bits = torch.as_tensor(random_bits).reshape(x.shape)
    codes, g = convert(x, inv, fmt, Grouping.blocks(group_len), rounding, random_bits, sr_bits=sr_bits)
    return codes.reshape(-1), g.reshape(-1)


def assemble_packed(scale: float, group_exps, code_words, fmt: MLSFormat | str, lanes: int, count: int) -> bytes:
    """Bytes of ``MLSTensor.pack()`` from the unit's outputs: the ``g`` payloads, one per group of
    ``count / len(group_exps)`` elements, and the ``o`` payloads in order, cut to ``count`` codes."""
    fmt = MLSFormat.parse(fmt)
    group_exps = torch.as_tensor(list(group_exps), dtype=torch.int64)
    if not group_exps.numel() or count % group_exps.numel():
        raise ValueError(f"{count} elements are not a whole number of groups for {group_exps.numel()} group exponents")
    codes = torch.as_tensor(from_words(code_words, fmt.elem_bits, lanes)[:count], dtype=torch.int64)
    if codes.numel() != count:
        raise ValueError(f"{len(code_words)} words of {lanes} lanes hold {codes.numel()} codes, expected {count}")
    grouping = Grouping.blocks(count // group_exps.numel())
    return MLSTensor.from_codes(codes, group_exps, scale, fmt, grouping).pack()
