"""The golden LFSR of stochastic rounding in the quantization unit (docs/numerics.md §2 step 5).

The hardware (`hw/quant_unit/lfsr.py`) and this model produce identical bits, so
``quantize(..., rounding="stochastic", random_bits=lfsr_random_bits(...))`` reproduces the RTL
bit for bit.

Definition
----------
- **Register**: a 32-bit Fibonacci LFSR, one per lane. Feedback polynomial
  ``x^32 + x^22 + x^2 + x + 1`` (primitive, period ``2**32 - 1``; taps 32, 22, 2, 1 of
  Xilinx XAPP052). One step shifts the state left by one and shifts in the feedback bit
  ``f = s[31] ^ s[21] ^ s[1] ^ s[0]`` at bit 0.
- **Seeding per lane**: ``state_lane = seed ^ (0x9E3779B9 * (lane + 1) mod 2**32)``; a state
  that comes out 0 (the lock-up state) is replaced by 1. Different lanes therefore start at
  different, well-separated phases of the same maximal sequence.
- **Drawing R bits**: for every output word (``lanes`` elements) each lane steps R times
  (R = ``sr_bits`` <= 24 < 32, so all R bits are fresh) and its random value is the low R bits
  of the new state (the last shifted-in bit is bit 0). The first draw after seeding already
  uses the stepped state.
- **Element order**: element ``i`` of the flattened (row-major) tensor is lane ``i % lanes``
  of word ``i // lanes``, so it gets that lane's ``(i // lanes)``-th draw.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "LFSR_WIDTH",
    "LFSR_TAPS",
    "LANE_SEED_MULTIPLIER",
    "lane_seed",
    "lfsr_step",
    "lfsr_draw",
    "lfsr_random_bits",
]

LFSR_WIDTH = 32
#: Exponents of the feedback polynomial's non-constant terms, x^32 + x^22 + x^2 + x + 1.
LFSR_TAPS = (32, 22, 2, 1)
#: Golden-ratio constant used to spread the per-lane seeds.
LANE_SEED_MULTIPLIER = 0x9E3779B9
_MASK = (1 << LFSR_WIDTH) - 1
MAX_DRAW_BITS = LFSR_WIDTH - 1


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def lane_seed(seed: int, lane: int) -> int:
    """Initial state of ``lane`` for a 32-bit ``seed`` (never the lock-up state 0)."""
    seed = _check_int("seed", seed, 0, _MASK)
    lane = _check_int("lane", lane, 0, 1 << 16)
    state = seed ^ ((LANE_SEED_MULTIPLIER * (lane + 1)) & _MASK)
    return state if state else 1


def lfsr_step(state: int) -> int:
    """One shift: new bit 0 is the XOR of the tap bits ``s[t - 1]`` for t in LFSR_TAPS."""
    feedback = 0
    for tap in LFSR_TAPS:
        feedback ^= (state >> (tap - 1)) & 1
    return ((state << 1) | feedback) & _MASK


def lfsr_draw(state: int, bits: int) -> tuple[int, int]:
    """Step ``bits`` times; return ``(new_state, low `bits` bits of new_state)``."""
    bits = _check_int("bits", bits, 1, MAX_DRAW_BITS)
    for _ in range(bits):
        state = lfsr_step(state)
    return state, state & ((1 << bits) - 1)


def lfsr_random_bits(count: int, lanes: int, seed: int, sr_bits: int = 8) -> torch.Tensor:
    """The random values the quantization unit uses for ``count`` elements (int32, shape [count]).

    Pass ``.reshape(x.shape)`` as ``random_bits`` to ``model.quantize.quantize``.
    """
    count = _check_int("count", count, 0, 1 << 40)
    lanes = _check_int("lanes", lanes, 1, 1 << 16)
    sr_bits = _check_int("sr_bits", sr_bits, 1, 24)
    words = -(-count // lanes)
    states = np.array([lane_seed(seed, lane) for lane in range(lanes)], dtype=np.uint64)
    out = np.empty((words, lanes), dtype=np.int64)
    mask = np.uint64(_MASK)
    one = np.uint64(1)
    for word in range(words):
        for _ in range(sr_bits):
            feedback = np.zeros_like(states)
            for tap in LFSR_TAPS:
                feedback ^= (states >> np.uint64(tap - 1)) & one
            states = ((states << one) | feedback) & mask
        out[word] = (states & np.uint64((1 << sr_bits) - 1)).astype(np.int64)
    return torch.from_numpy(out.reshape(-1)[:count].astype(np.int32))
