"""The low-bit tensor arithmetic of docs/numerics.md §3: exact integer GEMM/conv, finite accumulators,
and the output converter to FP32. This is the golden model of the PE array.

The dot-product PE of docs/numerics.md §3.1 (``beat_accumulate``, ``chunked_matmul``) adds L lane
products of one chunk exactly, shifts their sum once by the chunk's group offsets and adds it
into the accumulator, saturating after each beat; ``model.beats`` packs the beats.

An element with its group exponent is the integer ``to_int()`` in units of ``2**-L``, so a
GEMM tile is an integer matmul; a product of two formats is in units of ``2**-(L_a + L_b)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import warnings

import torch
import torch.nn.functional as F

from .beats import BeatStream, GemmOperand, pack_beats
from .formats import MLSFormat
from .fp32 import FP32_MIN_NORMAL
from .mls_tensor import MLSTensor

__all__ = [
    "MAX_EXACT_BITS",
    "AccumulatorOverflowWarning",
    "accumulate",
    "beat_accumulate",
    "chunked_matmul",
    "exact_conv2d",
    "exact_matmul",
    "finite_matmul",
    "fp32_from_int",
    "lane_products",
    "matmul_products",
    "mls_conv2d",
    "mls_matmul",
    "output_convert",
    "saturate",
    "split_k_matmul",
]

#: int64 holds every accumulator up to this width exactly.
MAX_EXACT_BITS = 63
_FLOAT64_EXACT_BITS = 54  # |C| < 2**53: every partial sum of integers is exact in float64


def _check_width(a: MLSFormat, b: MLSFormat, k: int, what: str) -> int:
    bits = a.acc_bits_exact(k, b)
    if bits > MAX_EXACT_BITS:
        raise ValueError(
            f"{what}: exact accumulator for K={k} with {a} x {b} needs {bits} bits, "
            f"more than the {MAX_EXACT_BITS} int64 holds; split the reduction"
        )
    return bits


def exact_matmul(a: MLSTensor, b: MLSTensor) -> torch.Tensor:
    """``C_int[i, j] = sum_k int(A[i, k]) * int(B[k, j])`` exactly (int64). A is [M, K], B is [K, N]."""
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"exact_matmul needs [M, K] x [K, N], got {a.shape} x {b.shape}")
    _check_width(a.fmt, b.fmt, a.shape[1], "exact_matmul")
    return a.to_int() @ b.to_int()


def exact_conv2d(a: MLSTensor, w: MLSTensor, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0) -> torch.Tensor:
    """Integer accumulators of a conv (NCHW activation, OIHW weight), exact (int64).

    Uses a float64 conv while every partial sum provably stays below 2**53, else im2col + int64.
    """
    if len(a.shape) != 4 or len(w.shape) != 4 or a.shape[1] != w.shape[1]:
        raise ValueError(f"exact_conv2d needs NCHW x OIHW with equal C, got {a.shape} x {w.shape}")
    k = w.shape[1] * w.shape[2] * w.shape[3]
    bits = _check_width(a.fmt, w.fmt, k, "exact_conv2d")
    a_int, w_int = a.to_int(), w.to_int()
    if bits <= _FLOAT64_EXACT_BITS:
        return F.conv2d(a_int.double(), w_int.double(), stride=stride, padding=padding).to(torch.int64)
    # Each integer is a short significand times a power of two: exact in float64 for unfold.
    n, _, h, wd = a.shape
    cols = F.unfold(a_int.double(), w.shape[2:], padding=padding, stride=stride).to(torch.int64)
    out = w_int.reshape(w.shape[0], -1) @ cols  # [N, Cout, L]
    stride2 = (stride, stride) if isinstance(stride, int) else tuple(stride)
    pad2 = (padding, padding) if isinstance(padding, int) else tuple(padding)
    ho = (h + 2 * pad2[0] - w.shape[2]) // stride2[0] + 1
    wo = (wd + 2 * pad2[1] - w.shape[3]) // stride2[1] + 1
    return out.reshape(n, w.shape[0], ho, wo)


def saturate(value: torch.Tensor, acc_bits: int) -> torch.Tensor:
    """Clamp to the two's-complement range of ``acc_bits`` bits."""
    return value.clamp(-(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1)


def _check_acc_bits(acc_bits: object) -> int:
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, int) or not 2 <= acc_bits <= MAX_EXACT_BITS:
        raise ValueError(f"acc_bits must be an int in [2, {MAX_EXACT_BITS}], got {acc_bits!r}")
    return acc_bits


def accumulate(products: torch.Tensor, acc_bits: int, order: Sequence[int] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A finite saturating accumulator over the last axis of ``products`` (int64).

    Adds in ``order`` (default: k ascending, as the PE does), saturating after every add, and
    returns ``(acc, overflow)`` where ``overflow`` is the sticky flag (any add saturated).
    Exact for every int64 product: the sum ``acc + product`` is never formed where it could
    leave int64 (a product past the room left to either limit saturates instead).
    """
    _check_acc_bits(acc_bits)
    products = torch.as_tensor(products)
    if torch.is_floating_point(products) or products.dtype == torch.bool or products.is_complex():
        raise TypeError(f"products must be integers, got dtype {products.dtype}")
    k = products.shape[-1]
    order = range(k) if order is None else list(order)
    if sorted(order) != list(range(k)):
        raise ValueError(f"order must be a permutation of range({k})")
    acc = torch.zeros(products.shape[:-1], dtype=torch.int64)
    overflow = torch.zeros(products.shape[:-1], dtype=torch.bool)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    for index in order:
        product = products[..., index].to(torch.int64)
        room_up, room_down = hi - acc, lo - acc  # both fit in int64 since lo <= acc <= hi
        overflow |= (product > room_up) | (product < room_down)
        acc = acc + torch.minimum(torch.maximum(product, room_down), room_up)
    return acc, overflow


# -- the dot-product PE (docs/numerics.md §3.1) -----------------------------------------------------------
def lane_products(a_codes: torch.Tensor, w_codes: torch.Tensor, fmt_a: MLSFormat, fmt_w: MLSFormat) -> torch.Tensor:
    """Lane products ``p = ±sig_a * sig_w * 2**((max(e_a,1) - 1) + (max(e_w,1) - 1))`` of signed
    element codes (element exponents only; the group shift comes once per beat), int64,
    broadcast over the two code tensors. Refuses pairs whose lane product exceeds 63 bits."""
    bits = fmt_a.elem_product_bits(fmt_w)
    if bits > MAX_EXACT_BITS:
        raise ValueError(f"a lane product of {fmt_a} x {fmt_w} needs {bits} bits, more than the {MAX_EXACT_BITS} int64 holds")

    def split(codes: torch.Tensor, fmt: MLSFormat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = torch.as_tensor(codes).to(torch.int64)
        magnitude = codes & ((1 << (fmt.exp_bits + fmt.man_bits)) - 1)
        exp, man = magnitude >> fmt.man_bits, magnitude & ((1 << fmt.man_bits) - 1)
        sig = torch.where(exp > 0, man + (1 << fmt.man_bits), man) if fmt.exp_bits else man
        return codes >> (fmt.exp_bits + fmt.man_bits), sig, exp.clamp(min=1) - 1

    sign_a, sig_a, shift_a = split(a_codes, fmt_a)
    sign_w, sig_w, shift_w = split(w_codes, fmt_w)
    magnitude = (sig_a * sig_w) << (shift_a + shift_w)
    return torch.where((sign_a ^ sign_w).bool(), -magnitude, magnitude)


def _saturating_shifted_add(acc: torch.Tensor, total: torch.Tensor, shift: torch.Tensor, lo: int, hi: int
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``sat(acc + total * 2**shift)`` and whether it saturated, for any shift >= 0.

    ``total * 2**shift`` may not fit int64 (a shift of up to 2 (2**G - 1) = 126); it is compared
    with the room to each limit shifted down instead, and formed only where it fits:
    ``t * 2**s > room`` exactly when ``t > floor(room / 2**s)`` for an integer t.
    """
    room_up, room_down = hi - acc, acc - lo  # non-negative, each below 2**63
    capped = shift.clamp(max=63)  # a non-negative int64 shifted right by 63 or more is 0
    up = total > (room_up >> capped)
    down = total < -(room_down >> capped)
    fits = ~(up | down)
    contribution = torch.where(fits, total, 0) << torch.where(fits & (total != 0), shift, 0)
    acc = torch.where(up, hi, torch.where(down, lo, acc + contribution))
    return acc, up | down


def beat_accumulate(stream: BeatStream, acc_bits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The dot-product PE over a beat stream: ``(C_int [a_lines, w_lines], overflow)``.

    Per beat and output: ``T = sum_l p_l`` exactly (``lane_products``), then
    ``acc <- sat(acc + T * 2**((2**G_a - 1 - g_a) + (2**G_w - 1 - g_w)))``, beats in stream
    order. ``acc_bits=None`` is the exact accumulator (refused past 63 bits; never overflows);
    a finite ``acc_bits`` saturates after each beat's add and sets the sticky flag.
    """
    if not isinstance(stream, BeatStream):
        raise TypeError(f"stream must be a BeatStream (model.beats.pack_beats), not {type(stream).__name__}")
    fmt_a, fmt_w = stream.fmt_a, stream.fmt_w
    tree_bits = fmt_a.beat_sum_bits(stream.lanes, fmt_w)
    if tree_bits > MAX_EXACT_BITS:
        raise ValueError(f"the adder tree of {fmt_a} x {fmt_w} at L={stream.lanes} needs {tree_bits} bits, "
                         f"more than the {MAX_EXACT_BITS} int64 holds")
    if acc_bits is None:
        _check_width(fmt_a, fmt_w, stream.k, "beat_accumulate")
        lo, hi = -(1 << (MAX_EXACT_BITS - 1)), (1 << (MAX_EXACT_BITS - 1)) - 1  # never reached
    else:
        _check_acc_bits(acc_bits)
        lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    shape = (stream.a_codes.shape[1], stream.w_codes.shape[1])
    acc = torch.zeros(shape, dtype=torch.int64)
    overflow = torch.zeros(shape, dtype=torch.bool)
    for beat in range(stream.beats):
        total = lane_products(stream.a_codes[beat][:, None, :], stream.w_codes[beat][None, :, :], fmt_a, fmt_w).sum(-1)
        shift = ((fmt_a.max_group_exp - stream.a_group[beat])[:, None]
                 + (fmt_w.max_group_exp - stream.w_group[beat])[None, :])
        acc, saturated = _saturating_shifted_add(acc, total, shift, lo, hi)
        overflow |= saturated
    return acc, overflow


def chunked_matmul(a: MLSTensor | GemmOperand, w: MLSTensor | GemmOperand, lanes: int,
                   acc_bits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """GEMM through an L-lane dot-product PE per output: ``(C_int, overflow)``.

    A is ``[M, K]`` and W ``[K, N]`` (MLSTensor, or ``GemmOperand`` lines); the formats may
    differ. With ``acc_bits=None`` the result equals ``exact_matmul`` for every L.
    """
    return beat_accumulate(pack_beats(a, w, lanes), acc_bits)


def matmul_products(a: MLSTensor, b: MLSTensor) -> torch.Tensor:
    """Every product ``int(A[i,k]) * int(B[k,j])`` as an int64 tensor [M, N, K]."""
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_products needs [M, K] x [K, N], got {a.shape} x {b.shape}")
    _check_width(a.fmt, b.fmt, 1, "matmul_products")
    return a.to_int()[:, None, :] * b.to_int().T[None, :, :]


def finite_matmul(a: MLSTensor, b: MLSTensor, acc_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GEMM through a finite ``acc_bits`` accumulator per output, k ascending: ``(C_int, overflow)``."""
    return accumulate(matmul_products(a, b), acc_bits)


def fp32_from_int(value: torch.Tensor, lsb_exponent: int) -> torch.Tensor:
    """``fp32_rne(value * 2**-lsb_exponent)`` for int64 ``value``, computed exactly.

    The integer is rounded once to 24 significant bits (ties to even); a result below the FP32
    normal range is flushed to zero, one above it becomes ±inf.
    """
    value = torch.as_tensor(value).to(torch.int64)
    magnitude = value.abs()
    bit_length = _bit_length(magnitude)
    drop = (bit_length - 24).clamp(min=0)
    kept = magnitude >> drop
    remainder = magnitude - (kept << drop)
    half = torch.where(drop > 0, torch.ones_like(drop) << (drop - 1).clamp(min=0), torch.zeros_like(drop))
    round_up = (drop > 0) & ((remainder > half) | ((remainder == half) & (kept & 1 == 1)))
    kept = kept + round_up.to(torch.int64)
    result = torch.ldexp(kept.double(), (drop - lsb_exponent).double())  # exact: kept <= 2**24
    result = torch.where(value < 0, -result, result)
    result = torch.where(result.abs() < FP32_MIN_NORMAL, torch.zeros_like(result), result)
    return result.to(torch.float32)  # exact, or ±inf past the FP32 range


def _bit_length(magnitude: torch.Tensor) -> torch.Tensor:
    """Bit length of non-negative int64 values, by binary search on shifts (exact)."""
    length = torch.zeros_like(magnitude)
    rest = magnitude.clone()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (1 << step)
        length += big.to(torch.int64) * step
        rest = torch.where(big, rest >> step, rest)
    return length + (rest > 0).to(torch.int64)


def output_convert(c_int: torch.Tensor, scale_a: float, scale_b: float, lsb_exponent: int) -> torch.Tensor:
    """§3 output converter: ``fp32_rne(C_int * 2**-L)`` then ``* fp32(S_tA * S_tB)``, RNE, FTZ.

    ``lsb_exponent`` is ``L_a + L_b`` of the two operand formats.
    """
    scale = torch.tensor(scale_a, dtype=torch.float32) * torch.tensor(scale_b, dtype=torch.float32)
    product = fp32_from_int(c_int, lsb_exponent) * scale
    return torch.where(product.abs() < FP32_MIN_NORMAL, torch.zeros_like(product), product)


class AccumulatorOverflowWarning(RuntimeWarning):
    """A finite accumulator saturated and the caller did not ask for the overflow flags."""


def _k_slice(t: MLSTensor | GemmOperand, start: int, stop: int, role: str) -> GemmOperand:
    line = t if isinstance(t, GemmOperand) else (GemmOperand.rows(t) if role == "A" else GemmOperand.columns(t))
    return GemmOperand(line.fmt, line.codes[:, start:stop], line.group_exp[:, start:stop], line.group_id[:, start:stop])


def split_k_matmul(a: MLSTensor, b: MLSTensor, k_segment: int, acc_bits: int | None = None, *,
                   lanes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A GEMM whose K is split into segments, as an engine with a partial-sum buffer runs it:
    ``(C_int, overflow)``.

    K is cut into segments of ``k_segment`` (the last may be shorter). Each segment's integer
    result is computed from zero exactly as the PE computes a whole GEMM (``finite_matmul`` for
    the scalar PE, ``chunked_matmul`` over the segment's own chunks for an L-lane PE; exact for
    ``acc_bits=None``), then the partial sums are added segment by segment in order,
    ``psum <- sat(psum + part)`` at ``acc_bits`` (docs/numerics.md §3.2). With an accumulator
    that cannot saturate (``acc_bits=None``, or wide enough for the whole K) this equals the
    unsplit GEMM bit for bit; where one saturates it need not (saturation is not associative),
    and ``overflow`` is set for that output either way.
    """
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"split_k_matmul needs [M, K] x [K, N], got {a.shape} x {b.shape}")
    if isinstance(k_segment, bool) or not isinstance(k_segment, int) or k_segment < 1:
        raise ValueError(f"k_segment must be a positive int, got {k_segment!r}")
    k = a.shape[1]
    if acc_bits is None:
        _check_width(a.fmt, b.fmt, k, "split_k_matmul")
        lo, hi = -(1 << (MAX_EXACT_BITS - 1)), (1 << (MAX_EXACT_BITS - 1)) - 1   # never reached
    else:
        _check_acc_bits(acc_bits)
        lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    psum = torch.zeros((a.shape[0], b.shape[1]), dtype=torch.int64)
    overflow = torch.zeros(psum.shape, dtype=torch.bool)
    products = matmul_products(a, b) if lanes is None and acc_bits is not None else None
    for start in range(0, k, k_segment):
        stop = min(start + k_segment, k)
        if lanes is not None:
            part, saturated = chunked_matmul(_k_slice(a, start, stop, "A"), _k_slice(b, start, stop, "W"), lanes, acc_bits)
        elif acc_bits is not None:
            part, saturated = accumulate(products[..., start:stop], acc_bits)
        else:
            part = a.to_int()[:, start:stop] @ b.to_int()[start:stop]
            saturated = torch.zeros(psum.shape, dtype=torch.bool)
        # sat(psum + part), never forming a sum past int64 (acc_bits may be 63)
        psum, carried = _saturating_shifted_add(psum, part, torch.zeros_like(part), lo, hi)
        overflow |= saturated | carried
    return psum, overflow


def mls_matmul(a: MLSTensor, b: MLSTensor, acc_bits: int | None = None, *, lanes: int | None = None,
               return_overflow: bool = False, k_segment: int | None = None):
    """FP32 result of an MLS GEMM as the hardware computes it (exact or finite accumulator).

    ``lanes=None`` is the scalar PE (saturation after every product, ``finite_matmul``); an int
    is the L-lane dot-product PE (saturation after every beat, ``chunked_matmul``). With
    ``return_overflow=True`` returns ``(result, overflow)``, the per-output sticky flags (all
    False for the exact accumulator). Otherwise a saturated output raises an
    ``AccumulatorOverflowWarning`` naming how many outputs saturated, so it is never silent.
    ``k_segment`` splits K as an engine with a partial-sum buffer does (:func:`split_k_matmul`).
    """
    if k_segment is not None and k_segment < a.shape[-1]:
        c_int, overflow = split_k_matmul(a, b, k_segment, acc_bits, lanes=lanes)
    elif acc_bits is None and lanes is None:
        c_int = exact_matmul(a, b)
        overflow = torch.zeros(c_int.shape, dtype=torch.bool)
    elif lanes is None:
        c_int, overflow = finite_matmul(a, b, acc_bits)
    else:
        c_int, overflow = chunked_matmul(a, b, lanes, acc_bits)
    result = output_convert(c_int, a.scale, b.scale, a.fmt.lsb_exponent + b.fmt.lsb_exponent)
    if return_overflow:
        return result, overflow
    if bool(overflow.any()):
        warnings.warn(f"mls_matmul: {int(overflow.sum())} of {overflow.numel()} outputs saturated the "
                      f"{acc_bits}-bit accumulator; pass return_overflow=True to get the flags",
                      AccumulatorOverflowWarning, stacklevel=2)
    return result


def mls_conv2d(a: MLSTensor, w: MLSTensor, stride: int | tuple[int, int] = 1,
               padding: int | tuple[int, int] = 0) -> torch.Tensor:
    """FP32 result of an MLS conv through the exact path: the golden model of a whole conv layer."""
    c_int = exact_conv2d(a, w, stride, padding)
    return output_convert(c_int, a.scale, w.scale, a.fmt.lsb_exponent + w.fmt.lsb_exponent)
