"""The golden stochastic-rounding LFSR (model/lfsr.py): polynomial, seeding, draws."""

import numpy as np
import pytest
import torch

from model.formats import MLSFormat
from model.grouping import Grouping
from model.lfsr import (LANE_SEED_MULTIPLIER, LFSR_TAPS, LFSR_WIDTH, lane_seed, lfsr_draw,
                        lfsr_random_bits, lfsr_step)
from model.quantize import quantize
from model.reference import quantize_reference


def _polymulmod(a: int, b: int, mod: int) -> int:
    """Product of two GF(2)[x] polynomials (bit i = coefficient of x^i) modulo ``mod``."""
    deg = mod.bit_length() - 1
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if a >> deg & 1:
            a ^= mod
    return result


def _polypow(base: int, exp: int, mod: int) -> int:
    result = 1
    while exp:
        if exp & 1:
            result = _polymulmod(result, base, mod)
        base = _polymulmod(base, base, mod)
        exp >>= 1
    return result


def _poly() -> int:
    return (1 << LFSR_WIDTH) | sum(1 << t for t in LFSR_TAPS if t < LFSR_WIDTH) | 1


def test_polynomial_is_primitive():
    # x has order exactly 2^32 - 1 modulo p: x^(2^32-1) = 1 and x^((2^32-1)/q) != 1 for each prime q.
    p, order = _poly(), (1 << 32) - 1
    assert _polypow(0b10, order, p) == 1
    for q in (3, 5, 17, 257, 65537):
        assert _polypow(0b10, order // q, p) != 1, q


def test_step_is_the_polynomial_recurrence():
    # Fibonacci form: the shifted-in bit a_n = XOR of a_{n-t} for each tap t.
    state = lane_seed(12345, 0)
    history = [(state >> i) & 1 for i in reversed(range(LFSR_WIDTH))]  # oldest first
    for _ in range(500):
        state = lfsr_step(state)
        expected = 0
        for tap in LFSR_TAPS:
            expected ^= history[-tap]
        assert state & 1 == expected
        history.append(expected)
    # and the state is the last 32 bits shifted in
    assert state == int("".join(str(b) for b in history[-LFSR_WIDTH:]), 2)


def test_no_short_cycle():
    start = state = lane_seed(7, 3)
    for _ in range(100_000):
        state = lfsr_step(state)
        assert state != start and state != 0


def test_lane_seeds():
    assert lane_seed(0, 0) == LANE_SEED_MULTIPLIER
    assert lane_seed(LANE_SEED_MULTIPLIER, 0) == 1  # lock-up state replaced
    seeds = {lane_seed(0xDEADBEEF, lane) for lane in range(64)}
    assert len(seeds) == 64 and 0 not in seeds


def test_draw_and_random_bits_layout():
    lanes, sr_bits, seed = 3, 8, 0x1234
    bits = lfsr_random_bits(10, lanes, seed, sr_bits)
    assert bits.dtype == torch.int32 and bits.shape == (10,)
    states = [lane_seed(seed, lane) for lane in range(lanes)]
    expected = []
    for _word in range(4):
        for lane in range(lanes):
            states[lane], value = lfsr_draw(states[lane], sr_bits)
            expected.append(value)
    assert bits.tolist() == expected[:10]


@pytest.mark.parametrize("sr_bits", [1, 8, 24])
def test_draws_are_uniform(sr_bits):
    bits = lfsr_random_bits(8_000, 4, 99, sr_bits).numpy()
    assert bits.min() >= 0 and bits.max() < 1 << sr_bits
    # every bit position is balanced (within 5 sigma of 0.5)
    for b in range(sr_bits):
        frac = ((bits >> b) & 1).mean()
        assert abs(frac - 0.5) < 5 * 0.5 / np.sqrt(bits.size), (b, frac)


def test_stochastic_quantize_accepts_lfsr_bits():
    """quantize with the LFSR stream as random_bits is the scalar reference with the same bits,
    and the bits decide the codes (another seed rounds some elements the other way)."""
    fmt, grouping = MLSFormat.parse("e2m1g3"), Grouping.channel()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    bits = lfsr_random_bits(x.numel(), 4, 5).reshape(x.shape)
    q = quantize(x, fmt, grouping, "stochastic", bits)
    scale, group_exp, codes = quantize_reference(x, fmt, grouping, "stochastic", bits)
    assert (q.scale, q.group_exp.tolist(), q.codes().tolist()) == (scale, group_exp.tolist(), codes.tolist())
    other = quantize(x, fmt, grouping, "stochastic", lfsr_random_bits(x.numel(), 4, 6).reshape(x.shape))
    assert not torch.equal(other.codes(), q.codes())


@pytest.mark.parametrize("call, message", [
    (lambda: lane_seed(-1, 0), r"seed must be in \[0, 4294967295\], got -1"),
    (lambda: lane_seed(1 << 32, 0), r"seed must be in \[0, 4294967295\], got 4294967296"),
    (lambda: lane_seed(1.5, 0), r"seed must be an int, not 1.5"),
    (lambda: lfsr_draw(1, 0), r"bits must be in \[1, 31\], got 0"),
    (lambda: lfsr_random_bits(4, 0, 1), r"lanes must be in \[1, 65536\], got 0"),
    (lambda: lfsr_random_bits(4, 1, 1, 25), r"sr_bits must be in \[1, 24\], got 25"),
])
def test_bad_arguments(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
