"""cocotb tests for QuantUnit (see test_quant_unit.py): both passes, stalls, invalid, timing."""

import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from model.formats import MLSFormat
from model.fp32 import fp32_bits
from model.lfsr import lfsr_random_bits
from model.quant_stream import (assemble_packed, from_words, host_scale, reference_amax, reference_convert,
                                to_words)
from model.quantize import quantize
from tb.harness import tb_params

P = tb_params()
FMT = MLSFormat.parse(P["fmt"])
LANES, GL, R = P["lanes"], P["group_len"], P["sr_bits"]
DATA = np.load(P["data"])


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.i__valid, dut.o__ready, dut.g__ready, dut.start, dut.mode, dut.stochastic):
        sig.value = 0
    dut.inv.value = 0x3F80_0000
    dut.seed.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _pulse_start(dut, mode):
    dut.mode.value = mode
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0


async def _stream(dut, words, n_out, n_g, rng, p_in=1.0, p_out=1.0, collect=True):
    """Drive ``words`` on i (valid held until accepted) while sinking o and g with random ready.

    Returns (o payloads, g payloads, cycles of input transfers, cycles of o transfers, cycles
    where i.ready was low while a word was offered)."""
    outs, gs, in_cycles, out_cycles = [], [], [], []
    idx, holding, cycle, refused = 0, False, 0, 0
    limit = 40 * (len(words) + 10) + 200
    while idx < len(words) or len(outs) < n_out or len(gs) < n_g:
        if idx < len(words) and not holding:
            holding = rng.random() < p_in
        dut.i__valid.value = int(holding)
        if holding:
            dut.i__payload.value = words[idx]
        o_ready = int(rng.random() < p_out)
        g_ready = int(rng.random() < p_out)
        dut.o__ready.value = o_ready
        dut.g__ready.value = g_ready
        await ReadOnly()
        i_xfer = holding and int(dut.i__ready.value)
        refused += holding and not i_xfer
        if collect and o_ready and int(dut.o__valid.value):
            outs.append(int(dut.o__payload.value))
            out_cycles.append(cycle)
        if collect and g_ready and int(dut.g__valid.value):
            gs.append(int(dut.g__payload.value))
        await RisingEdge(dut.clk)
        if i_xfer:
            in_cycles.append(cycle)
            idx += 1
            holding = False
        cycle += 1
        assert cycle < limit, f"stream stuck: {idx}/{len(words)} in, {len(outs)}/{n_out} out, {len(gs)}/{n_g} g"
    # nothing extra may come out: both outputs stay ready for longer than a group takes to pass
    # through (``latency``), and neither offers a stray word
    dut.i__valid.value = 0
    dut.o__ready.value = 1
    dut.g__ready.value = 1
    for n in range(P["latency"] + 3):
        await ReadOnly()
        assert not int(dut.o__valid.value), f"a stray o word {n} cycles after the last expected one"
        assert not int(dut.g__valid.value), f"a stray g {n} cycles after the last expected one"
        await RisingEdge(dut.clk)
    dut.o__ready.value = 0
    dut.g__ready.value = 0
    return outs, gs, in_cycles, out_cycles, refused


async def _amax_pass(dut, words, rng, p_in):
    await _pulse_start(dut, 0)
    _, _, in_cycles, _, refused = await _stream(dut, words, 0, 0, rng, p_in=p_in, collect=False)
    assert refused == 0, "the amax pass must always be ready"
    await ReadOnly()
    result = int(dut.amax.value), int(dut.invalid.value)
    await RisingEdge(dut.clk)
    return result


async def _run_case(dut, case, rng):
    x = torch.from_numpy(DATA[case["name"]])
    words = to_words(fp32_bits(x), 32, LANES)
    n = x.numel()
    p_in, p_out = (0.6, 0.5) if case["stall"] else (1.0, 1.0)

    amax_bits, invalid = await _amax_pass(dut, words, rng, p_in)
    assert amax_bits == reference_amax(x), f"{case['name']}: amax {amax_bits:#x} != {reference_amax(x):#x}"
    if case["inv_bits"] is None:
        assert invalid == int(case["invalid"]), f"{case['name']}: amax-pass invalid {invalid}"
        scale, inv, inv_bits = host_scale(amax_bits, FMT)
    else:
        inv_bits = case["inv_bits"]
        inv = float(np.uint32(inv_bits).view(np.float32))
        scale = None

    stochastic = case["rounding"] == "stochastic"
    dut.inv.value = inv_bits
    dut.seed.value = case["seed"]
    dut.stochastic.value = int(stochastic)
    await _pulse_start(dut, 1)
    outs, gs, in_cycles, out_cycles, _ = await _stream(dut, words, n // LANES, n // GL, rng, p_in, p_out)
    await ReadOnly()
    assert int(dut.invalid.value) == int(case["invalid"]), f"{case['name']}: convert-pass invalid"
    await RisingEdge(dut.clk)

    bits = lfsr_random_bits(n, LANES, case["seed"], R) if stochastic else None
    if case["invalid"]:
        return  # outputs are unspecified, but every element came out (no deadlock, no loss)
    want_codes, want_g = reference_convert(x, inv, FMT, GL, case["rounding"], bits, R)
    got_codes = from_words(outs, FMT.elem_bits, LANES)
    assert gs == want_g.tolist(), f"{case['name']}: group exponents {gs} != {want_g.tolist()}"
    bad = [i for i, (a, b) in enumerate(zip(got_codes, want_codes.tolist())) if a != b]
    assert not bad, (f"{case['name']}: {len(bad)} codes differ, first at {bad[0]}: x={float(x[bad[0]])!r} "
                     f"got {got_codes[bad[0]]:#x} want {int(want_codes[bad[0]]):#x} g={gs[bad[0] // GL]}")
    if scale is not None:
        shape = tuple(case["shape"])
        golden = quantize(x.reshape(shape), FMT, case["grouping"], case["rounding"],
                          None if bits is None else bits.reshape(shape), sr_bits=R)
        packed = assemble_packed(scale, gs, outs, FMT, LANES, n)
        assert packed == golden.pack(), f"{case['name']}: packed bytes differ from MLSTensor.pack()"
    if not case["stall"]:
        # timing: word k leaves exactly `latency` cycles after it entered, one word per cycle
        assert len(in_cycles) == len(out_cycles) == n // LANES
        assert in_cycles == list(range(in_cycles[0], in_cycles[0] + len(in_cycles))), "input stalled"
        assert [o - i for i, o in zip(in_cycles, out_cycles)] == [P["latency"]] * len(in_cycles), \
            f"latency {[o - i for i, o in zip(in_cycles, out_cycles)][:4]} != {P['latency']}"
        elems_per_cycle = n / (out_cycles[-1] - out_cycles[0] + 1)
        assert elems_per_cycle == P["throughput"], elems_per_cycle


@cocotb.test()
async def tensors_bit_exact(dut):
    await _reset(dut)
    rng = random.Random(P["seed"])
    names = []
    for case in P["cases"]:
        await _run_case(dut, case, rng)
        names.append(case["name"])
    dut._log.info("checked %s", ", ".join(names))


@cocotb.test()
async def valid_without_ready(dut):
    """Stream rules: a source never waits for ready. One group goes in with neither output ready;
    o and g must become valid within the latency and hold their payloads while ready stays low."""
    await _reset(dut)
    rng = np.random.default_rng(P["seed"] + 2)
    x = torch.from_numpy(np.float32(rng.uniform(-FMT.elem_max, FMT.elem_max, GL)))
    want_codes, want_g = reference_convert(x, 1.0, FMT, GL, "nearest")
    want_words = to_words([int(c) & ((1 << FMT.elem_bits) - 1) for c in want_codes.tolist()], FMT.elem_bits, LANES)
    dut.inv.value = 0x3F80_0000
    dut.stochastic.value = 0
    await _pulse_start(dut, 1)
    for word in to_words(fp32_bits(x), 32, LANES):
        dut.i__valid.value = 1
        dut.i__payload.value = word
        await ReadOnly()
        assert int(dut.i__ready.value), "an empty buffer must accept a group"
        await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    for _ in range(P["latency"] + 1):
        await RisingEdge(dut.clk)
    for n in range(4):  # both outputs valid, payloads stable, although nobody is ready
        await ReadOnly()
        assert int(dut.o__valid.value) and int(dut.g__valid.value), f"o/g not valid without ready ({n})"
        assert int(dut.o__payload.value) == want_words[0], "o payload"
        assert int(dut.g__payload.value) == int(want_g[0]), "g payload"
        await RisingEdge(dut.clk)
    outs, gs, _, _, _ = await _stream(dut, [], len(want_words), 1, random.Random(0))
    assert outs == want_words and gs == [int(want_g[0])], (outs, gs, want_words, want_g.tolist())


@cocotb.test()
async def amax_latency_and_clear(dut):
    await _reset(dut)
    rng = random.Random(P["seed"] + 1)
    values = np.float32([rng.uniform(-4, 4) for _ in range(4 * LANES)])
    words = to_words(fp32_bits(torch.from_numpy(values)), 32, LANES)
    await _pulse_start(dut, 0)
    running = 0.0
    for k, word in enumerate(words):
        dut.i__valid.value = 1
        dut.i__payload.value = word
        await RisingEdge(dut.clk)
        dut.i__valid.value = 0
        running = max(running, float(np.abs(values[k * LANES:(k + 1) * LANES]).max()))
        for _ in range(P["amax_latency"] - 1):
            await RisingEdge(dut.clk)
        await ReadOnly()
        assert int(dut.amax.value) == int(fp32_bits(torch.tensor(running))[0]), f"word {k}"
        await RisingEdge(dut.clk)
    dut.i__valid.value = 1
    dut.i__payload.value = to_words([0x7FC0_0000] + [0] * (LANES - 1), 32, LANES)[0]
    await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    await ReadOnly()
    assert int(dut.invalid.value) == 1
    await RisingEdge(dut.clk)
    await _pulse_start(dut, 0)
    await ReadOnly()
    assert int(dut.invalid.value) == 0 and int(dut.amax.value) == 0, "start must clear the amax pass"
