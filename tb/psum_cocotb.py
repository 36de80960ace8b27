"""cocotb tests for PartialSumBuffer (see test_psum.py): bit-exact rows, cycle-exact handshake,
stored/overflow/refused pulses, latency, random bubbles and back-pressure.

Every cycle is checked against a model of the one register stage: ``i.ready`` is high when the
stage is empty, holds a row to store, or ``o`` is ready; ``o.valid`` when it holds a row and
``store`` is low, its payload that row's expected sum; a row is *taken* from the stage when
``store`` or ``o.ready``, and exactly then ``stored`` (with ``store``), ``overflow`` (a saturating
row) and ``refused`` (a row past ``depth``) pulse. Between commands ``add``/``store`` and the
input payload are driven with garbage (no row in flight: nothing may leave or pulse).
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from tb.harness import tb_params

P = tb_params()
W, LANES, DEPTH, LATENCY = P["acc_bits"], P["lanes"], P["depth"], P["latency"]
CASES = json.loads(open(P["cases"]).read())
MASK = (1 << W) - 1


def _pack(values):
    word = 0
    for k, v in enumerate(values):
        word |= (v & MASK) << (k * W)
    return word


def _unpack(word):
    out = []
    for k in range(LANES):
        v = (word >> (k * W)) & MASK
        out.append(v - (1 << W) if v >> (W - 1) else v)
    return out


def _get(signal, name):
    value = signal.value
    assert value.is_resolvable, f"{name} is {value} (not 0/1)"
    return int(value)


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.start.value = 0
    dut.add.value = 0
    dut.store.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _check_idle(dut, what):
    for name in ("o__valid", "stored", "overflow", "refused"):
        assert _get(getattr(dut, name), name) == 0, f"{name} high {what} (no row in flight)"


async def _gap(dut, rng, cycles):
    """Idle cycles between commands: add/store/payload garbage, input not valid."""
    for _ in range(cycles):
        dut.i__valid.value = 0
        dut.i__payload.value = rng.getrandbits(W * LANES)
        dut.add.value = rng.getrandbits(1)
        dut.store.value = rng.getrandbits(1)
        dut.o__ready.value = rng.getrandbits(1)
        await ReadOnly()
        _check_idle(dut, "between commands")
        assert _get(dut.i__ready, "i.ready") == 1, "i.ready low with the stage empty"
        await RisingEdge(dut.clk)


async def _command(dut, n_cmd, cmd, rng, p_in, p_out):
    rows, store = cmd["rows"], cmd["store"]
    n = len(rows)
    overflow, refused = set(cmd["overflow"]), set(cmd["refused"])
    # the start cycle: add/store set, nothing valid yet
    dut.add.value, dut.store.value, dut.start.value = cmd["add"], store, 1
    dut.i__valid.value = 0
    dut.o__ready.value = int(rng.random() < p_out)
    await ReadOnly()
    _check_idle(dut, f"command {n_cmd}: in the start cycle")
    await RisingEdge(dut.clk)
    dut.start.value = 0
    stage, idx, holding, cycle, taken_rows = None, 0, False, 0, 0
    in_cycle, out_cycle = {}, {}
    while taken_rows < n:
        if idx < n and not holding:
            holding = rng.random() < p_in
        dut.i__valid.value = int(holding)
        dut.i__payload.value = _pack(rows[idx]) if holding else rng.getrandbits(W * LANES)
        ready = int(rng.random() < p_out)
        dut.o__ready.value = ready
        await ReadOnly()
        where = f"command {n_cmd} (add={cmd['add']} store={store}, {n} rows), cycle {cycle}"
        advance = stage is None or store or ready
        assert _get(dut.i__ready, "i.ready") == int(advance), (
            f"{where}: i.ready {int(dut.i__ready.value)}, expected {int(advance)} (stage holds row {stage})")
        o_valid = _get(dut.o__valid, "o.valid")
        assert o_valid == int(stage is not None and not store), f"{where}: o.valid {o_valid} with row {stage} in the stage"
        if o_valid:
            got = _unpack(_get(dut.o__payload, "o.payload"))
            assert got == cmd["out"][stage], (f"{where}: row {stage} = {rows[stage]}: got {got}, "
                                              f"expected {cmd['out'][stage]}")
        taken = stage is not None and bool(store or ready)
        for name, want in (("stored", taken and store), ("overflow", taken and stage in overflow),
                           ("refused", taken and stage in refused)):
            got = _get(getattr(dut, name), name)
            assert got == int(want), f"{where}: {name} {got}, expected {int(want)} (row {stage} in the stage)"
        if taken:
            out_cycle[stage] = cycle
            taken_rows += 1
        if advance:
            stage = None
            if holding:
                in_cycle[idx] = cycle
                stage, idx, holding = idx, idx + 1, False
        await RisingEdge(dut.clk)
        cycle += 1
        assert cycle < 40 * n + 100, f"command {n_cmd}: buffer stalled ({taken_rows} of {n} rows out)"
    dut.i__valid.value = 0
    for k in range(n):
        assert out_cycle[k] - in_cycle[k] >= LATENCY, f"command {n_cmd}: row {k} out after {out_cycle[k] - in_cycle[k]} cycles"
        if p_out == 1.0 or store:
            assert out_cycle[k] - in_cycle[k] == LATENCY, (
                f"command {n_cmd}: row {k} out {out_cycle[k] - in_cycle[k]} cycles after it was taken, latency {LATENCY}")
        if p_in == 1.0 and (p_out == 1.0 or store):
            assert in_cycle[k] == k, f"command {n_cmd}: row {k} taken in cycle {in_cycle[k]} (not full rate)"


async def _run(dut, check, seed, p_in, p_out, max_gap):
    await _reset(dut)
    rng = random.Random(seed)
    for n_cmd, cmd in enumerate(CASES[check]):
        await _gap(dut, rng, rng.randrange(0, max_gap + 1))
        await _command(dut, n_cmd, cmd, rng, p_in, p_out)
    await _gap(dut, rng, 2)


@cocotb.test()
async def psum_full_rate(dut):
    """Segments, GEMM passes, boundaries, rows past depth: no bubbles, o always ready (exact
    latency and full rate); commands back to back (start right after the last row)."""
    await _run(dut, "psum_full_rate", P["seed"], 1.0, 1.0, 0)


@cocotb.test()
async def psum_stalls(dut):
    """The same kinds of command with random input bubbles and back-pressure on o, and idle
    cycles between commands."""
    await _run(dut, "psum_stalls", P["seed"] + 1, 0.6, 0.5, 3)


@cocotb.test()
async def psum_pairs(dut):
    """Every (stored, row) pair (6-bit accumulators; boundary and random pairs otherwise), one
    store and one add per pass, with light bubbles and back-pressure."""
    await _run(dut, "psum_pairs", P["seed"] + 2, 0.9, 0.8, 1)
