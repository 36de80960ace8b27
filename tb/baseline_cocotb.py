"""cocotb tests of the baseline PEs (hw/baseline), bit-exact against model.baseline_arith.

Vectors stream one per cycle: inputs change on the falling edge, the accumulator (latency 1) is
read on the next falling edge. ``tb_params()["pe"]`` names the PE (fp32 | fp8 | int8); the
pytest side picks which tests run for which PE.
"""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from model import baseline_arith as ba
from tb.harness import tb_params

P = tb_params()
SEED = int(P.get("seed", 2026))


async def _start(dut):
    """One accumulating cycle (so acc holds something), then reset: acc must read 0."""
    dut.valid.value = 1
    dut.clear.value = 1
    dut.a.value = 0x7F
    dut.b.value = 0x7F
    dut.rst.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await FallingEdge(dut.clk)
    dut.valid.value = 0
    dut.clear.value = 0
    dut.a.value = 0
    dut.b.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    assert int(dut.acc.value) == 0, f"acc after reset: {int(dut.acc.value):#x}"


async def _stream(dut, a, b, clear, valid=None, signed=False):
    """Drive (a, b, clear, valid) one per cycle; return the accumulator after each cycle."""
    n = len(a)
    a, b, clear = (np.asarray(x).tolist() for x in (a, b, clear))
    valid = [1] * n if valid is None else np.asarray(valid).tolist()
    out = []
    acc, sa, sb, sc, sv = dut.acc, dut.a, dut.b, dut.clear, dut.valid
    last = [None] * 4
    edge = FallingEdge(dut.clk)
    for i in range(n):
        # Writes through the simulator interface dominate the run time: skip unchanged ones.
        for k, (sig, v) in enumerate(((sa, a[i]), (sb, b[i]), (sc, clear[i]), (sv, valid[i]))):
            if last[k] != v:
                sig.value = v
                last[k] = v
        await edge
        v = acc.value
        out.append(v.to_signed() if signed else v.to_unsigned())
    dut.valid.value = 0
    return np.array(out, dtype=np.int64)


def _check(got, want, a, b, what):
    want = np.asarray(want).astype(np.int64)
    bad = np.nonzero(got != want)[0]
    if bad.size:
        i = int(bad[0])
        raise AssertionError(f"{what}: {bad.size} mismatches; first at #{i}: a={int(a[i]):#x} b={int(b[i]):#x} "
                             f"rtl={int(got[i]):#x} model={int(want[i]):#x}")


def _sequential(step, a, b, clear, valid, acc0=0):
    """Golden accumulator after each cycle, using the vectorized one-step model."""
    acc = acc0
    out = []
    for i in range(len(a)):
        if valid[i]:
            acc = int(step(acc, a[i], b[i], bool(clear[i])))
        out.append(acc)
    return np.array(out, dtype=np.int64)


# -- FP8 ------------------------------------------------------------------------------------

@cocotb.test()
async def fp8_products_exhaustive(dut):
    """Every FP8 code pair, clear each cycle, so acc is the exact FP32 product."""
    await _start(dut)
    fa, fb = P["fmt_a"], P["fmt_b"]
    a, b = (x.ravel() for x in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    got = await _stream(dut, a, b, np.ones_like(a))
    _check(got, ba.fp8_mul(a, b, fa, fb), a, b, f"{fa} x {fb} products")


@cocotb.test()
async def fp8_accumulate_random(dut):
    """Random code streams with random clears and stalls; includes NaN/Inf codes and overflow."""
    await _start(dut)
    fa, fb = P["fmt_a"], P["fmt_b"]
    rng = np.random.default_rng(SEED)
    n = int(P.get("n_acc", 4000))
    # Bias towards large codes half the time so sums reach FP32 magnitudes that round.
    a = np.where(rng.random(n) < 0.5, rng.integers(0, 256, n), rng.integers(0x70, 0x7F, n) | (rng.integers(0, 2, n) << 7))
    b = rng.integers(0, 256, n)
    clear = (rng.random(n) < 1 / 32).astype(int)
    clear[0] = 1
    valid = (rng.random(n) < 0.9).astype(int)
    valid[0] = 1
    got = await _stream(dut, a, b, clear, valid)
    want = _sequential(lambda acc, x, y, c: ba.fp8_mac(acc, x, y, fa, fb, clear=c), a, b, clear, valid)
    _check(got, want, a, b, f"{fa} x {fb} accumulation")


# -- FP32 -----------------------------------------------------------------------------------

def _f32(values):
    return [int(x) for x in ba.f32_to_bits(np.asarray(values, dtype=np.float32))]


def _fp32_corners() -> list[int]:
    vals = [0.0, 1.0, 1.5, 2.0, 3.0, 0.1, 1.1754944e-38, 2.0 ** -126 * 1.5, 3.4028235e38, 1.8446744e19,
            5.421011e-20, 2.0 ** -63, float("inf"), 7.0]
    bits = _f32(vals) + [0x00000001, 0x007FFFFF, 0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x3F800001, 0x3FFFFFFF]
    return sorted({x | s for x in bits for s in (0, 0x80000000)})


def _fp32_random(rng, n):
    uniform = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    exps = rng.choice([1, 2, 3, 30, 62, 63, 64, 65, 100, 126, 127, 128, 150, 190, 191, 192, 230, 253, 254], n)
    near = ((rng.integers(0, 2, n, dtype=np.uint64) << 31) | (exps.astype(np.uint64) << 23)
            | rng.integers(0, 1 << 23, n, dtype=np.uint64))
    return np.where(rng.random(n) < 0.3, uniform, near).astype(np.uint32)


@cocotb.test()
async def fp32_products(dut):
    """All corner pairs plus seeded random pairs (uniform patterns and boundary exponents)."""
    await _start(dut)
    rng = np.random.default_rng(SEED)
    c = _fp32_corners()
    n = int(P.get("n_mul", 10000))
    # Products within a few ulps of the flush threshold 2^-126 and of the overflow threshold 2^128.
    xa = _fp32_random(rng, n // 4) & np.uint32(0x807FFFFF) | (rng.integers(64, 191, n // 4).astype(np.uint32) << np.uint32(23))
    target = np.where(rng.random(n // 4) < 0.5, 2.0 ** -126, 2.0 ** 128)
    xb = ba.f32_to_bits((target / ba.bits_to_f32(xa).astype(np.float64)).astype(np.float32))
    xb = xb + rng.integers(-3, 4, n // 4).astype(np.uint32)
    a = np.concatenate([np.repeat(c, len(c)), _fp32_random(rng, n), xa]).astype(np.uint32)
    b = np.concatenate([np.tile(c, len(c)), _fp32_random(rng, n), xb]).astype(np.uint32)
    got = await _stream(dut, a, b, np.ones(a.size, dtype=int))
    _check(got, ba.fp32_mul(a, b), a, b, "fp32 products")


@cocotb.test()
async def fp32_add_pairs(dut):
    """acc is loaded with x (x * 1.0, clear) then one MAC y * 1.0 adds y: tests the adder alone,
    including cancellation (y close to -x), large exponent gaps, overflow and specials."""
    await _start(dut)
    rng = np.random.default_rng(SEED + 1)
    c = _fp32_corners()
    n = int(P.get("n_add", 6000))
    x = np.concatenate([np.repeat(c, len(c)), _fp32_random(rng, n), _fp32_random(rng, n // 4)]).astype(np.uint32)
    y_cancel = (x[-(n // 4):] ^ np.uint32(0x80000000)) + rng.integers(-4, 5, n // 4).astype(np.uint32)
    y = np.concatenate([np.tile(c, len(c)), _fp32_random(rng, n), y_cancel]).astype(np.uint32)
    one = _f32([1.0])[0]
    a = np.empty(2 * x.size, dtype=np.uint32)
    a[0::2], a[1::2] = x, y
    b = np.full(a.size, one, dtype=np.uint32)
    clear = np.tile([1, 0], x.size)
    got = await _stream(dut, a, b, clear)
    loaded = ba.fp32_mul(x, one)
    _check(got[0::2], loaded, x, b, "fp32 load")
    _check(got[1::2], ba.fp32_add(loaded, ba.fp32_mul(y, one)), x, y, "fp32 sums")


@cocotb.test()
async def fp32_mac_random(dut):
    """Long accumulations with random clears and stalls: the two roundings per step."""
    await _start(dut)
    rng = np.random.default_rng(SEED + 2)
    n = int(P.get("n_acc", 4000))
    # Moderate magnitudes (so sums stay finite and round), with some uniform patterns mixed in.
    vals = rng.standard_normal((2, n)).astype(np.float32) * np.float32(2.0) ** rng.integers(-8, 9, (2, n)).astype(np.float32)
    a, b = ba.f32_to_bits(vals[0]).copy(), ba.f32_to_bits(vals[1]).copy()
    wild = rng.random(n) < 0.02
    a[wild] = _fp32_random(rng, int(wild.sum()))
    clear = (rng.random(n) < 1 / 64).astype(int)
    clear[0] = 1
    valid = (rng.random(n) < 0.9).astype(int)
    valid[0] = 1
    got = await _stream(dut, a, b, clear, valid)
    want = _sequential(lambda acc, x, y, cl: ba.fp32_mac(acc, x, y, clear=cl), a, b, clear, valid)
    _check(got, want, a, b, "fp32 accumulation")


# -- INT8 -----------------------------------------------------------------------------------

@cocotb.test()
async def int8_products_exhaustive(dut):
    await _start(dut)
    a, b = (x.ravel() for x in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij"))
    got = await _stream(dut, a & 0xFF, b & 0xFF, np.ones_like(a), signed=True)
    _check(got, ba.int8_mac(0, a, b, clear=True), a, b, "int8 products")


@cocotb.test()
async def int8_accumulate_random(dut):
    await _start(dut)
    rng = np.random.default_rng(SEED + 3)
    n = int(P.get("n_acc", 4000))
    a, b = rng.integers(-128, 128, n), rng.integers(-128, 128, n)
    clear = (rng.random(n) < 1 / 64).astype(int)
    clear[0] = 1
    valid = (rng.random(n) < 0.9).astype(int)
    valid[0] = 1
    got = await _stream(dut, a & 0xFF, b & 0xFF, clear, valid, signed=True)
    want = _sequential(lambda acc, x, y, c: ba.int8_mac(acc, x, y, clear=c), a, b, clear, valid)
    _check(got, want, a, b, "int8 accumulation")


@cocotb.test()
async def int8_wraps(dut):
    """2^17 products of (-128)(-128) reach 2^31 and wrap to -2^31, then keep counting."""
    await _start(dut)
    n = (1 << 17) + 3
    a = np.full(n, -128)
    clear = np.zeros(n, dtype=int)
    clear[0] = 1
    got = await _stream(dut, a & 0xFF, a & 0xFF, clear, signed=True)
    # Modular running sum; the one-step model is checked at the wrap point itself.
    want = (np.cumsum(a * a) + (1 << 31)) % (1 << 32) - (1 << 31)
    assert int(ba.int8_mac((1 << 31) - 16384, -128, -128)) == int(want[(1 << 17) - 1])
    assert int(want[(1 << 17) - 1]) == -(1 << 31)
    _check(got, want, a, a, "int8 wrap-around")


# -- systolic baseline PE (hw/baseline/systolic_pe.py, MLSPE port style) --------------------------

def _tile_operands(rng, pe, n):
    if pe == "fp32":
        vals = rng.standard_normal((2, n)).astype(np.float32) * np.float32(2.0) ** rng.integers(-6, 7, (2, n)).astype(np.float32)
        a, b = ba.f32_to_bits(vals[0]).astype(np.int64), ba.f32_to_bits(vals[1]).astype(np.int64)
        wild = rng.random(n) < 0.02
        a[wild] = _fp32_random(rng, int(wild.sum()))
        return a, b
    if pe == "fp8":
        return rng.integers(0, 256, n), rng.integers(0, 256, n)
    return rng.integers(-128, 128, n), rng.integers(-128, 128, n)


def _tile_sum(pe, a, b):
    if pe == "fp32":
        return ba.fp32_accumulate(a, b)
    if pe == "fp8":
        return ba.fp8_accumulate(a, b, P["fmt_a"], P["fmt_b"])
    return ba.int8_accumulate(a, b) & 0xFFFFFFFF


@cocotb.test()
async def systolic_tiles(dut):
    """Back-to-back tiles of random K (1..40) with random idle beats: every `done` shows the
    tile's golden sum on `result`; a/b/ctl are forwarded one cycle later."""
    pe = P["pe"]
    dut.ctl_in.value = 0
    dut.a_in.value = 0
    dut.b_in.value = 0
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    rng = np.random.default_rng(SEED + 4)
    beats, expected = [], []
    for _ in range(int(P.get("n_tiles", 60))):
        k = int(rng.integers(1, 41))
        a, b = _tile_operands(rng, pe, k)
        expected.append(_tile_sum(pe, a, b))
        for i in range(k):
            while rng.random() < 0.15:  # idle beat (valid = 0) with garbage operands
                beats.append((int(rng.integers(0, 256)), int(rng.integers(0, 256)), 0))
            beats.append((int(a[i]) & 0xFFFFFFFF if pe != "int8" else int(a[i]) & 0xFF,
                          int(b[i]) & 0xFFFFFFFF if pe != "int8" else int(b[i]) & 0xFF,
                          1 | ((i == 0) << 1) | ((i == k - 1) << 2)))
    beats += [(0, 0, 0)] * 4
    got, prev = [], None
    for a, b, c in beats:
        dut.a_in.value, dut.b_in.value, dut.ctl_in.value = a, b, c
        await FallingEdge(dut.clk)
        assert (dut.a_out.value.to_unsigned(), dut.b_out.value.to_unsigned(), dut.ctl_out.value.to_unsigned()) == (a, b, c)
        if int(dut.done.value):
            got.append(dut.result.value.to_unsigned())
            assert int(dut.overflow.value) == 0
    assert len(got) == len(expected), f"{len(got)} done pulses for {len(expected)} tiles"
    bad = [(i, hex(g), hex(int(w))) for i, (g, w) in enumerate(zip(got, expected)) if g != int(w)]
    assert not bad, f"{len(bad)} tiles differ (index, rtl, model): {bad[:3]}"
