"""cocotb side of the long regression (``python -m tb.regression``) and of the fast rows of
``bench/bench_rtl.py``: batches of random tiles streamed back to back through the MLS array
(the scalar MLSPE array at L = 1, the L-lane dot-product array otherwise), every output row
compared bit for bit with ``model.arith.beat_accumulate`` (its batched twin in
``tb.regression_vectors``, itself checked against the per-tile reference on every batch).

What makes it cheap (about one FallingEdge and one ReadOnly per cycle, nothing else):

- all payloads of a batch are packed before streaming, as binary strings, and written with one
  GPI call per stream per cycle (``set_signal_val_binstr``, no int/LogicArray conversion);
- the valid/ready bits are written only when they change, and read only when they matter;
- output rows are collected as the simulator's binary strings and compared with the expected
  strings after the batch (a mismatch is decoded for the message).

Stalls as in ``tb/array_dot_cocotb.py``: each producer holds valid low with probability
``stall`` whenever it is free to, the consumer drops ready likewise. Without stalls the cycle
count of every batch is compared with ``hw.array.timing``.
"""

from __future__ import annotations

import json
import random
import sys
import time

import cocotb
import torch
from cocotb.triggers import FallingEdge, ReadOnly

from hw.array.timing import ArrayTiming
from model.formats import MLSFormat
from tb.array_dot_cocotb import check_no_spurious_row, reset
from tb.harness import tb_params
from tb.regression_vectors import (LinePacker, batch_beats, batch_golden, check_twins, decode_row, expected_rows,
                                   pack_payloads, random_batch)

_NO_DELAY = 3  # cocotb.handle._GPISetAction.NO_DELAY: written at once (we write at the falling edge only)


async def stream(dut, a_strs, w_strs, n_rows, rng, stall_a, stall_w, stall_c, max_cycles):
    """Stream the beats (A and W transfer together); return (rows, first_in_cycle, last_out_cycle)."""
    set_a, set_w = dut.a__payload._handle.set_signal_val_binstr, dut.w__payload._handle.set_signal_val_binstr
    set_av, set_wv = dut.a__valid._handle.set_signal_val_int, dut.w__valid._handle.set_signal_val_int
    set_cr = dut.c__ready._handle.set_signal_val_int
    get_ar, get_wr = dut.a__ready._handle.get_signal_val_binstr, dut.w__ready._handle.get_signal_val_binstr
    get_cv, get_c = dut.c__valid._handle.get_signal_val_binstr, dut.c__payload._handle.get_signal_val_binstr
    fall, ro = FallingEdge(dut.clk), ReadOnly()
    random_ = rng.random
    n_beats = len(a_strs)
    rows = []
    pos = cycle = 0
    a_valid = w_valid = 0
    shown_a = shown_w = -1       # beat index currently on each payload
    av_now = wv_now = cr_now = -1
    first_in = last_out = None
    while len(rows) < n_rows:
        await fall
        if pos < n_beats:
            if not a_valid and (stall_a == 0 or random_() >= stall_a):
                a_valid = 1
            if not w_valid and (stall_w == 0 or random_() >= stall_w):
                w_valid = 1
            if shown_a != pos:
                set_a(_NO_DELAY, a_strs[pos])
                set_w(_NO_DELAY, w_strs[pos])
                shown_a = shown_w = pos
        else:
            a_valid = w_valid = 0
        if a_valid != av_now:
            set_av(_NO_DELAY, a_valid)
            av_now = a_valid
        if w_valid != wv_now:
            set_wv(_NO_DELAY, w_valid)
            wv_now = w_valid
        c_ready = 1 if stall_c == 0 or random_() >= stall_c else 0
        if c_ready != cr_now:
            set_cr(_NO_DELAY, c_ready)
            cr_now = c_ready
        await ro
        if a_valid or w_valid:
            a_go = a_valid and get_ar() == "1"
            w_go = w_valid and get_wr() == "1"
            if a_go and w_go:
                if first_in is None:
                    first_in = cycle
                pos += 1
                a_valid = w_valid = 0
            elif a_go or w_go:
                raise AssertionError(f"cycle {cycle}: one input stream transferred without the other")
        if c_ready and get_cv() == "1":
            rows.append(get_c())
            last_out = cycle
        cycle += 1
        if cycle >= max_cycles:
            raise AssertionError(f"timeout: {len(rows)} of {n_rows} output rows after {cycle} cycles")
    return rows, first_in, last_out


def compare(rows, expect, batch_no, p):
    if rows != expect:
        i = next(n for n, (r, e) in enumerate(zip(rows, expect)) if r != e)
        got, want = decode_row(rows[i], p["cols"], p["acc_bits"]), decode_row(expect[i], p["cols"], p["acc_bits"])
        raise AssertionError(f"batch {batch_no} tile {i // p['rows']} row {i % p['rows']}: rtl (data, ovf, last) "
                             f"{got} != model {want}")


@cocotb.test()
async def regression(dut):
    """Batches of random tiles (K, chunk length, sparsity and stall rates drawn per batch) until
    ``params["macs"]`` useful MACs are verified; writes a JSON summary to ``params["out"]``."""
    p = tb_params()
    fa, fw = MLSFormat.parse(p["fmt_a"]), MLSFormat.parse(p["fmt_w"])
    L, R, C, acc_bits = p["lanes"], p["rows"], p["cols"], p["acc_bits"]
    packers = (LinePacker(fa, L), LinePacker(fw, L))
    timing = ArrayTiming(R, C, p["pe_latency"], L)
    rng = random.Random(p["seed"])
    gen = torch.Generator().manual_seed(p["seed"])
    await reset(dut)
    bar = None
    if p.get("progress"):
        from tqdm import tqdm
        bar = tqdm(total=p["macs"], unit="MAC", unit_scale=True, desc=p.get("label", "regression"),
                   file=sys.__stderr__, mininterval=1.0)
    t0 = time.perf_counter()
    stream_s = 0.0
    macs = beats_total = cycles_total = batches = 0
    while macs < p["macs"]:
        k, k_chunk = rng.choice(p["shapes"])
        stalls = p["stall_sets"][rng.randrange(len(p["stall_sets"]))]
        tiles = max(1, min(p["batch_tiles"], -(-(p["macs"] - macs) // (R * C * k))))
        batch = random_batch(gen, fa, fw, tiles, R, C, k, k_chunk, sparse=rng.choice(p["sparse"]))
        beats = batch_beats(batch, L)
        _, a_codes, a_group, w_codes, w_group = beats
        golden = batch_golden(fa, fw, a_codes, a_group, w_codes, w_group, acc_bits)
        strs = pack_payloads(packers, a_codes, a_group, w_codes, w_group, p["a_data_bits"])
        check_twins(batch, L, acc_bits, beats, golden, strs, packers, p["a_data_bits"])
        expect = expected_rows(*golden, acc_bits)
        tile_beats = a_codes.shape[1]
        n_beats = tiles * tile_beats
        s0 = time.perf_counter()
        rows, first_in, last_out = await stream(dut, *strs, tiles * R, rng, *stalls,
                                                max_cycles=50 * n_beats + 100 * (R + C + p["pe_latency"]))
        stream_s += time.perf_counter() - s0
        compare(rows, expect, batches, p)
        cycles = last_out - first_in + 1
        if not any(stalls):
            want = timing.tiles_cycles_from_beats([tile_beats] * tiles)
            assert cycles == want, f"batch {batches}: {cycles} cycles for {tiles} tiles of {tile_beats} beats, timing says {want}"
        done = tiles * R * C * k
        macs += done
        beats_total += n_beats
        cycles_total += cycles
        batches += 1
        if bar is not None:
            bar.update(done)
    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    await check_no_spurious_row(dut, p)
    with open(p["out"], "w") as f:
        json.dump({"macs": macs, "beats": beats_total, "cycles": cycles_total, "batches": batches,
                   "stream_s": stream_s, "wall_s": wall}, f)
