"""cocotb tests for OutputConverter (see test_convert.py): bit-exact, stalls, latency, NaN flag."""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from tb.harness import tb_params

P = tb_params()
W, LANES, LATENCY = P["acc_bits"], P["lanes"], P["latency"]
CASES = json.loads(open(P["cases"]).read())


def _pack(values):
    word = 0
    for k, v in enumerate(values):
        word |= (v & ((1 << W) - 1)) << (k * W)
    return word


def _unpack(word):
    return [(word >> (32 * k)) & 0xFFFFFFFF for k in range(LANES)]


def _is_nan(bits):
    return (bits & 0x7F800000) == 0x7F800000 and bits & 0x7FFFFF


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _run_case(dut, case, rng, p_in, p_out):
    dut.scale_a.value = case["scale_a"]
    dut.scale_b.value = case["scale_b"]
    await RisingEdge(dut.clk)          # the scale product register takes the new scales
    words = [case["values"][i:i + LANES] for i in range(0, len(case["values"]), LANES)]
    expected = [case["expected"][i:i + LANES] for i in range(0, len(case["expected"]), LANES)]
    got, idx, holding, cycles = [], 0, False, 0
    in_cycle, out_cycle = {}, {}
    while len(got) < len(words):
        if idx < len(words) and not holding:
            holding = rng.random() < p_in
        dut.i__valid.value = int(holding)
        if holding:
            dut.i__payload.value = _pack(words[idx])
        ready = int(rng.random() < p_out)
        dut.o__ready.value = ready
        await ReadOnly()
        if holding and int(dut.i__ready.value):
            in_cycle[idx] = cycles
            idx += 1
            holding = False
        if int(dut.o__valid.value):
            lanes = _unpack(int(dut.o__payload.value))
            nan = any(_is_nan(b) for b in lanes)
            assert int(dut.nan.value) == int(nan), f"nan flag {int(dut.nan.value)} for {lanes}"
            if ready:
                out_cycle[len(got)] = cycles
                got.append(lanes)
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < 50 * len(words) + 100, "converter stalled"
    dut.i__valid.value = 0
    for n, (g, e) in enumerate(zip(got, expected)):
        for lane, (gb, eb) in enumerate(zip(g, e)):
            value = words[n][lane]
            if _is_nan(eb):
                assert _is_nan(gb) and gb == 0x7FC00000, f"C_int={value}: expected a NaN, got {gb:#010x}"
            else:
                assert gb == eb, (f"C_int={value} scales {case['scale_a']:#010x} {case['scale_b']:#010x}: "
                                  f"got {gb:#010x}, expected {eb:#010x}")
    if p_in == 1.0 and p_out == 1.0:
        for n in range(len(words)):
            assert out_cycle[n] - in_cycle[n] == LATENCY, f"word {n}: {out_cycle[n] - in_cycle[n]} cycles, latency {LATENCY}"
            assert in_cycle[n] == n, "a word was refused with the output always ready"


@cocotb.test()
async def convert_no_stalls(dut):
    """Every case with input always valid and output always ready: values and exact latency."""
    await _reset(dut)
    rng = random.Random(P["seed"])
    for case in CASES:
        await _run_case(dut, case, rng, 1.0, 1.0)


@cocotb.test()
async def convert_back_pressure(dut):
    """Every case again with random bubbles on the input and random back-pressure on the output."""
    await _reset(dut)
    rng = random.Random(P["seed"] + 1)
    for case in CASES:
        await _run_case(dut, case, rng, 0.7, 0.5)
