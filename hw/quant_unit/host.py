"""Host side of the quantization unit: stream words, the golden convert pass, packed bytes.

Everything here is plain Python on top of ``model/``; testbenches and drivers share it.
"""

from __future__ import annotations

import numpy as np
import torch

from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import (daz, group_exponent, pack_bits, round_to_codes, scale_input,
                            tensor_scale)

__all__ = [
    "fp32_bits",
    "bits_fp32",
    "to_words",
    "from_words",
    "stream_group_len",
    "reference_amax",
    "host_scale",
    "reference_convert",
    "assemble_packed",
]


def fp32_bits(x) -> np.ndarray:
    """FP32 bit patterns (uint32, flattened row-major)."""
    return np.ascontiguousarray(torch.as_tensor(x).to(torch.float32).reshape(-1).numpy()).view(np.uint32).copy()


def bits_fp32(bits) -> torch.Tensor:
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32).copy())


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


def reference_convert(x, inv: float, fmt: MLSFormat | str, group_len: int, rounding: str = "nearest",
                      random_bits=None, sr_bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Golden convert pass for any host ``inv``: (signed codes int64 [n], group exponents [n/group_len])."""
    fmt = MLSFormat.parse(fmt)
    x = daz(torch.as_tensor(x).to(torch.float32).reshape(-1))
    if x.numel() % group_len:
        raise ValueError(f"{x.numel()} elements are not a whole number of groups of {group_len}")
    y = scale_input(x, inv)
    magnitude = y.abs().reshape(-1, group_len)
    g = group_exponent(magnitude.amax(dim=1), fmt)
    z = torch.ldexp(magnitude, g.to(torch.float32)[:, None]).reshape(-1)
    if random_bits is not None:
        random_bits = torch.as_tensor(random_bits).reshape(-1)
    codes = round_to_codes(z, fmt, rounding, random_bits, sr_bits)
    sign = ((y < 0) & (codes != 0)).to(torch.int64)
    return (sign << (fmt.exp_bits + fmt.man_bits)) | codes, g


def assemble_packed(scale: float, group_exps, code_words, fmt: MLSFormat | str, lanes: int, count: int) -> bytes:
    """Bytes of ``MLSTensor.pack()`` from the unit's outputs: FP32 scale (LE) | g stream | code stream.

    ``code_words`` are the ``o`` payloads in order; their concatenation LSB-first is the element
    bit stream, cut to ``count`` elements and zero-padded to a byte.
    """
    fmt = MLSFormat.parse(fmt)
    codes = from_words(code_words, fmt.elem_bits, lanes)[:count]
    header = np.float32(scale).astype("<f4").tobytes()
    return header + pack_bits(torch.as_tensor(list(group_exps), dtype=torch.int64), fmt.group_bits) + \
        pack_bits(torch.as_tensor(codes, dtype=torch.int64), fmt.elem_bits)
