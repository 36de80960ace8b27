"""cocotb: the PE's parts alone (see test_pe_parts.py). Golden values come from model/:
significands and shifts are recovered from ``MLSTensor.to_int()`` (``int = ±sig << shift``),
the accumulator from ``model.arith.accumulate``."""

import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from hw.layout_pack import pack
from hw.pe.layout import element_layout
from model.arith import accumulate
from model.formats import MLSFormat
from tb.harness import tb_params
from tb.pe_vectors import element_ints, to_signed


def _elem_bits(fmt, s, e, m):
    return pack(element_layout(fmt), {"man": m, "exp": e, "sign": s})


@cocotb.test()
async def significand_multiplier(dut):
    """Every code pair: product == sig_a * sig_b with sig = |int(e, m, g = 2**G-1)| >> (max(e,1) - 1)."""
    fmt = MLSFormat.parse(tb_params()["fmt"])
    codes = torch.arange(fmt.code_count)
    t = element_ints(fmt, codes[None, :], torch.full((1, fmt.code_count), fmt.max_group_exp))
    ints = t.to_int()[0].abs()
    sig = (ints >> (t.exp[0].to(torch.int64).clamp(min=1) - 1)).tolist()
    sign, exp, man = t.sign[0].tolist(), t.exp[0].tolist(), t.man[0].tolist()
    bits = [_elem_bits(fmt, sign[i], exp[i], man[i]) for i in range(fmt.code_count)]
    bad = 0
    for i in range(fmt.code_count):
        dut.ma.value = bits[i]
        for j in range(fmt.code_count):
            dut.mb.value = bits[j]
            await Timer(1, unit="ns")
            if dut.m_product.value.to_unsigned() != sig[i] * sig[j] or int(dut.m_sign.value) != sign[i] ^ sign[j]:
                bad += 1
    assert bad == 0, f"{bad} of {fmt.code_count ** 2} significand products wrong"


@cocotb.test()
async def exponent_adder(dut):
    """Every (e_a, g_a, e_b, g_b): int_a * int_b == (sig_a * sig_b) << shift."""
    fmt = MLSFormat.parse(tb_params()["fmt"])
    bad = 0
    for ea in range(fmt.max_exp_field + 1):
        for eb in range(fmt.max_exp_field + 1):
            for ga in range(fmt.max_group_exp + 1):
                for gb in range(fmt.max_group_exp + 1):
                    dut.ea.value, dut.eb.value, dut.ga.value, dut.gb.value = ea, eb, ga, gb
                    await Timer(1, unit="ns")
                    m = (1 << fmt.man_bits) - 1 if fmt.man_bits else 0
                    ia, ib = fmt.int_value(0, ea, m, ga), fmt.int_value(0, eb, m, gb)
                    ia0, ib0 = fmt.int_value(0, ea, m, fmt.max_group_exp), fmt.int_value(0, eb, m, fmt.max_group_exp)
                    sa, sb = ia0 >> (max(ea, 1) - 1), ib0 >> (max(eb, 1) - 1)
                    if sa * sb == 0:
                        continue
                    expect = (ia * ib // (sa * sb)).bit_length() - 1
                    assert (sa * sb) << expect == ia * ib
                    bad += dut.e_shift.value.to_unsigned() != expect
    assert bad == 0, f"{bad} exponent sums wrong"


@cocotb.test()
async def aligner(dut):
    """Random significand products, every shift up to the largest, both signs: value == ±(p << s)."""
    p = tb_params()
    fmt = MLSFormat.parse(p["fmt"])
    rng = random.Random(p["seed"])
    max_sig = (1 << fmt.sig_bits) - 1
    for shift in range(2 * fmt.max_shift + 1):
        for _ in range(20):
            prod = rng.choice([0, 1, max_sig * max_sig, rng.randrange(max_sig * max_sig + 1)])
            sign = rng.randrange(2)
            dut.al_product.value, dut.al_sign.value, dut.al_shift.value = prod, sign, shift
            await Timer(1, unit="ns")
            expect = -(prod << shift) if sign else prod << shift
            got = to_signed(dut.al_value.value.to_unsigned(), p["product_bits"])
            assert got == expect, f"aligner({prod}, sign {sign}, shift {shift}) = {got}, expected {expect}"


@cocotb.test()
async def accumulator(dut):
    """Random signed streams, tiles of random K with bubbles, a narrow width: == model.arith.accumulate."""
    p = tb_params()
    rng = random.Random(p["seed"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.ac_ctl.value = 0
    dut.ac_value.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    lim = 1 << (p["acc_in_bits"] - 1)
    n_ovf = 0
    for tile in range(300):
        k = rng.choice([1, 2, rng.randrange(1, 40)])
        bias = rng.choice([0, lim // 2, -lim // 2])
        vals = [max(-lim, min(lim - 1, rng.randrange(-lim, lim) + bias)) for _ in range(k)]
        acc, ovf = accumulate(torch.tensor([vals]), p["acc_bits"])
        for i, v in enumerate(vals):
            while rng.random() < 0.2:
                dut.ac_ctl.value = rng.choice([0, 2, 4, 6])  # not valid
                dut.ac_value.value = rng.randrange(-lim, lim)
                await FallingEdge(dut.clk)
            dut.ac_value.value = v
            dut.ac_ctl.value = 1 | (2 if i == 0 else 0) | (4 if i == k - 1 else 0)
            await FallingEdge(dut.clk)
        dut.ac_ctl.value = 0
        assert int(dut.ac_done.value) == 1
        got = (to_signed(dut.ac_result.value.to_unsigned(), p["acc_bits"]), int(dut.ac_overflow.value))
        assert got == (int(acc[0]), int(ovf[0])), f"tile {tile} K={k}: rtl {got} != model {(int(acc[0]), int(ovf[0]))}"
        n_ovf += int(ovf[0])
    assert n_ovf > 10, "the accumulator test never saturated"
