"""Dynamic quantization FP32 -> MLS, bit-exact (DESIGN §2), and the ``MLSTensor`` container.

Every step is exact integer or exactly-rounded IEEE FP32 arithmetic, so the hardware quantization
unit can be checked against it bit for bit. The public step functions (``tensor_scale``,
``scale_input``, ``group_exponent``, ``round_to_codes``) are the pieces the RTL implements.
"""

from __future__ import annotations

import functools
import math
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
    """Uniform random integers in [0, 2**sr_bits) from torch's RNG (the training-time source).

    The values are those of ``torch.randint(0, 2**sr_bits, shape, dtype=torch.int32)``, element
    for element, and the generator ends in the same state. On the CPU they are drawn faster (see
    ``_draw_words``): two 32-bit Mersenne-Twister outputs per 64-bit draw, split.
    """
    if not 1 <= sr_bits <= MAX_SR_BITS:
        raise ValueError(f"sr_bits must be in [1, {MAX_SR_BITS}], got {sr_bits}")
    shape = tuple(shape)
    if _split_draw_ok(generator, device):
        words, tail = _draw_words(math.prod(shape), generator)
        return _split_words(words, tail, sr_bits).reshape(shape)
    return torch.randint(0, 1 << sr_bits, shape, generator=generator, dtype=torch.int32, device=device)


# -- fast draws of the same random bits --------------------------------------------------------
# On the CPU, torch.randint(0, 2**R) with R <= 24 takes one 32-bit output u of the generator's
# Mersenne Twister per element and returns u % 2**R, its low R bits; a full-range int64 draw
# (random_(-2**63, None)) takes two outputs u1, u2 per element and returns (u1 << 32) | u2.
# So one 64-bit draw carries the bits of two consecutive elements, at about a third of the time
# (no per-element modulo). Whether this holds for the running torch is checked once per process
# (``_split_draw_ok``); where it does not, torch.randint runs.
_SPLIT_DRAW_CHECKED: bool | None = None


def _draw_words(n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n // 2`` full-range int64 draws and, for odd ``n``, one 32-bit draw (int32, shape (n % 2,))."""
    words = torch.empty(n // 2, dtype=torch.int64).random_(-(1 << 63), None, generator=generator)
    tail = torch.randint(0, 1 << MAX_SR_BITS, (n % 2,), generator=generator, dtype=torch.int32)
    return words, tail


def _split_words(words: torch.Tensor, tail: torch.Tensor, sr_bits: int) -> torch.Tensor:
    """The ``2 * len(words) + len(tail)`` values of R bits, in draw order (int32, flat).

    Word j holds element 2j in its high half and element 2j + 1 in its low half; the int32 view
    of a masked word is ``[low, high]`` (little-endian, which ``_split_draw_ok`` verifies).
    """
    mask = (1 << sr_bits) - 1
    halves = (words & (mask | mask << 32)).view(torch.int32).view(-1, 2)
    pairs = torch.stack((halves[:, 1], halves[:, 0]), dim=1).reshape(-1)
    return torch.cat((pairs, tail & mask)) if tail.numel() else pairs


def _split_draw_ok(generator: torch.Generator | None, device) -> bool:
    """Whether ``random_bits_like`` may split 64-bit draws: a CPU stream, and the equivalence holds."""
    global _SPLIT_DRAW_CHECKED
    if generator is not None and generator.device.type != "cpu":
        return False
    if device is not None and torch.device(device).type != "cpu":
        return False
    if device is None and torch.get_default_device().type != "cpu":
        return False
    if _SPLIT_DRAW_CHECKED is None:
        a, b = torch.Generator().manual_seed(20240601), torch.Generator().manual_seed(20240601)
        ref = torch.randint(0, 1 << MAX_SR_BITS, (11,), generator=a, dtype=torch.int32)
        words, tail = _draw_words(11, b)
        same_state = torch.equal(torch.randint(0, 1 << 30, (3,), generator=a), torch.randint(0, 1 << 30, (3,), generator=b))
        _SPLIT_DRAW_CHECKED = torch.equal(ref, _split_words(words, tail, MAX_SR_BITS)) and same_state
    return _SPLIT_DRAW_CHECKED


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


def _prepare(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int, generator):
    """Checks, tensor scale and group exponents of §2 (steps 1, 2, 4), shared by every path.

    Returns ``(x, ax, g, scale, inv_t, inv_g, direct, random_bits)``; ``direct`` says that
    ``z = fp32(|x| * inv_g)`` gives the same codes as the step-by-step formulation (see
    ``_quantize_fields``).
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
    ax = x.abs()
    group_max_x = grouping.group_amax(ax)
    amax = group_max_x.max()  # NaN and Inf propagate through max
    if not torch.isfinite(amax):
        check_finite(x)
    scale, inv = tensor_scale(daz(amax), fmt)
    inv_t = torch.tensor(inv, dtype=torch.float32, device=x.device)
    g = group_exponent(ftz(daz(group_max_x) * inv_t), fmt)
    assert tuple(g.shape) == group_shape
    inv_g = inv_t * _pow2(g)
    _, limit = _fast_limits(fmt, sr_bits if rounding == "stochastic" else 1)
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

    The training fast path: FP32 GEMMs run on these dequantized values. The common case runs
    ``_fast_values`` (fused by torch.compile after ``use_compiled_fake_quantize``); the rest
    runs the code path of ``quantize`` and ``MLSTensor.dequantize``.
    """
    fmt, grouping = MLSFormat.parse(fmt), Grouping.parse(grouping)
    if _COMPILED_KERNELS is not None and torch.as_tensor(x).numel() >= _COMPILE_MIN_NUMEL:
        out = _fake_quantize_compiled(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    else:
        out = _fake_quantize_fast(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    if out is not None:
        return out
    negative, codes, g, scale = _quantize_fields(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    return _dequantize_fields(negative, codes, g, scale, fmt, grouping)


# -- the fast path: the grid value in FP32 arithmetic ------------------------------------------
# ``_round_codes`` + ``_dequantize_fields`` compute an integer code and decode it through a
# table. Since the code is linear in the grid (code ``(b - b_min) * 2**M + n`` stands for
# ``n * 2**(b - M)``, b = max(binade, b_min)), the decoded magnitude is ``n * ulp`` with
# ``ulp = 2**(max(binade(z), b_min) - M)``, and every step is exact FP32 arithmetic:
#
# - ulp: the exponent bits of z (a power of two, 0 for subnormal z), times 2**-M, clamped below
#   at 2**(b_min - M) (a normal number by the format limits);
# - nearest: ``n = round(z / ulp)`` (RNE: ties to the even n, the even code for M >= 1), the
#   same value ``_round_codes`` rounds (``z / ulp`` is exact unless it is below 2**-126, and then
#   both round to 0);
# - stochastic: ``n = floor((floor(z * 2**R / ulp) + r) * 2**-R)``, exact while the integers stay
#   below 2**24 (M + R + 2 <= 24);
# - saturation at elem_max (the largest code) is applied to z first: elem_max is on the grid and
#   both roundings are monotone, so clamping before or after rounding gives the same value;
# - the sign: nearest rounds the signed ``x * inv_g`` (RNE is symmetric), stochastic rounds
#   the magnitude and copies the sign of x; ``+ 0.0`` turns the -0 of a negative value that
#   rounded to code 0 into +0, as ``_dequantize_fields`` gives.
#
# Preconditions (else the code path runs): whole groups (no ragged block), the direct
# ``z = fp32(|x| * inv_g)`` of ``_quantize_fields`` is valid, and every per-group factor
# ``2**-g * S_t`` and product with the smallest element is normal (no FTZ), the conditions of
# the no-FTZ branch of ``_dequantize_fields``. ``tests/test_quantize.py`` checks this path
# against ``quantize().dequantize()`` bit for bit.
_EXP_MASK = 0x7F800000


def _fast_format_ok(fmt: MLSFormat, rounding: str, sr_bits: int) -> bool:
    if rounding == "nearest":
        return fmt.man_bits >= 1  # M = 0: ties go to the even code, not the even ulp count
    return rounding == "stochastic" and fmt.man_bits + sr_bits + 2 <= 24


def _ulp(z: torch.Tensor, man_scale: float, ulp_min: float, scratch=None) -> torch.Tensor:
    """``2**(max(binade(z), b_min) - M)`` per element, from the exponent bits of z (into the
    int32 ``scratch`` of z's shape if given)."""
    bits = z.view(torch.int32) & _EXP_MASK if scratch is None else torch.bitwise_and(z.view(torch.int32), _EXP_MASK,
                                                                                      out=scratch)
    return bits.view(torch.float32).mul_(man_scale).clamp_min_(ulp_min)


# ``out`` and ``scratch`` (eager chunks): the result goes to ``out``, the ulp to ``scratch``, so
# that no pass writes to freshly allocated (not yet paged-in) memory.
def _fast_nearest(x, inv_g, factor, elem_max: float, man_scale: float, ulp_min: float, out=None, scratch=None):
    z = (x * inv_g if out is None else torch.mul(x, inv_g, out=out)).clamp_(-elem_max, elem_max)
    ulp = _ulp(z, man_scale, ulp_min, scratch)
    return z.div_(ulp).round_().mul_(ulp).mul_(factor).add_(0.0)


def _fast_stochastic(x, inv_g, factor, r, elem_max: float, man_scale: float, ulp_min: float, sr_scale: float,
                     sr_inv: float, out=None, scratch=None):
    z = (x.abs() * inv_g if out is None else torch.mul(x, inv_g, out=out).abs_()).clamp_max_(elem_max)
    ulp = _ulp(z, man_scale, ulp_min, scratch)
    n = z.mul_(sr_scale).div_(ulp).floor_().add_(r).mul_(sr_inv).floor_()
    return n.mul_(ulp).mul_(factor).copysign_(x).add_(0.0)


def _fast_stochastic_words(x, inv_g, factor, words, mask: int, elem_max: float, man_scale: float, ulp_min: float,
                           sr_scale: float, sr_inv: float):
    """``_fast_stochastic`` with the random bits split from 64-bit draws in the kernel (the bits of
    ``_split_words``): x and the group tensors have a trailing axis of 2 or 1 (element pairs
    2j, 2j+1), words one of 1; the high half of a word goes to the even element."""
    consts = (elem_max, man_scale, ulp_min, sr_scale, sr_inv)
    even = _fast_stochastic(x[..., :1], inv_g[..., :1], factor[..., :1], (words >> 32) & mask, *consts)
    odd = _fast_stochastic(x[..., 1:], inv_g[..., -1:], factor[..., -1:], words & mask, *consts)
    return torch.cat((even, odd), dim=-1)


def _fast_setup(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int, generator,
                fused_absmax=None):
    """§2 steps 1, 2 and 4 for the fast path: ``(x, views, inv_g, factor)``, or None where the
    fast path does not apply (then the code path runs and raises any error).

    The same values and checks as ``_prepare`` (and the FTZ conditions of ``_dequantize_fields``)
    with two host syncs: every condition depends only on the tensor max and the largest group
    exponent, since ``inv_g = inv * 2**g`` and ``factor = 2**-g * S_t``. The scalar FP32 products
    are formed exactly in float64 and rounded once to FP32 (numpy), as the FP32 multiply would.
    """
    if not _fast_format_ok(fmt, rounding, sr_bits):
        return None
    x = _as_fp32(x).detach()  # like the code path, whose output carries no autograd history
    shape = tuple(x.shape)
    if len(shape) == 0 or x.numel() == 0:
        return None
    views = _group_view(grouping, shape)
    if views is None:
        return None
    elem_view, group_view = views
    if random_bits is not None:
        _check_random_bits(random_bits, x.shape, sr_bits)
    if fused_absmax is None:
        # max |x| = max(max x, -min x): one read of x, no |x| copy (NaN and Inf propagate alike;
        # an all-zero group may give -0, which counts as 0 below).
        xg = x.reshape(elem_view[0], elem_view[1], -1) if grouping.span_trailing else x.reshape(elem_view)
        high, low = torch.amax(xg, dim=2, keepdim=True), torch.amin(xg, dim=2, keepdim=True)
        group_max_x = torch.maximum(high, low.neg_()).reshape(group_view)
    else:
        group_max_x = fused_absmax(x)
    amax = float(group_max_x.max())  # NaN and Inf propagate through max
    if not math.isfinite(amax):
        check_finite(x)
    scale, inv = _tensor_scale_scalar(amax if amax >= FP32_MIN_NORMAL else 0.0, fmt)
    if x.device.type == "cpu":
        g = torch.from_numpy(_group_exponent_numpy(group_max_x.detach().numpy(), inv, fmt))
    else:
        g = group_exponent(ftz(daz(group_max_x) * torch.tensor(inv, dtype=torch.float32, device=x.device)), fmt)
    g_max = int(g.max())
    # _prepare's `direct`: every inv_g finite, and fp32(2**-126 * max inv_g) below the limit.
    inv_g_max = inv * 2.0 ** g_max
    elem_min_subnormal, limit = _fast_limits(fmt, sr_bits if rounding == "stochastic" else 1)
    if not (inv_g_max < 2.0 ** 128 and float(np.float32(FP32_MIN_NORMAL * inv_g_max)) < limit):
        return None
    # _dequantize_fields' no-FTZ branch: the smallest factor and its product with the smallest element are normal.
    factor_min = float(np.float32(2.0 ** -g_max * scale))
    if not (factor_min >= FP32_MIN_NORMAL and float(np.float32(elem_min_subnormal * factor_min)) >= FP32_MIN_NORMAL):
        return None
    if x.device.type == "cpu":  # both exact here: inv * 2**g is finite, 2**-g * S_t normal
        g_np = g.numpy().astype(np.int32)
        inv_g = torch.from_numpy(np.ldexp(np.float32(inv), g_np))
        factor = torch.from_numpy(np.ldexp(np.float32(scale), -g_np))
    else:
        inv_g = torch.tensor(inv, dtype=torch.float32, device=x.device) * _pow2(g)
        factor = _pow2(-g.to(torch.int32)) * torch.tensor(scale, dtype=torch.float32, device=x.device)
    return x, views, inv_g, factor


@functools.lru_cache(maxsize=256)
def _fast_limits(fmt: MLSFormat, extra: int) -> tuple[float, float]:
    """``(elem_min_subnormal, limit)``: below ``limit`` a magnitude rounds to code 0 in either
    rounding mode (``extra`` = R bits for stochastic, 1 for nearest)."""
    return fmt.elem_min_subnormal, 2.0 ** (fmt.min_normal_exponent - fmt.man_bits - extra)


_FP32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103  # the smallest real number that rounds (RNE) to FP32 inf


def _tensor_scale_scalar(amax: float, fmt: MLSFormat) -> tuple[float, float]:
    """``tensor_scale`` for an FP32 ``amax`` given as a Python float, without tensor ops.

    Each quotient of two FP32 numbers is formed in float64 and rounded once to FP32: for a
    division the float64 rounding never changes the FP32 result (53 >= 2 * 24 + 2 bits).
    Zero, and the inverse-scale overflow (then ``tensor_scale`` raises its error), go to
    ``tensor_scale``. Tested against it in ``tests/test_quantize.py``.
    """
    if amax == 0.0:
        return tensor_scale(amax, fmt)
    elem_max = _scalar_constants(fmt)[0]
    inv = elem_max / amax
    if inv >= _FP32_OVERFLOW:
        return tensor_scale(amax, fmt)
    return float(np.float32(amax / elem_max)), float(np.float32(inv))


@functools.lru_cache(maxsize=256)
def _scalar_constants(fmt: MLSFormat) -> tuple[float, float, int]:
    """``(elem_max, frexp mantissa of elem_max, its frexp exponent)`` per format."""
    me, ee = np.frexp(np.float32(fmt.elem_max))
    return fmt.elem_max, float(me), int(ee)


def _group_exponent_numpy(group_max: np.ndarray, inv: float, fmt: MLSFormat) -> np.ndarray:
    """``group_exponent(ftz(daz(group_max) * inv), fmt)`` in numpy (CPU; float32 arithmetic,
    the same IEEE operations), for the small per-group tensors, where torch's per-op cost rules."""
    _, me, ee = _scalar_constants(fmt)
    y = np.where(group_max < FP32_MIN_NORMAL, np.float32(0), group_max) * np.float32(inv)
    y = np.where(y < FP32_MIN_NORMAL, np.float32(0), y)
    my, ey = np.frexp(y)
    g = ee - ey.astype(np.int32) - (my > me)
    g = np.where(y == 0, fmt.max_group_exp, g)
    return np.clip(g, 0, fmt.max_group_exp).astype(np.uint8)


@functools.lru_cache(maxsize=256)
def _fast_constants(fmt: MLSFormat, sr_bits: int) -> tuple[float, ...]:
    return (fmt.elem_max, 2.0 ** -fmt.man_bits, 2.0 ** (fmt.min_normal_exponent - fmt.man_bits),
            2.0 ** sr_bits, 2.0 ** -sr_bits)


def _fake_quantize_fast(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                        generator) -> torch.Tensor | None:
    """The eager fast path, or None where its preconditions fail (then the code path runs)."""
    setup = _fast_setup(x, fmt, grouping, rounding, random_bits, sr_bits, generator)
    if setup is None:
        return None
    x, (elem_view, group_view), inv_g, factor = setup
    consts = _fast_constants(fmt, sr_bits)
    xv, inv_g, factor = x.reshape(elem_view), inv_g.reshape(group_view), factor.reshape(group_view)
    # In chunks of about _CHUNK elements along the first axis, so that the ~10-16 element-wise
    # passes run on cache-resident data. Drawing the random bits chunk by chunk, in order, gives
    # the same stream on the CPU (one generator output per element, see _draw_words).
    pre = elem_view[0]
    rows = max(1, _CHUNK // max(1, x.numel() // pre))
    split = rounding == "stochastic" and random_bits is None and _split_draw_ok(generator, x.device)
    if rounding == "stochastic" and random_bits is None and not split:
        random_bits = random_bits_like(x.shape, sr_bits, generator, device=x.device)
    bits = random_bits.reshape(elem_view) if random_bits is not None else None
    out = torch.empty(elem_view, dtype=torch.float32, device=x.device)
    scratch = torch.empty((min(rows, pre),) + elem_view[1:], dtype=torch.int32, device=x.device)
    for start in range(0, pre, rows):
        rs = slice(start, start + rows)
        chunk = out[rs]
        scratch_rs = scratch[:chunk.shape[0]]
        if rounding == "nearest":
            _fast_nearest(xv[rs], inv_g[rs], factor[rs], *consts[:3], out=chunk, scratch=scratch_rs)
            continue
        if split:
            words, tail = _draw_words(chunk.numel(), generator)
            r = _split_words(words, tail, sr_bits).reshape(chunk.shape)
        else:
            r = bits[rs]
        _fast_stochastic(xv[rs], inv_g[rs], factor[rs], r, *consts, out=chunk, scratch=scratch_rs)
    return out.reshape(x.shape)


#: Elements per chunk of the eager fast path (~0.5 MB of FP32: a few live temporaries fit in L2).
_CHUNK = 1 << 17


# -- optional fused kernel (torch.compile) for the training path --------------------------------
_COMPILED_KERNELS: dict | None = None
#: Below this many elements the eager fast path is as fast as a compiled call (dynamo's per-call
#: cost), so small tensors (most weights) stay eager; the bits are the same either way.
_COMPILE_MIN_NUMEL = 1 << 16


def _fused_absmax(x, span_trailing: bool):
    m = x.abs().amax(dim=2, keepdim=True)  # NaN propagates, as in Grouping.group_amax
    return m.amax(dim=3, keepdim=True) if span_trailing else m


def use_compiled_fake_quantize(enabled: bool = True) -> None:
    """Run ``fake_quantize``'s fast path as ``torch.compile``-fused kernels (same bits; opt-in).

    The kernels are ``_fast_nearest`` / ``_fast_stochastic`` (the latter, where the last axis
    has even length, drawing its random bits as 64-bit words split in the kernel: the same bits
    as ``random_bits_like``) and the group max of |x|; cases the fast path does not cover fall
    back to the eager code path. Compiling costs seconds per new shape, so it pays off on long
    runs and big tensors.
    """
    global _COMPILED_KERNELS
    if not enabled:
        _COMPILED_KERNELS = None
        return
    _COMPILED_KERNELS = {"absmax": torch.compile(_fused_absmax, dynamic=True)}


def _compiled(kind: str, *consts):
    """The compiled kernel ``kind`` with the format's constants baked in (Python floats passed
    as arguments would cost a guard check per call)."""
    key = (kind, *consts)
    if key not in _COMPILED_KERNELS:
        fn = {"nearest": _fast_nearest, "stochastic": _fast_stochastic, "stochastic_words": _fast_stochastic_words}[kind]
        if kind == "nearest":
            def kernel(x, inv_g, factor):
                return fn(x, inv_g, factor, *consts)
        else:
            def kernel(x, inv_g, factor, bits):
                return fn(x, inv_g, factor, bits, *consts)
        _COMPILED_KERNELS[key] = torch.compile(kernel, dynamic=True)
    return _COMPILED_KERNELS[key]


def _fake_quantize_compiled(x, fmt: MLSFormat, grouping: Grouping, rounding: str, random_bits, sr_bits: int,
                            generator) -> torch.Tensor | None:
    """The fused path, or None where its preconditions fail (then the eager path runs)."""
    if not _fast_format_ok(fmt, rounding, sr_bits):
        return None
    shape = tuple(torch.as_tensor(x).shape)
    if len(shape) == 0 or _group_view(grouping, shape) is None:
        return None
    elem_view, group_view = _group_view(grouping, shape)
    absmax = _COMPILED_KERNELS["absmax"]

    def fused_absmax(t):
        return absmax(t.reshape(elem_view), grouping.span_trailing)

    setup = _fast_setup(x, fmt, grouping, rounding, random_bits, sr_bits, generator, fused_absmax)
    if setup is None:
        return None
    x, _, inv_g, factor = setup
    elem_max, man_scale, ulp_min, sr_scale, sr_inv = _fast_constants(fmt, sr_bits)
    inv_g, factor = inv_g.reshape(group_view), factor.reshape(group_view)
    if rounding == "nearest":
        out = _compiled("nearest", elem_max, man_scale, ulp_min)(x.reshape(elem_view), inv_g, factor)
    elif random_bits is None and elem_view[-1] % 2 == 0 and _split_draw_ok(generator, x.device):
        # Element pairs (2j, 2j+1) along the last axis take the two halves of 64-bit word j.
        pair_view = elem_view[:-1] + (elem_view[-1] // 2, 2)
        group_pairs = group_view[:-1] + ((group_view[-1] // 2, 2) if group_view[-1] > 1 else (1, 1))
        words, _ = _draw_words(x.numel(), generator)
        kernel = _compiled("stochastic_words", (1 << sr_bits) - 1, elem_max, man_scale, ulp_min, sr_scale, sr_inv)
        out = kernel(x.reshape(pair_view), inv_g.reshape(group_pairs), factor.reshape(group_pairs),
                     words.reshape(pair_view[:-1] + (1,)))
    else:
        if random_bits is None:
            random_bits = random_bits_like(shape, sr_bits, generator, device=x.device)
        kernel = _compiled("stochastic", elem_max, man_scale, ulp_min, sr_scale, sr_inv)
        out = kernel(x.reshape(elem_view), inv_g, factor, random_bits.reshape(elem_view))
    return out.reshape(shape)
