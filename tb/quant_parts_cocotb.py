"""cocotb tests for QuantPartsProbe (see test_quant_parts.py): vectors and goldens from model/."""

import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, Timer

from hw.baseline.layout import float_layout
from hw.layout_pack import pack
from hw.quant_unit.group_exp import fp32_fields
from model.floats import FP32
from model.formats import MLSFormat
from model.fp32 import bits_fp32, fp32_bits, ftz
from model.lfsr import lane_seed, lfsr_draw
from model.quantize import group_exponent, round_to_codes
from tb.harness import tb_params

P = tb_params()
FMT = MLSFormat.parse(P["fmt"])
R = P["sr_bits"]


def _fp32(sign, exp, man):
    """FP32 bit pattern of the fields (``float_layout(FP32)``)."""
    return pack(float_layout(FP32), {"sign": sign, "exp": exp, "man": man})


def _f32(bits):
    return bits_fp32(np.asarray(bits, dtype=np.uint64).astype(np.uint32))


def _mul_golden(x_bits, inv_bits):
    x, inv = _f32(x_bits), _f32(inv_bits)
    x = torch.where(x.abs() < 2.0**-126, torch.zeros_like(x), x)  # DAZ
    inv = torch.where(inv.abs() < 2.0**-126, torch.zeros_like(inv), inv)
    y = ftz(x * inv)
    invalid = ~torch.isfinite(x) | ~torch.isfinite(inv) | ~torch.isfinite(y)
    return fp32_bits(y), invalid.numpy()


def _mul_vectors(rng):
    xs, invs = [], []
    for _ in range(1500):  # random patterns over every exponent class (zero, subnormal, normal, max, Inf/NaN)
        xs.append(rng.getrandbits(32))
        invs.append(rng.getrandbits(31))
    for _ in range(1500):  # products landing near the FTZ edge, the rounding carry and overflow
        sa = rng.randrange(1 << 23, 1 << 24)
        target = rng.choice((1 << 47, 1 << 48))
        sb = min(max((target - 1) // sa + rng.randrange(-2, 2), 1 << 23), (1 << 24) - 1)
        if rng.random() < 0.1:
            sa, sb = (1 << 24) - 1, 1 << 23
        res_exp = rng.choice((-1, 0, 0, 0, 1, 2, 253, 254, 255))
        xe = rng.randrange(1, 255)
        ie = res_exp + 127 - xe
        if not 1 <= ie <= 254:
            xe = min(max(res_exp + 127 - 127, 1), 254)
            ie = min(max(res_exp + 127 - xe, 1), 254)
        sx = rng.getrandbits(1)
        xs.append(_fp32(sx, xe, sa - (1 << 23)))
        invs.append(_fp32(0, ie, sb - (1 << 23)))
    for special in (0, 0x8000_0000, 1, 0x807F_FFFF, 0x0080_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F80_0000, 0xFFC0_0000):
        for inv in (0x3F80_0000, 0x0000_0001, 0x7F7F_FFFF, 0x0080_0000, 0x7F80_0000):
            xs.append(special)
            invs.append(inv)
    return xs, invs


@cocotb.test()
async def fp32_scale_mul(dut):
    rng = random.Random(P["seed"])
    xs, invs = _mul_vectors(rng)
    y_exp, bad_exp = _mul_golden(xs, invs)
    hit_edge = 0
    for x, inv, y, bad in zip(xs, invs, y_exp, bad_exp):
        dut.x.value = x
        dut.inv.value = inv
        await Timer(1, unit="ns")
        assert int(dut.mul_invalid.value) == int(bad), f"invalid: x={x:#010x} inv={inv:#010x}"
        if not bad:
            assert int(dut.y.value) == int(y), f"y: x={x:#010x} inv={inv:#010x}: {int(dut.y.value):#010x} != {int(y):#010x}"
            hit_edge += int(y) & 0x7FFF_FFFF == 0x0080_0000
    assert hit_edge > 5, "no vector produced exactly 2**-126"


@cocotb.test()
async def group_exponent_all_classes(dut):
    me_field, mm_field = fp32_fields(FMT.elem_max)
    rng = random.Random(P["seed"] + 1)
    vecs = [0]
    for e in range(1, 255):
        for man in {0, mm_field, min(mm_field + 1, 0x7F_FFFF), max(mm_field - 1, 0), 0x7F_FFFF, rng.getrandbits(23)}:
            vecs.append(_fp32(0, e, man))
    golden = group_exponent(_f32(vecs), FMT).numpy()
    seen = set()
    for v, g in zip(vecs, golden):
        dut.gmax.value = v
        await Timer(1, unit="ns")
        assert int(dut.g.value) == int(g), f"gmax={v:#010x}: g {int(dut.g.value)} != {int(g)}"
        seen.add(int(g))
    assert seen == set(range(FMT.max_group_exp + 1)), f"not every g value was hit: {sorted(seen)}"


def _round_vectors(rng):
    """(y bits, g, stochastic, r): values on both sides of each rounding boundary, saturation, tiny."""
    grid = FMT.grid().numpy()
    points = sorted(set(grid.tolist()))
    mids = [(a + b) / 2 for a, b in zip(points, points[1:])]
    special = [FMT.elem_max * 1.0001, FMT.elem_max * 2, FMT.elem_max * 3.5,
               FMT.elem_min_subnormal / 2, FMT.elem_min_subnormal / 4, FMT.elem_min_subnormal * 0.3, 0.0]
    base = points + mids + special
    if len(base) > 400:
        base = rng.sample(points, 150) + rng.sample(mids, 150) + special
    zs = []
    for v in base:
        f = np.float32(v)
        zs += [f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(0))] if v > 0 else [f]
    vecs = []
    gs = list(range(FMT.max_group_exp + 1))
    for z in zs:
        for g in (gs if len(zs) * len(gs) < 1200 else rng.sample(gs, min(len(gs), 4))):
            y = np.float32(np.ldexp(np.float64(z), -g))
            if y != 0 and abs(y) < 2.0**-126:
                continue  # the rounder only sees normal or zero y
            sign = rng.getrandbits(1) << 31
            ybits = int(np.float32(y).view(np.uint32)) | sign
            vecs.append((ybits, g, 0, rng.getrandbits(R)))
            for r in (0, 1, 1 << (R - 1), (1 << R) - 1, rng.getrandbits(R)):
                vecs.append((ybits, g, 1, r))
    for _ in range(1500):  # random normals whose z stays finite
        g = rng.randrange(FMT.max_group_exp + 1)
        e = rng.randrange(1, 255 - g)
        vecs.append((_fp32(rng.getrandbits(1), e, rng.getrandbits(23)), g, rng.getrandbits(1), rng.getrandbits(R)))
    return vecs


def _round_golden(vecs):
    y = _f32([v[0] for v in vecs])
    g = torch.tensor([v[1] for v in vecs], dtype=torch.float32)
    z = torch.ldexp(y.abs(), g)
    out = []
    for stoch in (0, 1):
        sel = torch.tensor([v[2] == stoch for v in vecs])
        r = torch.tensor([v[3] for v in vecs], dtype=torch.int64)[sel]
        codes = round_to_codes(z[sel], FMT, "stochastic" if stoch else "nearest", r if stoch else None, R)
        out.append((sel, codes))
    codes = torch.zeros(len(vecs), dtype=torch.int64)
    for sel, c in out:
        codes[sel] = c
    sign = ((y < 0) & (codes != 0)).to(torch.int64)
    return (sign << (FMT.exp_bits + FMT.man_bits)) | codes


@cocotb.test()
async def element_rounding(dut):
    rng = random.Random(P["seed"] + 2)
    vecs = _round_vectors(rng)
    golden = _round_golden(vecs).tolist()
    for (y, g, stoch, r), code in zip(vecs, golden):
        dut.ry.value = y
        dut.rg.value = g
        dut.stochastic.value = stoch
        dut.r.value = r
        await Timer(1, unit="ns")
        assert int(dut.code.value) == code, (
            f"y={y:#010x} g={g} stochastic={stoch} r={r}: code {int(dut.code.value):#x} != {code:#x}")


@cocotb.test()
async def lfsr_matches_model(dut):
    lanes = P["lanes"]
    rng = random.Random(P["seed"] + 3)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.load.value = 0
    dut.advance.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    mask = (1 << R) - 1
    for seed in (0, 0xDEADBEEF, rng.getrandbits(32)):
        dut.seed.value = seed
        dut.load.value = 1
        await RisingEdge(dut.clk)
        dut.load.value = 0
        states = [lane_seed(seed, lane) for lane in range(lanes)]
        for cycle in range(300):
            adv = rng.random() < 0.7
            dut.advance.value = int(adv)
            await Timer(1, unit="ns")
            word = int(dut.bits.value)
            for lane in range(lanes):
                _, draw = lfsr_draw(states[lane], R)
                assert (word >> (lane * R)) & mask == draw, f"seed {seed:#x} cycle {cycle} lane {lane}"
            await RisingEdge(dut.clk)
            if adv:
                states = [lfsr_draw(s, R)[0] for s in states]
