# amaranth: UnusedElaboratable=no
"""Testbenches of the output converter (``hw.convert.OutputConverter``), cocotb side in
convert_cocotb.py: bit-exact against ``model.arith.output_convert`` under both simulators.

Stimulus (built here, expected results from the golden model): every accumulator value of a
10-bit accumulator under several scale pairs (exhaustive); exact ties and near-ties of the
24-bit rounding (both neighbours, both directions, both signs) at wide accumulators; results that
underflow (FTZ, including the ones IEEE rounds up to 2**-126) and overflow to +-inf, from the
integer and from the scale product; zero, negatives, the most negative accumulator, 63-bit
accumulators; subnormal and overflowing scale products (0 * inf = NaN). Random stalls on input
and output, the pipeline latency with no stalls, lanes 1..4.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
import torch

from hw.convert import FP32Multiply, IntToFP32, OutputConverter
from model.arith import output_convert
from tb.harness import run_cocotb


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f2b(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def b2f(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b))[0]


def _scales(rng: random.Random) -> list[tuple[float, float]]:
    pairs = [(1.0, 1.0), (0.5, 3.0), (f32(1 / 6), f32(1 / 3)), (2.0 ** -70, 2.0 ** -70), (2.0 ** 70, 2.0 ** 70),
             (b2f(0x3F800001), b2f(0x3F7FFFFF)), (b2f(0x3F7FFFFF), 1.0), (2.0 ** -140, 1.5), (b2f(0x00000003), 1.0), (2.0 ** -80, 2.0 ** -80)]
    for _ in range(4):
        pairs.append((b2f((rng.randrange(40, 215) << 23) | rng.getrandbits(23)),
                      b2f((rng.randrange(40, 215) << 23) | rng.getrandbits(23))))
    return pairs


def _tie_values(acc_bits: int, rng: random.Random) -> list[int]:
    """Exact ties at the 24-bit rounding and their neighbours, both parities and signs."""
    hi = (1 << (acc_bits - 1)) - 1
    values = []
    for drop in range(1, acc_bits - 24):
        for kept in ((1 << 23), (1 << 23) + 1, (1 << 24) - 1, (1 << 24) - 2, rng.randrange(1 << 23, 1 << 24)):
            tie = (kept << drop) + (1 << (drop - 1))
            for v in (tie - 1, tie, tie + 1):
                if 0 <= v <= hi:
                    values += [v, -v]
    return values


def _cases(acc_bits: int, lsb: int, lanes: int, exhaustive: bool, seed: int) -> list[dict]:
    rng = random.Random(seed)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if exhaustive:
        base = list(range(lo, hi + 1))
    else:
        base = [0, 1, -1, lo, hi, lo + 1, hi - 1] + _tie_values(acc_bits, rng)
        base += [rng.randrange(lo, hi + 1) for _ in range(300)]
        base += [rng.choice([-1, 1]) * (rng.getrandbits(rng.randrange(1, acc_bits)) | 1) for _ in range(200)]
        if 0 <= lsb - 126 < acc_bits - 2:   # x = 2**-126 and neighbours: x * (1 - 2**-24) rounds up to 2**-126
            base += [(1 << (lsb - 126)) + d for d in range(-2, 3)] + [-(1 << (lsb - 126))]
        base = [min(max(v, lo), hi) for v in base]
    cases = []
    for sa, sb in _scales(rng):
        values = list(base) if exhaustive or len(cases) < 2 else rng.sample(base, min(len(base), 120))
        if not exhaustive and 0 <= lsb - 126 < acc_bits - 2:
            values += [(1 << (lsb - 126)) + d for d in range(-2, 3)]
        values += [0] * (-len(values) % lanes)
        expected = output_convert(torch.tensor(values, dtype=torch.int64), sa, sb, lsb)
        cases.append({"scale_a": f2b(sa), "scale_b": f2b(sb), "values": values,
                      "expected": [f2b(float(e)) for e in expected]})
    return cases


CONFIGS = {
    # name: acc_bits, lsb_exponent, lanes, exhaustive
    "w10_exhaustive": (10, 14, 1, True),
    "w40_ties_l4": (40, 14, 4, False),
    "w63_underflow": (63, 150, 2, False),
    "w63_overflow": (63, -70, 3, False),
    "w24_l1": (24, 0, 1, False),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_convert(name, tmp_path):
    acc_bits, lsb, lanes, exhaustive = CONFIGS[name]
    cases = _cases(acc_bits, lsb, lanes, exhaustive, seed=17)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    dut = OutputConverter(acc_bits, lsb, lanes)
    run_cocotb(dut, "mls_convert", "convert_cocotb", params={
        "acc_bits": acc_bits, "lanes": lanes, "latency": dut.latency, "cases": str(path), "seed": 5})


def test_convert_covers_corners():
    """The stimulus really holds what the docstring promises (else a test could pass vacuously)."""
    tie_cases = _cases(40, 14, 4, False, seed=17)
    exp = [e for c in tie_cases for e in c["expected"]]
    assert 0x7F800000 in exp and 0xFF800000 in exp          # +-inf (scale product 2**140)
    assert 0 in exp and any(e == 0 for c in tie_cases for v, e in zip(c["values"], c["expected"]) if v != 0)  # FTZ
    under = _cases(63, 150, 2, False, seed=17)
    assert any(e == 0x00800000 for c in under for e in c["expected"])      # rounded up to 2**-126
    over = _cases(63, -70, 3, False, seed=17)
    assert any(e in (0x7F800000, 0xFF800000) for c in over[:1] for e in c["expected"])
    assert any(b2f(e) != b2f(e) for c in over for e in c["expected"])     # 0 * inf


def test_convert_parameters():
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 63\], got 64$"):
        OutputConverter(64, 14)
    with pytest.raises(TypeError, match=r"^acc_bits must be an int, not 8.0$"):
        OutputConverter(8.0, 14)
    with pytest.raises(ValueError, match=r"^lsb_exponent must be in \[-1024, 1024\], got 1025$"):
        OutputConverter(8, 1025)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 64\], got 0$"):
        OutputConverter(8, 14, 0)
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 63\], got 1$"):
        IntToFP32(1, 0)
    with pytest.raises(TypeError, match=r"^flush must be a bool, not 1$"):
        FP32Multiply(flush=1)
    dut = OutputConverter(40, 14, 4)
    assert (dut.latency, dut.lanes, dut.acc_bits, dut.lsb_exponent) == (2, 4, 40, 14)
