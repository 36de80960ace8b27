"""The ``MLSTensor`` container: integer fields, the exact integer view, dequantization and the packed layout.

``model.quantize.quantize`` builds one; ``MLSTensor.dequantize`` is step 6 of the quantization
definition and ``pack``/``unpack`` the byte layout the hardware streams (both in
docs/numerics.md). ``decode_codes`` maps element codes to their exact FP32 magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .formats import MLSFormat
from .fp32 import FP32_MIN_NORMAL, ftz, pow2
from .grouping import Grouping

__all__ = ["MLSTensor", "decode_codes", "pack_bits", "unpack_bits"]


def decode_codes(codes: torch.Tensor, fmt: MLSFormat) -> torch.Tensor:
    """Unsigned codes ``e << M | m`` -> element magnitudes as exact FP32."""
    codes = codes.to(torch.int64)
    exp = codes >> fmt.man_bits
    man = codes & ((1 << fmt.man_bits) - 1)
    normal = exp > 0
    sig = torch.where(normal, man + (1 << fmt.man_bits), man)
    power = torch.where(normal, exp, torch.ones_like(exp)) - fmt.bias - fmt.man_bits
    return torch.ldexp(sig.double(), power.double()).to(torch.float32)


# -- the container -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MLSTensor:
    """A tensor in MLS form: integer fields, group exponents and the FP32 tensor scale.

    ``sign``/``exp``/``man`` have the tensor's shape; ``group_exp`` has ``grouping.group_shape``.
    Zero elements are canonical: sign 0, exp 0, man 0.
    """

    fmt: MLSFormat
    grouping: Grouping
    sign: torch.Tensor
    exp: torch.Tensor
    man: torch.Tensor
    group_exp: torch.Tensor
    scale: float

    def __post_init__(self) -> None:
        shape = tuple(self.sign.shape)
        for name in ("exp", "man"):
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, sign has {shape}")
        expected = self.grouping.group_shape(shape)
        if tuple(self.group_exp.shape) != expected:
            raise ValueError(f"group_exp has shape {tuple(self.group_exp.shape)}, expected {expected}")
        limits = (("sign", self.sign, 1), ("exp", self.exp, self.fmt.max_exp_field),
                  ("man", self.man, (1 << self.fmt.man_bits) - 1), ("group_exp", self.group_exp, self.fmt.max_group_exp))
        for name, t, high in limits:
            if t.numel() and (int(t.min()) < 0 or int(t.max()) > high):
                raise ValueError(f"{name} values must lie in [0, {high}] for {self.fmt}, got [{int(t.min())}, {int(t.max())}]")
        if float(np.float32(self.scale)) != self.scale or not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a positive finite FP32 value, got {self.scale!r}")

    # -- views ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.sign.shape)

    def codes(self) -> torch.Tensor:
        """Signed element codes ``s << (E+M) | e << M | m`` (int64), the bits the hardware streams."""
        fmt = self.fmt
        return (self.sign.to(torch.int64) << (fmt.exp_bits + fmt.man_bits)) | (
            self.exp.to(torch.int64) << fmt.man_bits) | self.man.to(torch.int64)

    @classmethod
    def from_codes(cls, codes: torch.Tensor, group_exp: torch.Tensor, scale: float,
                   fmt: MLSFormat | str, grouping: Grouping | str) -> MLSTensor:
        fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
        codes = torch.as_tensor(codes).to(torch.int64)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= fmt.code_count):
            raise ValueError(f"codes must lie in [0, {fmt.code_count}) for {fmt}")
        group_exp = torch.as_tensor(group_exp).to(torch.int64)
        if group_exp.numel() and (int(group_exp.min()) < 0 or int(group_exp.max()) > fmt.max_group_exp):
            raise ValueError(f"group_exp values must lie in [0, {fmt.max_group_exp}] for {fmt}")
        magnitude = codes & ((1 << (fmt.exp_bits + fmt.man_bits)) - 1)
        return cls(fmt, grouping,
                   sign=(codes >> (fmt.exp_bits + fmt.man_bits)).to(torch.uint8),
                   exp=(magnitude >> fmt.man_bits).to(torch.uint8),
                   man=(magnitude & ((1 << fmt.man_bits) - 1)).to(torch.int16),
                   group_exp=group_exp.to(torch.uint8), scale=float(scale))

    def group_exp_per_element(self) -> torch.Tensor:
        return self.grouping.expand(self.group_exp, self.shape)

    def elements(self) -> torch.Tensor:
        """Signed element values (exact FP32), without group or tensor scale."""
        magnitude = (self.exp.to(torch.int64) << self.fmt.man_bits) | self.man.to(torch.int64)
        values = decode_codes(magnitude, self.fmt)
        return torch.where(self.sign.bool(), -values, values)

    def to_int(self) -> torch.Tensor:
        """The exact integer per element (int64): ``±sig << (max(e,1) - 1 + 2**G - 1 - g)``.

        See docs/numerics.md, "Exact arithmetic". Raises ``ValueError`` for formats whose integers
        need more than the 63 magnitude bits of an int64 (e.g. e2m1g6: 67), rather than wrapping.
        """
        fmt = self.fmt
        if fmt.max_int.bit_length() > 63:
            raise ValueError(f"MLSTensor.to_int: {fmt} integers need {fmt.max_int.bit_length()} bits plus a sign, "
                             f"more than the 63 an int64 holds")
        exp = self.exp.to(torch.int64)
        man = self.man.to(torch.int64)
        sig = torch.where(exp > 0, man + (1 << fmt.man_bits), man)
        shift = torch.clamp(exp, min=1) - 1 + fmt.max_group_exp - self.group_exp_per_element().to(torch.int64)
        value = sig << shift
        return torch.where(self.sign.bool(), -value, value)

    def group_scaled(self) -> torch.Tensor:
        """``2**-g * elem`` as FP32 (exact: the format limits keep it a normal number)."""
        return torch.ldexp(self.elements(), -self.group_exp_per_element().to(torch.float32))

    def dequantize(self, *, return_underflows: bool = False):
        """Step 6: ``fp32(S_t * (2**-g * elem))``, one RNE multiply; subnormal results are flushed.

        With ``return_underflows`` also returns how many nonzero elements were flushed.
        """
        codes = ((self.exp.to(torch.int32) << self.fmt.man_bits) | self.man.to(torch.int32))
        return _dequantize_fields(self.sign.bool(), codes, self.group_exp, self.scale, self.fmt,
                                  self.grouping, return_underflows)

    # -- bit layout -------------------------------------------------------------------------
    def pack(self) -> bytes:
        """Bytes: FP32 scale (little-endian) | group exponents (G bits each) | element codes.

        Each stream is row-major, value i at bits [i*w, i*w + w) of a little-endian bit
        string, zero-padded to a whole byte (see docs/numerics.md).
        """
        scale = np.float32(self.scale).astype("<f4").tobytes()
        groups = pack_bits(self.group_exp.reshape(-1), self.fmt.group_bits)
        elems = pack_bits(self.codes().reshape(-1), self.fmt.elem_bits)
        return scale + groups + elems

    @staticmethod
    def packed_size(shape: tuple[int, ...], fmt: MLSFormat, grouping: Grouping) -> int:
        n_groups = int(np.prod(grouping.group_shape(tuple(shape))))
        return 4 + _bytes_for(n_groups * fmt.group_bits) + _bytes_for(int(np.prod(shape)) * fmt.elem_bits)

    @classmethod
    def unpack(cls, data: bytes, shape: tuple[int, ...], fmt: MLSFormat | str, grouping: Grouping | str) -> MLSTensor:
        fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
        shape = tuple(shape)
        expected = cls.packed_size(shape, fmt, grouping)
        if len(data) != expected:
            raise ValueError(f"packed data has {len(data)} bytes, expected {expected} for {shape} in {fmt}")
        scale = float(np.frombuffer(data[:4], dtype="<f4")[0])
        group_shape = grouping.group_shape(shape)
        n_groups = int(np.prod(group_shape))
        group_end = 4 + _bytes_for(n_groups * fmt.group_bits)
        group_exp = unpack_bits(data[4:group_end], fmt.group_bits, n_groups).reshape(group_shape)
        codes = unpack_bits(data[group_end:], fmt.elem_bits, int(np.prod(shape))).reshape(shape)
        return cls.from_codes(codes, group_exp, scale, fmt, grouping)


def _bytes_for(bits: int) -> int:
    return -(-bits // 8)


def pack_bits(values: torch.Tensor, width: int) -> bytes:
    """Pack unsigned ints of ``width`` bits, value i at stream bits [i*width, (i+1)*width), LSB first."""
    values = np.asarray(torch.as_tensor(values).to(torch.int64).reshape(-1))
    if width == 0:
        return b""
    if values.size and (values.min() < 0 or values.max() >= 1 << width):
        raise ValueError(f"values must lie in [0, 2**{width}) to pack into {width} bits")
    bits = (values[:, None] >> np.arange(width, dtype=np.int64)) & 1
    return np.packbits(bits.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, width: int, count: int) -> torch.Tensor:
    """Inverse of ``pack_bits``: ``count`` unsigned ints of ``width`` bits (int64 tensor)."""
    if width == 0:
        return torch.zeros(count, dtype=torch.int64)
    if len(data) != _bytes_for(count * width):
        raise ValueError(f"{len(data)} bytes cannot hold exactly {count} values of {width} bits")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * width]
    weights = np.int64(1) << np.arange(width, dtype=np.int64)
    return torch.from_numpy((bits.reshape(count, width).astype(np.int64) * weights).sum(axis=1))

# -- per-group broadcasting and step 6 -------------------------------------------------------
def _group_view(grouping: Grouping, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Shapes ``(elements, groups)`` under which a per-group tensor broadcasts over the elements.

    None when the grouped axis has a ragged last block (then ``Grouping.expand`` is used).
    """
    axis, pre, length, block, post = grouping._split(shape)
    if length % block:
        return None
    n_blocks = length // block
    return (pre, n_blocks, block, post), (pre, n_blocks, 1, 1 if grouping.span_trailing else post)


def _times_groups(t: torch.Tensor, per_group: torch.Tensor, grouping: Grouping) -> torch.Tensor:
    """``t * expand(per_group)``, broadcasting instead of materialising the expansion."""
    shape = tuple(t.shape)
    views = _group_view(grouping, shape)
    if views is None:
        return t * grouping.expand(per_group, shape)
    elem_view, group_view = views
    return (t.reshape(elem_view) * per_group.reshape(group_view)).reshape(shape)

_DECODE_TABLES: dict[tuple[MLSFormat, torch.device], torch.Tensor] = {}


def _decode_table(fmt: MLSFormat, device: torch.device) -> torch.Tensor:
    key = (fmt, device)
    if key not in _DECODE_TABLES:
        codes = torch.arange(1 << (fmt.exp_bits + fmt.man_bits), dtype=torch.int64)
        _DECODE_TABLES[key] = decode_codes(codes, fmt).to(device)
    return _DECODE_TABLES[key]


def _dequantize_fields(negative: torch.Tensor, codes: torch.Tensor, group_exp: torch.Tensor, scale: float,
                       fmt: MLSFormat, grouping: Grouping, return_underflows: bool = False):
    """Step 6 from unsigned codes, a negative-sign mask (ignored where the code is 0) and group exponents.

    Same bits as ``ftz(fp32(S_t * ldexp(±elem, -g)))``: element magnitudes come from a decode
    table; ``2**-g * S_t`` is one exact per-group factor when it is a normal number; FTZ is
    skipped when even the smallest nonzero element times the smallest factor is normal.
    """
    device = codes.device
    magnitude = _decode_table(fmt, device).index_select(0, codes.reshape(-1).to(torch.int32)).reshape(codes.shape)
    scale_t = torch.tensor(scale, dtype=torch.float32, device=device)
    factor = pow2(-group_exp.to(torch.int32)) * scale_t
    min_normal = torch.tensor(FP32_MIN_NORMAL, dtype=torch.float32, device=device)
    if bool((factor >= min_normal).all()):
        value = _times_groups(magnitude, factor, grouping)
        smallest = torch.tensor(fmt.elem_min_subnormal, dtype=torch.float32, device=device) * factor.min()
        need_ftz = return_underflows or not bool(smallest >= min_normal)
    else:
        value = _times_groups(magnitude, pow2(-group_exp.to(torch.int32)), grouping) * scale_t
        need_ftz = True
    value = torch.where(negative, -value, value)
    if not need_ftz:
        return value + 0.0  # canonical +0 where a negative input rounded to code 0
    flushed = ftz(value)
    if return_underflows:
        return flushed, int(((flushed == 0) & (codes != 0)).sum())
    return flushed
