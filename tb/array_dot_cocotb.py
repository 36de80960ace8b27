"""cocotb tests of ``SystolicArray(..., lanes=L)`` (see test_array_dot.py): beats of L element
pairs per A row / W column, packed by ``model.beats.pack_beats``; bit-exact against
``model.arith.beat_accumulate`` (and, where exact, against the plain integer sum of products
and the layer's exact convolution), cycle-exact against ``hw.array.timing`` in beats, and no
spurious output row after the last tile.

The same module runs the scalar ``MLSPE`` array at L = 1: its A/W operand (element + g) is bit
for bit a one-lane beat (``hw.pe.beat_layout(fmt, 1)``), checked on the pytest side.

One cycle-driven loop drives both input streams and the output stream: inputs are written at
the falling edge, handshakes are sampled in ReadOnly before the next rising edge (where the
transfer happens). Stalls: each producer holds valid low with probability ``stall`` whenever it
is free to (a presented beat is held until it transfers); the consumer drops ready likewise.
"""

import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from hw.array.timing import ArrayTiming
from model.arith import beat_accumulate, exact_conv2d
from model.beats import GemmOperand, backward_data_gemms, backward_weight_gemm, conv_k_chunk, forward_gemm, pack_beats
from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import quantize
from tb.dot_pe_vectors import BeatPacker
from tb.harness import tb_params
from tb.pe_vectors import to_signed


class DotTile:
    """One array tile: A lines (R rows) and W lines (C columns) as ``GemmOperand`` s, packed into
    beats by ``model.beats.pack_beats``; the expected rows from ``model.arith.beat_accumulate``."""

    def __init__(self, a: GemmOperand, w: GemmOperand, lanes: int, acc_bits: int, packers, *, name: str = "",
                 k_chunk: int | None = None, expect=None):
        self.name, self.k, self.k_chunk = name, a.k, k_chunk
        self.stream = s = pack_beats(a, w, lanes)
        self.beats = s.beats
        pa, pw = packers
        self.a_beats = [sum(pa.pack(s.a_codes[b, i].tolist(), int(s.a_group[b, i])) << (i * pa.width)
                            for i in range(a.lines)) for b in range(s.beats)]
        self.w_beats = [sum(pw.pack(s.w_codes[b, j].tolist(), int(s.w_group[b, j])) << (j * pw.width)
                            for j in range(w.lines)) for b in range(s.beats)]
        acc, ovf = beat_accumulate(s, acc_bits)
        exact = a.to_int() @ w.to_int().T  # sum_k int(a) * int(w), independent of the beats
        if not ovf.any():
            assert torch.equal(acc, exact), f"{name}: beat_accumulate differs from the plain sum of products"
        if expect is not None:  # a conv tile: also the layer's exact result at these outputs
            assert torch.equal(exact, expect) and not ovf.any(), f"{name}: GEMM tile differs from the layer"
        self.acc, self.ovf = acc.tolist(), ovf.tolist()
        self.saturated = bool(ovf.any())


# -- tiles ---------------------------------------------------------------------------------------
def _line_groups(rng: random.Random, k: int, style: str, k_chunk: int | None):
    """Group ids along one line of K: every ``k_chunk`` elements, or at random positions."""
    if k_chunk is not None:
        return [i // k_chunk for i in range(k)]
    ids, gid = [], 0
    for i in range(k):
        if i and rng.random() < (0.02 if style == "extreme" else 0.15):
            gid += 1
        ids.append(gid)
    return ids


def random_operand(fmt: MLSFormat, lines: int, k: int, rng: random.Random, style: str, k_chunk: int | None = None,
                   sign: int | None = None) -> GemmOperand:
    """``lines`` lines of K codes with per-group g. Styles: ``random``; ``sparse`` (zeros,
    subnormals); ``extreme`` (largest magnitude, g = 0, one sign per line: saturates a narrow
    accumulator); ``cancel`` (like extreme, but the second half of K has the opposite sign)."""
    top = 1 << (fmt.exp_bits + fmt.man_bits)
    codes, gexp, gid = [], [], []
    for line in range(lines):
        ids = _line_groups(rng, k, style, k_chunk)
        g_of = {}
        row = []
        line_sign = rng.randrange(2) if sign is None else sign
        for i, gi in enumerate(ids):
            if style in ("extreme", "cancel"):
                g_of.setdefault(gi, 0)
                s = line_sign ^ (style == "cancel" and 2 * i >= k)
                row.append(s * top | (top - 1))
            else:
                g_of.setdefault(gi, rng.randrange(fmt.max_group_exp + 1))
                if style == "sparse" and rng.random() < 0.5:
                    row.append(rng.choice([0, top, 1, top | 1]))
                else:
                    row.append(rng.randrange(fmt.code_count))
        codes.append(row)
        gexp.append([g_of[gi] for gi in ids])
        gid.append(ids)
    t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return GemmOperand(fmt, t(codes), t(gexp), t(gid))


def random_tile(p, fa, fw, k, rng, style, packers, k_chunk=None):
    R, C = p["rows"], p["cols"]
    sign = 0 if style in ("extreme", "cancel") else None
    a = random_operand(fa, R, k, rng, style, k_chunk, sign)
    w = random_operand(fw, C, k, rng, style, k_chunk, sign)
    return DotTile(a, w, p["lanes"], p["acc_bits"], packers, name=f"{style} K={k} k_chunk={k_chunk}", k_chunk=k_chunk)


def plan(p, fa, fw, rng, packers):
    """K = 1, ragged chunks (k_chunk not a multiple of L), random chunk boundaries, K = max_k, ..."""
    L, R, C = p["lanes"], p["rows"], p["cols"]
    drain = R + C + p["pe_latency"] - 1
    tiles = [
        random_tile(p, fa, fw, 1, rng, "random", packers, k_chunk=1),
        random_tile(p, fa, fw, 5 * L + 3, rng, "random", packers, k_chunk=L + 1 if L > 1 else 3),  # ragged
        random_tile(p, fa, fw, 4 * L + 7, rng, "sparse", packers),                                 # random chunks
        random_tile(p, fa, fw, p["max_k"], rng, "extreme" if p["narrow"] else "random", packers),
        random_tile(p, fa, fw, 2 * L, rng, "cancel" if p["narrow"] else "random", packers, k_chunk=L),
        random_tile(p, fa, fw, max(1, (drain - 1) * L), rng, "random", packers, k_chunk=max(1, (drain - 1) * L)),
        random_tile(p, fa, fw, drain * L, rng, "sparse", packers, k_chunk=drain * L),
        random_tile(p, fa, fw, 3 * L + 2, rng, "extreme" if p["narrow"] else "random", packers, k_chunk=7),
    ]
    return tiles


def conv_tiles(p, fa, fw, rng, packers):
    """One tile of each GEMM of the captured digits-CNN conv layer (``model.capture``: its input
    activation, weight and output error from one training step, 3x3, padding 1), quantized
    with channel grouping (A-side tensors in ``fmt_a``, W-side in ``fmt_w``) and packed by the
    beat packer; R rows and C columns drawn at random."""
    from model.capture import load_tensors

    t = load_tensors()
    act, err = t["activation"][:2], t["error"][:2]  # 2 samples keep backward-weight's K (N*Ho*Wo) small
    act_a, act_w = quantize(act, fa, Grouping.channel()), quantize(act, fw, Grouping.channel())
    err_a, weight_w = quantize(err, fa, Grouping.channel()), quantize(t["weight"], fw, Grouping.channel())
    taps = weight_w.shape[2] * weight_w.shape[3]
    ho_wo = err_a.shape[2] * err_a.shape[3]
    fwd = forward_gemm(act_a, weight_w, 1, 1)
    layer = exact_conv2d(act_a, weight_w, padding=1).to(torch.int64).reshape(-1)
    (bwd_data,) = backward_data_gemms(err_a, weight_w, act_a.shape[2:], 1, 1)
    bwd_weight = backward_weight_gemm(err_a, act_w, weight_w.shape[2:], 1, 1)
    tiles = []
    for gemm, k_chunk in ((fwd, conv_k_chunk("forward", taps=taps)), (bwd_data, conv_k_chunk("backward-data", taps=taps)),
                          (bwd_weight, conv_k_chunk("backward-weight", taps=taps, out_positions=ho_wo))):
        rows = sorted(rng.sample(range(gemm.m), p["rows"]))
        cols = sorted(rng.sample(range(gemm.n), p["cols"]))
        expect = layer[gemm.out_index[rows][:, cols]] if gemm is fwd else None
        tiles.append(DotTile(gemm.a.select(rows), gemm.w.select(cols), p["lanes"], p["acc_bits"], packers,
                             name=f"{gemm.pass_} K={gemm.k}", k_chunk=k_chunk, expect=expect))
    return tiles


# -- the stream driver ---------------------------------------------------------------------------
async def run_tiles(dut, tiles, p, rng, stall_a, stall_w, stall_c, timeout=400000, idle_check=True):
    """Stream the tiles back to back; return (rows, in_cycles, out_cycles). After the last row,
    ``c.valid`` must stay low for a whole drain (no spurious row; ``idle_check=False`` leaves
    that to the caller: :func:`check_no_spurious_row`)."""
    R, C, width = p["rows"], p["cols"], p["acc_bits"]
    a_beats = [(b, int(i == t.beats - 1)) for t in tiles for i, b in enumerate(t.a_beats)]
    w_beats = [b for t in tiles for b in t.w_beats]
    n_out = R * len(tiles)
    a_shift = p["a_data_bits"]
    rows, in_cycles, out_cycles = [], [], []
    pos, a_valid, w_valid, cycle = 0, 0, 0, 0
    while len(rows) < n_out:
        await FallingEdge(dut.clk)
        if pos < len(a_beats):
            if not a_valid and rng.random() >= stall_a:
                a_valid = 1
            if not w_valid and rng.random() >= stall_w:
                w_valid = 1
            beat, last = a_beats[pos]
            dut.a__payload.value = beat | (last << a_shift)
            dut.w__payload.value = w_beats[pos]
        else:
            a_valid = w_valid = 0
        dut.a__valid.value = a_valid
        dut.w__valid.value = w_valid
        c_ready = int(rng.random() >= stall_c)
        dut.c__ready.value = c_ready
        await ReadOnly()
        if a_valid and w_valid and int(dut.a__ready.value):
            assert int(dut.w__ready.value), "a transferred without w"
            in_cycles.append(cycle)
            pos += 1
            a_valid = w_valid = 0
        elif (a_valid and int(dut.a__ready.value)) or (w_valid and int(dut.w__ready.value)):
            raise AssertionError(f"cycle {cycle}: one input stream transferred without the other")
        if c_ready and int(dut.c__valid.value):
            raw = dut.c__payload.value
            assert raw.is_resolvable, f"cycle {cycle}: output payload not 0/1: {raw}"
            word = raw.to_unsigned()
            data = [to_signed(word >> (j * width), width) for j in range(C)]
            flags = [(word >> (C * width + j)) & 1 for j in range(C)]
            rows.append((data, flags, (word >> (C * width + C)) & 1))
            out_cycles.append(cycle)
        cycle += 1
        assert cycle < timeout, f"timeout: {len(rows)} of {n_out} output rows after {cycle} cycles"
    if idle_check:
        await check_no_spurious_row(dut, p)
    return rows, in_cycles, out_cycles


async def check_no_spurious_row(dut, p):
    """After the last row of the last tile, nothing is valid on ``c`` for a whole drain (and
    more) with the consumer ready and no input."""
    for extra in range(p["rows"] + p["cols"] + p["pe_latency"] + 4):
        await FallingEdge(dut.clk)
        dut.a__valid.value = 0
        dut.w__valid.value = 0
        dut.c__ready.value = 1
        await ReadOnly()
        assert not int(dut.c__valid.value), f"spurious output row {extra + 1} cycles after the last row of the last tile"


def check_rows(tiles, rows, R):
    for n, t in enumerate(tiles):
        for i in range(R):
            data, flags, last = rows[n * R + i]
            assert data == t.acc[i] and flags == [int(f) for f in t.ovf[i]], (
                f"tile {n} ({t.name}, {t.beats} beats) row {i}: rtl {data} ovf {flags} != model {t.acc[i]} "
                f"ovf {[int(f) for f in t.ovf[i]]}")
            assert last == int(i == R - 1), f"tile {n} row {i}: last = {last}"


def check_cycles(tiles, in_cycles, out_cycles, timing: ArrayTiming, R):
    """Without stalls: every tile's beats, the interval between tiles' last beats, every row's
    drain and the whole run match hw.array.timing (in beats) exactly."""
    beats = [t.beats for t in tiles]
    assert len(in_cycles) == sum(beats), f"{len(in_cycles)} input transfers for {sum(beats)} beats"
    last_in, prev_last = 0, None
    for n, t in enumerate(tiles):
        if t.k_chunk is not None:
            assert t.beats == timing.tile_beats(t.k, t.k_chunk), f"tile {n} ({t.name}): {t.beats} beats packed, timing says {timing.tile_beats(t.k, t.k_chunk)}"
        last_in += t.beats
        t_last = in_cycles[last_in - 1]
        if prev_last is None:
            assert t_last - in_cycles[0] + 1 == t.beats, f"tile {n}: first tile took {t_last - in_cycles[0] + 1} cycles for {t.beats} beats"
        else:
            assert t_last - prev_last == max(t.beats, timing.drain_cycles), (
                f"tile {n} ({t.name}): last beats {t_last - prev_last} cycles apart, timing says max({t.beats}, {timing.drain_cycles})")
        prev_last = t_last
        for i in range(R):
            assert out_cycles[n * R + i] - t_last == timing.drain_cycles - (R - 1 - i), f"tile {n} row {i} timing"
    measured = out_cycles[-1] - in_cycles[0] + 1
    assert measured == timing.tiles_cycles_from_beats(beats), (
        f"{len(beats)} tiles of {beats} beats: measured {measured} cycles, timing says {timing.tiles_cycles_from_beats(beats)}")
    if len(tiles) == 1:
        assert measured == timing.tile_cycles_from_beats(beats[0])
        if tiles[0].k_chunk is not None:
            assert measured == timing.tile_cycles(tiles[0].k, tiles[0].k_chunk)


# -- set-up --------------------------------------------------------------------------------------
def setup(dut):
    p = tb_params()
    fa, fw = MLSFormat.parse(p["fmt_a"]), MLSFormat.parse(p["fmt_w"])
    timing = ArrayTiming(p["rows"], p["cols"], p["pe_latency"], p["lanes"])
    packers = (BeatPacker(fa, p["lanes"]), BeatPacker(fw, p["lanes"]))
    return p, fa, fw, timing, packers


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.a__valid.value = 0
    dut.w__valid.value = 0
    dut.c__ready.value = 0
    dut.a__payload.value = 0
    dut.w__payload.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _idle(dut, n=3):
    for _ in range(n):
        await FallingEdge(dut.clk)


# -- the three runs every dot-array testbench makes (shared with array_baseline_dot_cocotb.py) ---
#: (stall_a, stall_w, stall_c) probabilities of the stalled runs.
STALL_MIXES = ((0.3, 0.0, 0.0), (0.0, 0.3, 0.5), (0.4, 0.4, 0.7))


async def run_single_tiles(dut, p, timing, tiles, rng):
    """Each tile alone, no stalls: its rows bit-exact and its cycles exact (``check_cycles``)."""
    for tile in tiles:
        rows, ins, outs = await run_tiles(dut, [tile], p, rng, 0, 0, 0)
        check_rows([tile], rows, p["rows"])
        check_cycles([tile], ins, outs, timing, p["rows"])
        await _idle(dut)


async def run_back_to_back(dut, p, timing, tiles, rng):
    """The tiles back to back without stalls: bit-exact, every tile's timing."""
    rows, ins, outs = await run_tiles(dut, tiles, p, rng, 0, 0, 0)
    check_rows(tiles, rows, p["rows"])
    check_cycles(tiles, ins, outs, timing, p["rows"])


async def run_stalled(dut, p, timing, make_tiles, rng):
    """For each of ``STALL_MIXES``: the first ``p["stall_tiles"]`` of ``make_tiles()`` back to
    back under random stalls on ``a``, ``w`` and ``c``; bit-exact, rows in order, never faster
    than the stall-free timing."""
    for stall_a, stall_w, stall_c in STALL_MIXES:
        tiles = make_tiles()[: p["stall_tiles"]]
        rows, ins, outs = await run_tiles(dut, tiles, p, rng, stall_a, stall_w, stall_c)
        check_rows(tiles, rows, p["rows"])
        assert outs[-1] - ins[0] + 1 >= timing.tiles_cycles_from_beats([t.beats for t in tiles])


@cocotb.test()
async def single_tiles(dut):
    """Each tile alone (K = 1, ragged chunks, random chunks, K = max_k, ...): bit-exact, and
    cycles == tile_cycles_from_beats(beats) (== tile_cycles(K, k_chunk) for regular chunks)."""
    p, fa, fw, timing, packers = setup(dut)
    await reset(dut)
    rng = random.Random(p["seed"])
    tiles = plan(p, fa, fw, rng, packers)
    await run_single_tiles(dut, p, timing, tiles, rng)
    if p["narrow"]:
        assert any(t.saturated for t in tiles), "a narrow accumulator that never saturated tests nothing"


@cocotb.test()
async def back_to_back(dut):
    """Tiles back to back without stalls: the drain overlaps the next tile; every tile's timing."""
    p, fa, fw, timing, packers = setup(dut)
    await reset(dut)
    rng = random.Random(p["seed"] + 1)
    await run_back_to_back(dut, p, timing, plan(p, fa, fw, rng, packers), rng)


@cocotb.test()
async def stalls(dut):
    """Random valid/ready stalls on all three streams: still bit-exact, rows in order."""
    p, fa, fw, timing, packers = setup(dut)
    await reset(dut)
    rng = random.Random(p["seed"] + 2)
    await run_stalled(dut, p, timing, lambda: plan(p, fa, fw, rng, packers), rng)


@cocotb.test()
async def conv_gemm_tiles(dut):
    """One tile of the forward, backward-data and backward-weight GEMM of a real conv layer
    (captured training tensors, channel grouping), alone and back to back; the forward tile
    also equals model.arith.exact_conv2d at its outputs."""
    p, fa, fw, timing, packers = setup(dut)
    await reset(dut)
    rng = random.Random(p["seed"] + 3)
    tiles = conv_tiles(p, fa, fw, rng, packers)
    await run_single_tiles(dut, p, timing, tiles, rng)
    await run_back_to_back(dut, p, timing, tiles, rng)
