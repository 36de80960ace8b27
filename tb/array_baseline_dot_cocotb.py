"""cocotb tests of the arrays of same-lane FP8 / INT8 dot-product PEs (``SystolicArray(None, R, C,
pe="fp8-..." | "int8", lanes=L)``, see test_array_baseline_dot.py).

One beat carries, per A row and per W column, L consecutive k of the tile (lane 0 = the lowest
k); a baseline operand has no group exponent, so a tile is one chunk and only its last beat is
padded, with zero codes (``model.baseline_arith``: "padding lanes carry zero codes"). Beats are
packed from the array's own ``a_layout`` / ``w_layout`` by ``hw.layout_pack.pack``; the expected
rows are ``fp8_dot_accumulate`` / ``int8_dot_accumulate`` of exactly those beats (one FP32
rounding per beat; wrapping INT32). Two checks do not depend on the beats: INT8 rows are also the
plain wrapped sum of products, and FP8 rows are the same word with the last beat cut to its real
lanes (but for a zero's sign). Operands come from the scalar baseline testbench
(``array_baseline_cocotb.baseline_operands``: random, sparse/subnormal/signed-zero, and special
codes), and the stream driver, the cycle checks against ``hw.array.timing`` (in beats) and the
no-spurious-row check are the MLS dot array's (``array_dot_cocotb``).
"""

from __future__ import annotations

import random

import numpy as np

import cocotb
from amaranth.lib import data

from hw.array import SystolicArray
from hw.array.timing import ArrayTiming
from hw.layout_pack import pack, unpack
from model import baseline_arith as ba
from tb.array_baseline_cocotb import baseline_operands
from tb.array_dot_cocotb import reset, run_back_to_back, run_single_tiles, run_stalled
from tb.harness import tb_params
from tb.pe_vectors import to_signed


def _lane_value(shape, code: int):
    """One lane's field value: an FP8 code as its ``float_layout`` fields, or a signed INT8 value."""
    return unpack(shape, int(code)) if isinstance(shape, data.Layout) else int(code)


class BaselineDotTile:
    """One tile A [R, K] x W [K, C] of raw codes (FP8 codes or signed INT8 values) as
    ceil(K / L) beats: ``a_beats`` / ``w_beats`` are ``a.payload.data`` / ``w.payload`` words
    (the driver adds ``last``); ``acc`` the expected rows (32-bit words, signed as the driver
    reads them) and ``ovf`` their flags (always 0)."""

    def __init__(self, arr: SystolicArray, a: np.ndarray, w: np.ndarray, name: str):
        R, K = a.shape
        C, L = w.shape[1], arr.lanes
        kind, fa, fw = arr.pe_formats
        self.name, self.k = name, K
        self.k_chunk = K                   # one chunk: the only padded beat is the last
        self.beats = beats = -(-K // L)
        pad = beats * L - K
        a_lanes = np.pad(a, ((0, 0), (0, pad))).reshape(R, beats, L)     # [row, beat, lane]
        w_lanes = np.pad(w.T, ((0, 0), (0, pad))).reshape(C, beats, L)   # [column, beat, lane]
        sa, sw = arr.a_shape.elem_shape, arr.w_shape.elem_shape
        self.a_beats = [pack(arr.a_layout, {"data": [[_lane_value(sa, c) for c in a_lanes[i, b]] for i in range(R)],
                                            "last": 0}) for b in range(beats)]
        self.w_beats = [pack(arr.w_layout, {"data": [[_lane_value(sw, c) for c in w_lanes[j, b]] for j in range(C)]})
                        for b in range(beats)]
        if kind == "fp8":
            acc = [[ba.fp8_dot_accumulate(a_lanes[i], w_lanes[j], fa, fw) for j in range(C)] for i in range(R)]
            # the padding must not matter: the same beats with the last one cut to its K mod L real
            # lanes give the same word (but for the sign of a zero: a padded beat is never all -0)
            for i in range(R):
                for j in range(C):
                    short = None
                    for b in range(beats):
                        ks = slice(b * L, min(K, (b + 1) * L))
                        short = ba.fp8_dot_mac(short, a[i, ks], w[ks, j], fa, fw, first=b == 0)
                    assert short == acc[i][j] or (short | acc[i][j]) & 0x7FFFFFFF == 0, (
                        f"{name}: PE ({i}, {j}) is {acc[i][j]:#010x} with padded beats, {short:#010x} without")
        else:
            acc = [[ba.int8_dot_accumulate(a_lanes[i], w_lanes[j]) for j in range(C)] for i in range(R)]
            plain = [[to_signed(int(x), 32) for x in row] for row in (a @ w).tolist()]
            assert acc == plain, f"{name}: int8_dot_accumulate of the beats differs from the wrapped sum of products"
        self.acc = [[to_signed(x, 32) for x in row] for row in acc]
        self.ovf = [[0] * C for _ in range(R)]


def setup():
    p = tb_params()
    arr = SystolicArray(None, p["rows"], p["cols"], max_k=p["max_k"], pe=p["pe"], lanes=p["lanes"])
    assert arr.pe_latency == p["pe_latency"] and arr.lanes == p["lanes"]
    timing = ArrayTiming(p["rows"], p["cols"], p["pe_latency"], p["lanes"])
    return p, arr, timing


def plan(p, arr, rng):
    """K = 1 (L - 1 padding lanes), a ragged K (5L + 3), one full beat, K = max_k, K = 2L - 1,
    tiles of drain - 1, drain (ragged) and drain + 1 beats, in the styles sparse (zeros,
    subnormals, signed zeros) / random / special codes in turn; then two beats of signed zeros."""
    L, R, C = p["lanes"], p["rows"], p["cols"]
    drain = ArrayTiming(R, C, p["pe_latency"], L).drain_cycles
    ks = [1, 5 * L + 3, L, p["max_k"], 2 * L - 1, (drain - 1) * L, drain * L - (L // 2), (drain + 1) * L]
    styles = ("sparse", "random", "wild")
    kind, fa, fw = arr.pe_formats
    tiles = []
    for n, k in enumerate(ks):
        style = styles[n % len(styles)]
        a = baseline_operands(rng, kind, fa, (R, k), style)
        w = baseline_operands(rng, kind, fw, (k, C), style)
        tiles.append(BaselineDotTile(arr, a, w, f"{style} K={k}"))
    if kind == "fp8":   # rows 0, 2, .. of A all -0, columns 0, 2, .. of W all +0: those PEs -0, the rest +0
        a = rng.integers(0, 2, (R, 2 * L)) << 7
        a[0::2] = 0x80
        w = rng.integers(0, 2, (2 * L, C)) << 7
        w[:, 0::2] = 0
        tiles.append(BaselineDotTile(arr, a, w, f"signed zeros K={2 * L}"))
        neg = [[x == ba.FP32_NEG_ZERO - (1 << 32) for x in row] for row in tiles[-1].acc]
        assert neg == [[i % 2 == 0 and j % 2 == 0 for j in range(C)] for i in range(R)], f"signed zeros: {neg}"
    return tiles


@cocotb.test()
async def single_tiles(dut):
    """Each tile alone: bit-exact, and its beats and cycles equal hw.array.timing's."""
    p, arr, timing = setup()
    await reset(dut)
    rng = np.random.default_rng(p["seed"])
    await run_single_tiles(dut, p, timing, plan(p, arr, rng), random.Random(p["seed"]))


@cocotb.test()
async def back_to_back(dut):
    """The tiles back to back without stalls: the drain overlaps the next tile; every tile's timing."""
    p, arr, timing = setup()
    await reset(dut)
    rng = np.random.default_rng(p["seed"] + 1)
    await run_back_to_back(dut, p, timing, plan(p, arr, rng), random.Random(p["seed"] + 1))


@cocotb.test()
async def stalls(dut):
    """Random valid/ready stalls on all three streams: still bit-exact, rows in order."""
    p, arr, timing = setup()
    await reset(dut)
    rng = np.random.default_rng(p["seed"] + 2)
    await run_stalled(dut, p, timing, lambda: plan(p, arr, rng), random.Random(p["seed"] + 2))
