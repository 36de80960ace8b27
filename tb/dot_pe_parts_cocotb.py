"""cocotb: the dot-product PE's parts alone (see test_dot_pe_parts.py). Golden values come from
``MLSFormat.int_value`` (model/): a significand is ``|int(e, m, g = 2^G - 1)| >> (max(e,1) - 1)``,
an element offset is ``log2 |int(e, m, 2^G-1) / sig|``, a group offset ``log2 |int(.., g) / int(.., 2^G-1)|``."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from model.formats import MLSFormat
from tb.dot_pe_vectors import split_code
from tb.harness import tb_params
from tb.pe_vectors import to_signed


def _formats():
    p = tb_params()
    return MLSFormat.parse(p["fmt_a"]), MLSFormat.parse(p["fmt_w"]), p


def _elem_bits(fmt, code):
    from hw.pe.layout import element_layout
    lay = element_layout(fmt)
    sign, exp, man = split_code(fmt, code)
    return (man << lay["man"].offset) | (exp << lay["exp"].offset) | (sign << lay["sign"].offset)


def _sig(fmt, code):
    _, exp, man = split_code(fmt, code)
    return abs(fmt.int_value(0, exp, man, fmt.max_group_exp)) >> _elem_offset(fmt, exp)


def _elem_offset(fmt, exp):
    """``max(e, 1) - 1`` as the model's integer shows it: int(e, m, 2^G-1) / sig for a nonzero sig."""
    if exp == 0:
        return 0 if fmt.man_bits == 0 else (fmt.int_value(0, 0, 1, fmt.max_group_exp)).bit_length() - 1
    return (fmt.int_value(0, exp, 0, fmt.max_group_exp) >> fmt.man_bits).bit_length() - 1


def _group_offset(fmt, g):
    """``2^G - 1 - g`` as the model's integer shows it: log2 of int(.., g) / int(.., 2^G - 1)."""
    exp, man = (1, 0) if fmt.exp_bits else (0, 1)  # a nonzero significand either way
    return (fmt.int_value(0, exp, man, g) // fmt.int_value(0, exp, man, fmt.max_group_exp)).bit_length() - 1


@cocotb.test()
async def significand_multiplier(dut):
    """Every (code_a, code_w): product == sig_a * sig_w, sign == s_a ^ s_w."""
    fa, fw, _ = _formats()
    bad = 0
    for ca in range(fa.code_count):
        dut.m_a.value = _elem_bits(fa, ca)
        for cw in range(fw.code_count):
            dut.m_w.value = _elem_bits(fw, cw)
            await Timer(1, unit="ns")
            expect = (_sig(fa, ca) * _sig(fw, cw), split_code(fa, ca)[0] ^ split_code(fw, cw)[0])
            bad += (dut.m_product.value.to_unsigned(), int(dut.m_sign.value)) != expect
    assert bad == 0, f"{bad} of {fa.code_count * fw.code_count} significand products wrong"


@cocotb.test()
async def element_aligner(dut):
    """Every product 0..max_sig_a*max_sig_w, both signs, every (e_a, e_w): ±(product << offsets)."""
    fa, fw, p = _formats()
    bad = checked = 0
    for ea in range(fa.max_exp_field + 1):
        for ew in range(fw.max_exp_field + 1):
            shift = _elem_offset(fa, ea) + _elem_offset(fw, ew)
            for product in range(fa.max_sig * fw.max_sig + 1):
                for sign in (0, 1):
                    dut.al_product.value, dut.al_sign.value = product, sign
                    dut.al_a_exp.value, dut.al_w_exp.value = ea, ew
                    await Timer(1, unit="ns")
                    expect = -(product << shift) if sign else product << shift
                    bad += to_signed(dut.al_value.value.to_unsigned(), p["product_bits"]) != expect
                    checked += 1
    assert bad == 0, f"{bad} of {checked} aligned products wrong"


def _tree_vectors(rng, lanes, max_p, count):
    vectors = [[max_p] * lanes, [-max_p] * lanes, [0] * lanes,
               [max_p if i % 2 else -max_p for i in range(lanes)], [max_p] + [0] * (lanes - 1),
               [0] * (lanes - 1) + [-max_p]]
    while len(vectors) < count:
        style = rng.randrange(3)
        if style == 0:
            vectors.append([rng.randint(-max_p, max_p) for _ in range(lanes)])
        elif style == 1:
            vectors.append([rng.choice([-max_p, max_p, 0, 1, -1]) for _ in range(lanes)])
        else:
            sign = rng.choice([-1, 1])
            vectors.append([sign * rng.randint(max_p // 2, max_p) for _ in range(lanes)])
    return vectors


@cocotb.test()
async def adder_trees(dut):
    """One vector per cycle into every tree at once; each sum checked ``latency`` cycles later."""
    fa, fw, p = _formats()
    rng = random.Random(p["seed"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    count = 300
    trees = p["trees"]
    vectors = {(t["lanes"], t["lps"]): _tree_vectors(rng, t["lanes"], p["max_p"], count) for t in trees}
    depth = max(t["latency"] for t in trees)
    seen = {key: [] for key in vectors}
    for cycle in range(count + depth):
        for t in trees:
            key = (t["lanes"], t["lps"])
            port = getattr(dut, f"t{t['lanes']}_{t['lps']}_in")
            if cycle < count:
                mask = (1 << t["in_bits"]) - 1
                port.value = sum((v & mask) << (i * t["in_bits"]) for i, v in enumerate(vectors[key][cycle]))
            if t["latency"] == 0 and cycle < count:
                await Timer(1, unit="ns")
                seen[key].append(to_signed(getattr(dut, f"t{t['lanes']}_{t['lps']}_sum").value.to_unsigned(), t["sum_bits"]))
        await FallingEdge(dut.clk)
        for t in trees:
            key = (t["lanes"], t["lps"])
            if t["latency"] and cycle + 1 >= t["latency"] and len(seen[key]) < count:
                seen[key].append(to_signed(getattr(dut, f"t{t['lanes']}_{t['lps']}_sum").value.to_unsigned(), t["sum_bits"]))
    for t in trees:
        key = (t["lanes"], t["lps"])
        bad = [(i, sum(v), got) for i, (v, got) in enumerate(zip(vectors[key], seen[key])) if sum(v) != got]
        assert len(seen[key]) == count and not bad, \
            f"tree L={key[0]} levels/stage={key[1]}: (index, sum, rtl) {bad[:3]}"


@cocotb.test()
async def group_shifter(dut):
    """Every (g_a, g_w) with extreme and random beat sums: value << (offset_a(g_a) + offset_w(g_w))."""
    fa, fw, p = _formats()
    rng = random.Random(p["seed"])
    lim = 1 << (p["shifter_in_bits"] - 1)
    bad = checked = 0
    for ga in range(fa.max_group_exp + 1):
        for gw in range(fw.max_group_exp + 1):
            shift = _group_offset(fa, ga) + _group_offset(fw, gw)
            for value in [lim - 1, -lim, 0, 1, -1] + [rng.randrange(-lim, lim) for _ in range(5)]:
                dut.gs_value.value = value & ((1 << p["shifter_in_bits"]) - 1)
                dut.gs_g_a.value, dut.gs_g_w.value = ga, gw
                await Timer(1, unit="ns")
                bad += to_signed(dut.gs_shifted.value.to_unsigned(), p["shifter_out_bits"]) != value << shift
                checked += 1
    assert bad == 0, f"{bad} of {checked} group shifts wrong"
