"""Dynamic quantization FP32 -> MLS, bit-exact (DESIGN §2), and the ``MLSTensor`` container.

Every step is exact integer or exactly-rounded IEEE FP32 arithmetic, so the hardware quantization
unit can be checked against it bit for bit. The public step functions (``tensor_scale``,
``scale_input``, ``group_exponent``, ``round_to_codes``) are the pieces the RTL implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .formats import MLSFormat
from .grouping import Grouping

__all__ = [
    "DEFAULT_SR_BITS",
    "FP32_MIN_NORMAL",
    "MLSTensor",
    "Rounding",
    "daz",
    "decode_codes",
    "fake_quantize",
    "use_compiled_fake_quantize",
    "ftz",
    "group_exponent",
    "pack_bits",
    "quantize",
    "random_bits_like",
    "round_to_codes",
    "scale_input",
    "tensor_scale",
    "unpack_bits",
]

Rounding = Literal["nearest", "stochastic"]
ROUNDINGS = ("nearest", "stochastic")

#: Random bits added below the target ulp in stochastic rounding (R of DESIGN §2.5).
DEFAULT_SR_BITS = 8
MAX_SR_BITS = 24
FP32_MIN_NORMAL = 2.0**-126


# -- FP32 helpers ------------------------------------------------------------------------------
def ftz(t: torch.Tensor) -> torch.Tensor:
    """Flush FP32 subnormals to +0 (also used as DAZ on inputs)."""
    return torch.where(t.abs() < FP32_MIN_NORMAL, torch.zeros_like(t), t)


daz = ftz


def _as_fp32(x: torch.Tensor | np.ndarray | float) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        raise TypeError(f"quantize expects a floating-point tensor, got dtype {x.dtype}")
    return x.to(torch.float32)


def check_finite(x: torch.Tensor, what: str = "tensor") -> None:
    """Raise ValueError naming the shape and the count of NaN/Inf values."""
    bad = ~torch.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        first = tuple(int(i) for i in torch.nonzero(bad)[0]) if x.dim() else ()
        n_nan = int(torch.isnan(x).sum())
        raise ValueError(
            f"cannot quantize {what} of shape {tuple(x.shape)}: {n_bad} non-finite value(s) "
            f"({n_nan} NaN, {n_bad - n_nan} Inf), first at index {first}"
        )


# -- §2 steps ----------------------------------------------------------------------------------
def tensor_scale(amax: float | torch.Tensor, fmt: MLSFormat) -> tuple[float, float]:
    """§2.2: ``(S_t, inv) = (fp32(amax / elem_max), fp32(elem_max / amax))``, one IEEE division each.

    ``amax`` must already be an FP32 value after DAZ. All-zero tensors get ``(1.0, 1.0)``.
    """
    amax_t = torch.as_tensor(amax, dtype=torch.float32)
    if not torch.isfinite(amax_t) or amax_t < 0:
        raise ValueError(f"amax must be finite and non-negative, got {float(amax_t)}")
    if amax_t == 0:
        return 1.0, 1.0
    elem_max = torch.tensor(fmt.elem_max, dtype=torch.float32)
    scale = amax_t / elem_max
    inv = elem_max / amax_t
    if not torch.isfinite(inv):
        raise ValueError(
            f"inverse scale elem_max/amax = {fmt.elem_max}/{float(amax_t):.6g} overflows FP32 for {fmt}; "
            f"amax must be at least {fmt.elem_max / float(torch.finfo(torch.float32).max):.6g}"
        )
    return float(scale), float(inv)


def scale_input(x: torch.Tensor, inv: float) -> torch.Tensor:
    """§2.3: ``y = ftz(fp32(x * inv))``, an IEEE FP32 multiply with RNE then flush-to-zero."""
    return ftz(x * torch.tensor(inv, dtype=torch.float32))


def group_exponent(group_max: torch.Tensor, fmt: MLSFormat) -> torch.Tensor:
    """§2.4: largest g in [0, 2**G-1] with ``group_max * 2**g <= elem_max``, from exponents and mantissas.

    With ``group_max = my * 2**ey`` and ``elem_max = me * 2**ee`` (frexp, mantissas in [0.5, 1)),
    the condition holds iff ``g < ee - ey`` or (``g == ee - ey`` and ``my <= me``). A group whose
    max exceeds elem_max (possible by one FP32 rounding of y) gets g = 0 and saturates; an
    all-zero group gets the clamp ``2**G - 1``.
    """
    group_max = group_max.to(torch.float32)
    my, ey = torch.frexp(group_max)
    me, ee = torch.frexp(torch.tensor(fmt.elem_max, dtype=torch.float32))
    g = ee.to(torch.int32) - ey.to(torch.int32) - (my > me).to(torch.int32)
    g = torch.where(group_max == 0, torch.full_like(g, fmt.max_group_exp), g)
    return g.clamp(0, fmt.max_group_exp).to(torch.uint8)


def round_to_codes(
    magnitude: torch.Tensor,
    fmt: MLSFormat,
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    sr_bits: int = DEFAULT_SR_BITS,
) -> torch.Tensor:
    """§2.5: round non-negative FP32 magnitudes (``|y| * 2**g``) onto the grid; return unsigned codes.

    The code ``e << M | m`` is linear in the grid: a magnitude in binade b (clamped below at the
    smallest normal binade) with ``n`` ulps of ``2**(b-M)`` has code ``(b - b_min) * 2**M + n``,
    which makes mantissa carries and the subnormal/normal seam automatic. Codes saturate at the
    largest code (elem_max).

    - ``nearest``: round to nearest, ties to the even code (the even mantissa when M >= 1;
      for M = 0 the code's LSB is the exponent's, the only well-defined parity).
    - ``stochastic``: ``n = (floor(|z| * 2**(R - u)) + r) >> R`` with R = ``sr_bits`` random bits
      ``r`` per element (an explicit input, so hardware LFSRs can be matched).
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if rounding == "nearest":
        if random_bits is not None:
            raise ValueError("random_bits were given but rounding is 'nearest'")
    else:
        if random_bits is None:
            raise ValueError("stochastic rounding needs random_bits (see random_bits_like)")
        _check_random_bits(random_bits, magnitude.shape, sr_bits)
    return _round_codes(magnitude.to(torch.float32), fmt, rounding, random_bits, sr_bits).to(torch.int64)


def _round_codes(z: torch.Tensor, fmt: MLSFormat, rounding: str, random_bits: torch.Tensor | None,
                 sr_bits: int) -> torch.Tensor:
    """Core of ``round_to_codes`` (arguments already checked); returns int32 codes.

    Speed path (same bits as the float64/int64 formulation it replaced): the binade comes from
    the FP32 exponent field (every FP32 subnormal clamps to b_min, as frexp's would), and the
    scalings by ``2**(k - u)`` are exact FP32 multiplies by powers of two built from bits, so
    round/floor act on the same exact values. It needs the integers to fit (M + R + 2 <= 31)
    and ``2**-u`` to be a normal FP32 number; otherwise the float64 path runs.
    """
    max_code = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    b_min, man = fmt.min_normal_exponent, fmt.man_bits
    extra = sr_bits if rounding == "stochastic" else 0
    # M = 0 nearest: ties go to the even *code*, whose parity is not the ulp count's (slow path).
    if man + extra + 2 <= 31 and man + extra >= 1 and not (man == 0 and rounding == "nearest"):
        binade = (z.view(torch.int32) >> 23).clamp_(min=b_min + 127)  # biased; sign bit is 0
        # 2**(extra - u) = 2**(extra + M - b) as FP32 bits: exponent field 127 + extra + M - b.
        factor = (((127 + 127 + extra + man) - binade) << 23).view(torch.float32)
        scaled = z * factor
        if rounding == "nearest":
            ulps = torch.round(scaled).to(torch.int32)  # ties to even ulps = even code for M >= 1
        else:
            ulps = (torch.floor(scaled).to(torch.int32) + random_bits.to(torch.int32)) >> sr_bits
        binade -= b_min + 127
        codes = (binade << man).add_(ulps)
        return codes.clamp_(max=max_code)
    _, z_exp = torch.frexp(z)
    # frexp(0) has exponent 0: zero must sit in the bottom (uniform) binade like any tiny value.
    binade = torch.where(z > 0, z_exp.to(torch.int64) - 1, b_min)
    binade = torch.clamp(binade, min=b_min)
    ulp_exp = binade - man
    base_code = (binade - b_min) * (1 << man)
    if rounding == "nearest":
        scaled = torch.ldexp(z.double(), -ulp_exp.double())
        lower = torch.floor(scaled)
        frac = scaled - lower  # exact: scaled has at most 24 significant bits
        lower_code = base_code + lower.to(torch.int64)
        # Ties go to the even code; for M >= 1 that is the even mantissa (IEEE RNE).
        round_up = (frac > 0.5) | ((frac == 0.5) & (lower_code % 2 == 1))
        codes = lower_code + round_up.to(torch.int64)
    else:
        truncated = torch.floor(torch.ldexp(z.double(), (sr_bits - ulp_exp).double())).to(torch.int64)
        codes = base_code + ((truncated + random_bits.to(torch.int64)) >> sr_bits)
    return codes.clamp(max=max_code).to(torch.int32)


def _check_random_bits(random_bits: torch.Tensor, shape: torch.Size, sr_bits: int) -> None:
    if not 1 <= sr_bits <= MAX_SR_BITS:
        raise ValueError(f"sr_bits must be in [1, {MAX_SR_BITS}], got {sr_bits}")
    if tuple(random_bits.shape) != tuple(shape):
        raise ValueError(f"random_bits has shape {tuple(random_bits.shape)}, expected {tuple(shape)}")
    if torch.is_floating_point(random_bits):
        raise TypeError(f"random_bits must be an integer tensor, got dtype {random_bits.dtype}")
    if random_bits.numel() and (int(random_bits.min()) < 0 or int(random_bits.max()) >= 1 << sr_bits):
        raise ValueError(
            f"random_bits must lie in [0, 2**{sr_bits}), got range "
            f"[{int(random_bits.min())}, {int(random_bits.max())}]"
        )


def random_bits_like(
    shape: torch.Size | tuple[int, ...],
    sr_bits: int = DEFAULT_SR_BITS,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform random integers in [0, 2**sr_bits) from torch's RNG (the training-time source)."""
    if not 1 <= sr_bits <= MAX_SR_BITS:
        raise ValueError(f"sr_bits must be in [1, {MAX_SR_BITS}], got {sr_bits}")
    return torch.randint(0, 1 << sr_bits, tuple(shape), generator=generator, dtype=torch.int32, device=device)


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
        """The §3 integer per element (int64): ``±sig << (max(e,1) - 1 + 2**G - 1 - g)``."""
        fmt = self.fmt
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
        """§2.6: ``fp32(S_t * (2**-g * elem))``, one RNE multiply; subnormal results are flushed.

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


# -- the whole pass ----------------------------------------------------------------------------
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


def _pow2(exponent: torch.Tensor) -> torch.Tensor:
    """Exact FP32 ``2**exponent`` for integer exponents in [-126, 127] (built from bits)."""
    return ((exponent.to(torch.int32) + 127) << 23).view(torch.float32)


def _prepare(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int, generator,
             fused_absmax=None):
    """Checks, tensor scale and group exponents of §2 (steps 1, 2, 4), shared by every path.

    Returns ``(x, ax, g, scale, inv_t, inv_g, direct, random_bits)``; ``direct`` says that
    ``z = fp32(|x| * inv_g)`` gives the same codes as the step-by-step formulation (see
    ``_quantize_fields``). With ``fused_absmax`` (the compiled path) the group maxima of |x|
    come from that kernel in one read and ``ax`` is None.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    x = _as_fp32(x)
    if x.numel() == 0:
        raise ValueError(f"cannot quantize an empty tensor of shape {tuple(x.shape)}")
    shape = tuple(x.shape)
    group_shape = grouping.group_shape(shape)  # validates the grouping against the shape
    if rounding == "stochastic":
        if random_bits is None:
            random_bits = random_bits_like(shape, sr_bits, generator, device=x.device)
        else:
            _check_random_bits(random_bits, x.shape, sr_bits)
    elif random_bits is not None:
        raise ValueError("random_bits were given but rounding is 'nearest'")
    if fused_absmax is None:
        ax = x.abs()
        group_max_x = grouping.group_amax(ax)
    else:
        ax = None
        group_max_x = fused_absmax(x).reshape(group_shape)
    amax = group_max_x.max()  # NaN and Inf propagate through max
    if not torch.isfinite(amax):
        check_finite(x)
    scale, inv = tensor_scale(daz(amax), fmt)
    inv_t = torch.tensor(inv, dtype=torch.float32, device=x.device)
    g = group_exponent(ftz(daz(group_max_x) * inv_t), fmt)
    assert tuple(g.shape) == group_shape
    inv_g = inv_t * _pow2(g)
    # Below `limit`, a magnitude rounds to code 0 in either rounding mode.
    extra = sr_bits if rounding == "stochastic" else 1
    limit = 2.0 ** (fmt.min_normal_exponent - fmt.man_bits - extra)
    largest_flushed = float(torch.tensor(FP32_MIN_NORMAL, dtype=torch.float32) * inv_g.max())
    direct = bool(torch.isfinite(inv_g).all()) and largest_flushed < limit
    return x, ax, g, scale, inv_t, inv_g, direct, random_bits


def _quantize_fields(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                     generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """§2 for ``quantize`` and ``fake_quantize``: ``(negative, codes int32, group_exp, scale)``.

    Same bits as the step-by-step formulation (``daz``, ``tensor_scale``, ``scale_input``,
    ``group_exponent`` on ``group_amax(|y|)``, ``ldexp(|y|, g)``, ``round_to_codes``), computed
    with fewer passes:

    - group maxima of ``|y|`` come from group maxima of ``|x|``: DAZ, the RNE multiply by ``inv``
      and FTZ are all monotone, so they commute with max;
    - when safe, ``z = fp32(|x| * fp32(inv * 2**g))`` in one multiply. Scaling by 2**g commutes
      with RNE for normal results; elements that DAZ/FTZ would zero stay below the smallest
      magnitude that can round to a nonzero code (checked per call, else the plain path runs).
    """
    x, ax, g, scale, inv_t, inv_g, direct, random_bits = _prepare(x, fmt, grouping, rounding, random_bits,
                                                                  sr_bits, generator)
    if direct:
        z = _times_groups(ax, inv_g, grouping)
    else:
        z = _times_groups(ftz(daz(ax) * inv_t), _pow2(g), grouping)
    codes = _round_codes(z, fmt, rounding, random_bits, sr_bits)
    return x < 0, codes, g, scale


_DECODE_TABLES: dict[tuple[MLSFormat, torch.device], torch.Tensor] = {}


def _decode_table(fmt: MLSFormat, device: torch.device) -> torch.Tensor:
    key = (fmt, device)
    if key not in _DECODE_TABLES:
        codes = torch.arange(1 << (fmt.exp_bits + fmt.man_bits), dtype=torch.int64)
        _DECODE_TABLES[key] = decode_codes(codes, fmt).to(device)
    return _DECODE_TABLES[key]


def _dequantize_fields(negative: torch.Tensor, codes: torch.Tensor, group_exp: torch.Tensor, scale: float,
                       fmt: MLSFormat, grouping: Grouping, return_underflows: bool = False):
    """§2.6 from unsigned codes, a negative-sign mask (ignored where the code is 0) and group exponents.

    Same bits as ``ftz(fp32(S_t * ldexp(±elem, -g)))``: element magnitudes come from a decode
    table; ``2**-g * S_t`` is one exact per-group factor when it is a normal number; FTZ is
    skipped when even the smallest nonzero element times the smallest factor is normal.
    """
    device = codes.device
    magnitude = _decode_table(fmt, device).index_select(0, codes.reshape(-1).to(torch.int32)).reshape(codes.shape)
    scale_t = torch.tensor(scale, dtype=torch.float32, device=device)
    factor = _pow2(-group_exp.to(torch.int32)) * scale_t
    min_normal = torch.tensor(FP32_MIN_NORMAL, dtype=torch.float32, device=device)
    if bool((factor >= min_normal).all()):
        value = _times_groups(magnitude, factor, grouping)
        smallest = torch.tensor(fmt.elem_min_subnormal, dtype=torch.float32, device=device) * factor.min()
        need_ftz = return_underflows or not bool(smallest >= min_normal)
    else:
        value = _times_groups(magnitude, _pow2(-group_exp.to(torch.int32)), grouping) * scale_t
        need_ftz = True
    value = torch.where(negative, -value, value)
    if not need_ftz:
        return value + 0.0  # canonical +0 where a negative input rounded to code 0
    flushed = ftz(value)
    if return_underflows:
        return flushed, int(((flushed == 0) & (codes != 0)).sum())
    return flushed


def quantize(
    x: torch.Tensor,
    fmt: MLSFormat | str,
    grouping: Grouping | str = Grouping.channel(),
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    *,
    sr_bits: int = DEFAULT_SR_BITS,
    generator: torch.Generator | None = None,
) -> MLSTensor:
    """Quantize a tensor to MLS exactly as DESIGN §2 says (inputs are converted to FP32 first).

    For ``rounding="stochastic"`` give ``random_bits`` (ints in [0, 2**sr_bits), one per element)
    or let them be drawn from torch's RNG (``generator`` for a seeded stream).
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    negative, codes, g, scale = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    sign = (negative & (codes != 0)).to(torch.uint8)
    return MLSTensor(
        fmt, grouping,
        sign=sign,
        exp=(codes >> fmt.man_bits).to(torch.uint8),
        man=(codes & ((1 << fmt.man_bits) - 1)).to(torch.int16),
        group_exp=g,
        scale=scale,
    )


def fake_quantize(
    x: torch.Tensor,
    fmt: MLSFormat | str,
    grouping: Grouping | str = Grouping.channel(),
    rounding: Rounding = "nearest",
    random_bits: torch.Tensor | None = None,
    *,
    sr_bits: int = DEFAULT_SR_BITS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``quantize(x, ...).dequantize()`` bit for bit, without building the ``MLSTensor``.

    The training fast path: FP32 GEMMs run on these dequantized values.
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    if _COMPILED_KERNELS is not None:
        out = _fake_quantize_compiled(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
        if out is not None:
            return out
    negative, codes, g, scale = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    return _dequantize_fields(negative, codes, g, scale, fmt, grouping)


# -- optional fused kernel (torch.compile) for the training path --------------------------------
_COMPILED_KERNELS: dict | None = None


def _fused_nearest(x, inv_g, factor, table, b_min: int, man: int, max_code: int):
    z = x.abs() * inv_g
    binade = (z.view(torch.int32) >> 23).clamp(min=b_min + 127)
    scale_bits = (((254 + man) - binade) << 23).view(torch.float32)
    codes = (((binade - (b_min + 127)) << man) + torch.round(z * scale_bits).to(torch.int32)).clamp(max=max_code)
    value = table[codes] * factor
    return torch.where(x < 0, -value, value) + 0.0


def _fused_stochastic(x, inv_g, factor, table, random_bits, b_min: int, man: int, max_code: int, sr_bits: int):
    z = x.abs() * inv_g
    binade = (z.view(torch.int32) >> 23).clamp(min=b_min + 127)
    scale_bits = (((254 + sr_bits + man) - binade) << 23).view(torch.float32)
    ulps = (torch.floor(z * scale_bits).to(torch.int32) + random_bits) >> sr_bits
    codes = (((binade - (b_min + 127)) << man) + ulps).clamp(max=max_code)
    value = table[codes] * factor
    return torch.where(x < 0, -value, value) + 0.0


def _fused_absmax(x, span_trailing: bool):
    m = x.abs().amax(dim=2, keepdim=True)  # NaN propagates, as in Grouping.group_amax
    return m.amax(dim=3, keepdim=True) if span_trailing else m


def use_compiled_fake_quantize(enabled: bool = True) -> None:
    """Run ``fake_quantize`` through one ``torch.compile``-fused kernel (same bits; opt-in).

    The kernel is ``_round_codes``' integer-bit path followed by the table decode and the
    per-group factor of ``_dequantize_fields``, fused; cases it does not cover (ragged groups,
    DAZ/FTZ-sensitive scales, M = 0 nearest, wide stochastic integers) fall back to the eager
    path. Compiling costs seconds per new shape, so it pays off on long runs and big tensors.
    """
    global _COMPILED_KERNELS
    if not enabled:
        _COMPILED_KERNELS = None
        return
    _COMPILED_KERNELS = {"nearest": torch.compile(_fused_nearest, dynamic=True),
                         "stochastic": torch.compile(_fused_stochastic, dynamic=True),
                         "absmax": torch.compile(_fused_absmax, dynamic=True)}


def _fake_quantize_compiled(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                            generator) -> torch.Tensor | None:
    """The fused path, or None where its preconditions fail (then the eager path runs)."""
    man = fmt.man_bits
    extra = sr_bits if rounding == "stochastic" else 0
    if not (man + extra + 2 <= 31 and man + extra >= 1 and not (man == 0 and rounding == "nearest")):
        return None
    shape = tuple(torch.as_tensor(x).shape)
    if len(shape) == 0 or _group_view(grouping, shape) is None:
        return None
    elem_view, group_view = _group_view(grouping, shape)
    absmax = _COMPILED_KERNELS["absmax"]

    def fused_absmax(t):
        return absmax(t.reshape(elem_view), grouping.span_trailing)

    x, _, g, scale, inv_t, inv_g, direct, random_bits = _prepare(x, fmt, grouping, rounding, random_bits,
                                                                 sr_bits, generator, fused_absmax)
    scale_t = torch.tensor(scale, dtype=torch.float32, device=x.device)
    factor = _pow2(-g.to(torch.int32)) * scale_t
    min_normal = torch.tensor(FP32_MIN_NORMAL, dtype=torch.float32, device=x.device)
    smallest = torch.tensor(fmt.elem_min_subnormal, dtype=torch.float32, device=x.device) * factor.min()
    # Same conditions as the direct z of _quantize_fields and the no-FTZ branch of _dequantize_fields.
    if not (direct and bool((factor >= min_normal).all()) and bool(smallest >= min_normal)):
        return None
    table = _decode_table(fmt, x.device)
    max_code = (1 << (fmt.exp_bits + man)) - 1
    args = (x.reshape(elem_view), inv_g.reshape(group_view), factor.reshape(group_view), table)
    if rounding == "nearest":
        out = _COMPILED_KERNELS["nearest"](*args, fmt.min_normal_exponent, man, max_code)
    else:
        bits = random_bits.to(torch.int32).reshape(elem_view)
        out = _COMPILED_KERNELS["stochastic"](*args, bits, fmt.min_normal_exponent, man, max_code, sr_bits)
    return out.reshape(shape)
