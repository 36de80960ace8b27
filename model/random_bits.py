"""Random bits for stochastic rounding (the R bits of step 5 in docs/numerics.md, "Quantization").

``random_bits_like`` is the training-time source: torch's RNG, ``torch.randint``'s values element
for element, drawn faster on the CPU. ``check_random_bits`` validates bits from any source (the
hardware LFSR stream of ``model.lfsr`` included).
"""

from __future__ import annotations

import math

import torch

__all__ = ["DEFAULT_SR_BITS", "MAX_SR_BITS", "check_random_bits", "random_bits_like"]

#: Random bits added below the target ulp in stochastic rounding (R of step 5).
DEFAULT_SR_BITS = 8
MAX_SR_BITS = 24


def check_random_bits(random_bits: torch.Tensor, shape: torch.Size, sr_bits: int) -> None:
    """Raise unless ``random_bits`` is an integer tensor of ``shape`` with values in [0, 2**sr_bits)."""
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

