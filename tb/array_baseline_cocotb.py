# amaranth: UnusedElaboratable=no
"""cocotb tests of SystolicArray with baseline PEs (``pe="fp32" | "fp8-..." | "int8"``, see
test_array_baseline.py): bit-exact against ``model.baseline_arith`` and cycle-exact against
``hw.array.timing``, with the same stream driver as the MLS array (``tb/array_cocotb.py``).

Golden model: every output C[i, j] is the sequential MAC of ``model.baseline_arith`` over
k = 0 .. K-1 in that order (``fp32_mac`` / ``fp8_mac`` / ``int8_mac`` with ``clear`` at k = 0,
the PE's ``first``), i.e. two FP32 roundings per step (RNE, DAZ inputs, FTZ products and sums,
canonical NaN); the FP8 product is exact; INT32 wraps. Float order matters: the tiles use
values with spread exponents, so a PE that summed in another order, dropped ``first`` or
mis-skewed an operand would differ.
"""

from __future__ import annotations

import random

import numpy as np

import cocotb
from cocotb.triggers import FallingEdge

from hw.array.timing import ArrayTiming
from model import baseline_arith as ba
from hw.fpga.tiles import array_tile_words
from tb.array_cocotb import array_of, check_cycles, reset, run_tiles
from tb.harness import tb_params

MASK32 = 0xFFFFFFFF


def _fp32_wild(rng, shape):
    """Bit patterns with specials: uniform patterns (NaN/Inf/subnormal/huge) and boundary exponents."""
    n = int(np.prod(shape))
    uniform = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    exps = rng.choice([0, 1, 2, 60, 63, 64, 66, 127, 190, 192, 253, 254, 255], n)
    near = ((rng.integers(0, 2, n, dtype=np.uint64) << 31) | (exps.astype(np.uint64) << 23)
            | rng.integers(0, 1 << 23, n, dtype=np.uint64))
    return np.where(rng.random(n) < 0.3, uniform, near).astype(np.uint32).reshape(shape)


def baseline_operands(rng, kind, fmt, shape, style):
    """Raw operand codes (uint32 FP32 bits, FP8 codes, or signed INT8 values) of one matrix."""
    if kind == "fp32":
        if style == "wild":
            return _fp32_wild(rng, shape).astype(np.int64)
        vals = (rng.standard_normal(shape) * 2.0 ** rng.integers(-10, 11, shape)).astype(np.float32)
        bits = ba.f32_to_bits(vals).astype(np.int64)
        if style == "sparse":   # zeros of both signs and subnormal inputs (DAZ)
            pick = rng.random(shape)
            bits = np.where(pick < 0.25, 0, bits)
            bits = np.where((pick >= 0.25) & (pick < 0.4), (bits & 0x807FFFFF), bits)
        return bits
    if kind == "fp8":
        f = ba.float_format(fmt)
        codes = rng.integers(0, 256, shape)
        if style != "wild":   # no NaN (and, for E5M2, no Inf) codes: finite sums that round
            top = ((codes >> f.man_bits) & f.max_exp_field) == f.max_exp_field
            special = top if f.ieee_specials else (top & ((codes & ((1 << f.man_bits) - 1)) == (1 << f.man_bits) - 1))
            codes = np.where(special, codes & ~(1 << (f.bits - 2)), codes)
        if style == "sparse":
            codes = np.where(rng.random(shape) < 0.4, codes & ((1 << f.man_bits) - 1) | (codes & 0x80), codes)
        return codes.astype(np.int64)
    if style == "wild":   # the largest products, all of one sign: the wrapping corner of INT32
        return np.full(shape, -128, dtype=np.int64)
    vals = rng.integers(-128, 128, shape)
    if style == "sparse":
        vals = np.where(rng.random(shape) < 0.5, 0, vals)
    return vals.astype(np.int64)


def golden(kind, fa, fw, a, w):
    """C [R, C] as 32-bit patterns: the sequential MAC of model.baseline_arith, k ascending."""
    K = a.shape[1]
    acc = None
    for k in range(K):
        x, y = a[:, k:k + 1], w[k:k + 1, :]
        if kind == "fp32":
            acc = ba.fp32_mac(0 if acc is None else acc, x.astype(np.uint32), y.astype(np.uint32), clear=acc is None)
        elif kind == "fp8":
            acc = ba.fp8_mac(0 if acc is None else acc, x, y, fa, fw, clear=acc is None)
        else:
            acc = ba.int8_mac(0 if acc is None else acc, x, y, clear=acc is None)
    return (np.asarray(acc).astype(np.int64) & MASK32).tolist()


class BaselineTile:
    """One GEMM tile: ``a``/``w`` payload words (packed from the array's layouts, ``last`` on beat
    K - 1) and the expected rows (32-bit patterns)."""

    def __init__(self, arr, a, w):
        self.k = a.shape[1]
        self.a_beats, self.w_beats = array_tile_words(arr, a, w)
        kind, fa, fw = arr.pe_formats
        self.acc = golden(kind, fa, fw, a, w)


def setup():
    p = tb_params()
    timing = ArrayTiming(p["rows"], p["cols"], p["pe_latency"])
    return p, timing


def make_tile(p, rng, k, style):
    R, C = p["rows"], p["cols"]
    a = baseline_operands(rng, p["kind"], p["fmt_a"], (R, k), style)
    w = baseline_operands(rng, p["kind"], p["fmt_w"], (k, C), style)
    return BaselineTile(array_of(p), a, w)


def plan(p, rng, prng):
    R, C, max_k = p["rows"], p["cols"], p["max_k"]
    ks = [1, prng.randrange(2, 2 * (R + C)) | 1, 3 * (R + C) + 7, max_k, 2, R + C - 1, R + C, R + C + 1]
    styles = ["random", "sparse", "wild"]
    return [make_tile(p, rng, k, styles[n % 3]) for n, k in enumerate(ks)]


def check_rows(tiles, rows, R, C):
    for n, t in enumerate(tiles):
        for i in range(R):
            data, flags, last = rows[n * R + i]
            got = [d & MASK32 for d in data]
            assert got == t.acc[i], (f"tile {n} (K={t.k}) row {i}: rtl {[hex(x) for x in got]} != "
                                     f"model {[hex(x) for x in t.acc[i]]}")
            assert flags == [0] * C, f"tile {n} row {i}: overflow flags {flags} (baselines never flag)"
            assert last == int(i == R - 1), f"tile {n} row {i}: last = {last}"


async def _run(dut, p, tiles, prng, stalls=(0, 0, 0)):
    return await run_tiles(dut, tiles, p["rows"], p["cols"], 32, prng, *stalls)


@cocotb.test()
async def single_tiles(dut):
    """Each tile alone (K = 1, odd K, K = max_k, ...): bit-exact, and cycles == tile_cycles(K)."""
    p, timing = setup()
    await reset(dut)
    rng, prng = np.random.default_rng(p["seed"]), random.Random(p["seed"])
    for tile in plan(p, rng, prng)[:4]:
        rows, ins, outs = await _run(dut, p, [tile], prng)
        check_rows([tile], rows, p["rows"], p["cols"])
        check_cycles([tile], ins, outs, timing, p["rows"])
        for _ in range(3):
            await FallingEdge(dut.clk)


@cocotb.test()
async def back_to_back(dut):
    """Tiles back to back with no stalls: drain overlaps the next tile; cycles == tiles_cycles(ks)."""
    p, timing = setup()
    await reset(dut)
    rng, prng = np.random.default_rng(p["seed"] + 1), random.Random(p["seed"] + 1)
    tiles = plan(p, rng, prng)
    rows, ins, outs = await _run(dut, p, tiles, prng)
    check_rows(tiles, rows, p["rows"], p["cols"])
    check_cycles(tiles, ins, outs, timing, p["rows"])


@cocotb.test()
async def stalls(dut):
    """Random valid/ready stalls on all three streams: still bit-exact, rows in order."""
    p, timing = setup()
    await reset(dut)
    rng, prng = np.random.default_rng(p["seed"] + 2), random.Random(p["seed"] + 2)
    for stall in ((0.3, 0.0, 0.0), (0.0, 0.3, 0.5), (0.4, 0.4, 0.7)):
        tiles = plan(p, rng, prng)[: p["stall_tiles"]]
        rows, ins, outs = await _run(dut, p, tiles, prng, stall)
        check_rows(tiles, rows, p["rows"], p["cols"])
        assert outs[-1] - ins[0] + 1 >= timing.tiles_cycles([t.k for t in tiles])
