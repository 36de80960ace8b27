"""Cycle model (sim/cycles.py) against a brute-force, cycle-stepping simulation of the array.

The reference below knows nothing of ``hw/array/timing.py`` or ``sim/cycles.py``: it moves every
operand through explicit skew, pass-through, product, accumulator and result registers one clock
at a time, following the tile protocol written in the array's documentation (joined input
beats; outputs one row per cycle, row 0 first, in the cycle after the row's last PE holds its
result (a row-complete register); double-buffered results; the LAST beat of a tile waits until the previous tile's final row has
left). It also carries the data, so every output row it emits must equal the tile's matmul.
"""

import math
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hw.array.timing import PE_LATENCY, ArrayTiming
from model.beats import conv_gemms, pack_beats
from model.config import DEFAULT_LINEAR_BLOCK
from model.grouping import Grouping
from model.quantize import quantize
from sim import cycles as sim_cycles
from sim.cycles import ArrayConfig, dot_pe_latency, gemm_cycles, lane_totals, network_cycles
from sim.workloads import NETWORKS, Gemm, _network_layers, gemms_for_layer, network_gemms, trace_layers


def stepping_reference(tiles, rows, cols):
    """Simulate back-to-back tiles ``[(A [R, K], W [K, C]), ...]`` clock by clock.

    Returns (cycles from the first input transfer to the last output transfer inclusive,
    list of output tiles as [R, C] arrays)."""
    assert PE_LATENCY == 2  # the reference models exactly a product and an accumulator register
    beats = [(n, k, k == a.shape[1] - 1, a[:, k], w[k, :]) for n, (a, w) in enumerate(tiles)
             for k in range(a.shape[1])]
    # skew lines: row i delays A by i cycles, column j delays W by j cycles (tokens visible at the
    # edge PE in the cycle they pop out; a zero-length line is combinational)
    skew_a = [[None] * i for i in range(rows)]
    skew_w = [[None] * j for j in range(cols)]
    a_at = [[None] * cols for _ in range(rows)]  # token visible at PE(i, j) this cycle
    w_at = [[None] * cols for _ in range(rows)]
    prod = [[None] * cols for _ in range(rows)]  # product register: (tile, last, value)
    acc = [[0] * cols for _ in range(rows)]
    result = [[None] * cols for _ in range(rows)]  # (tile, value), loaded with the last sum
    complete = [None] * rows  # row-complete register: tile whose row r results were all held
    out_tile, out_row = 0, 0
    row_left = {}  # (tile, row) -> cycle it transferred
    outputs = [np.zeros((rows, cols), dtype=object) for _ in tiles]
    first_in = last_out = None
    beat = 0
    cycle = 0
    while out_tile < len(tiles):
        assert cycle < 10_000, "reference deadlocked"
        # 1. output port: the next row leaves once its row-complete register marks that tile
        if complete[out_row] == out_tile:
            assert all(result[out_row][j][0] == out_tile for j in range(cols)), "result overwritten"
            for j in range(cols):
                outputs[out_tile][out_row, j] = result[out_row][j][1]
            row_left[(out_tile, out_row)] = cycle
            last_out = cycle
            out_row += 1
            if out_row == rows:
                out_tile, out_row = out_tile + 1, 0
        # 2. input port: the next beat transfers unless it is a last beat whose predecessor
        #    tile has not yet sent its final row (sending it this very cycle is allowed)
        token_a = [None] * rows
        token_w = [None] * cols
        if beat < len(beats):
            n, k, last, a_col, w_row = beats[beat]
            if not (last and n > 0 and (n - 1, rows - 1) not in row_left):
                token_a = [(n, k, last, a_col[i]) for i in range(rows)]
                token_w = [(n, k, last, w_row[j]) for j in range(cols)]
                first_in = cycle if first_in is None else first_in
                beat += 1
        # 3. what each PE sees this cycle: from the skew line (column 0 / row 0) or a neighbour
        new_a = [[None] * cols for _ in range(rows)]
        new_w = [[None] * cols for _ in range(rows)]
        for i in range(rows):
            line = skew_a[i] + [token_a[i]]
            new_a[i][0], skew_a[i] = line[0], line[1:]
            for j in range(1, cols):
                new_a[i][j] = a_at[i][j - 1]
        for j in range(cols):
            line = skew_w[j] + [token_w[j]]
            new_w[0][j], skew_w[j] = line[0], line[1:]
            for i in range(1, rows):
                new_w[i][j] = w_at[i - 1][j]
        a_at, w_at = new_a, new_w
        # 4. clock edge: the row-complete registers sample the result registers as they are now;
        #    accumulators take last cycle's products; product registers take this cycle's pairs
        for i in range(rows):
            tags = {result[i][j][0] if result[i][j] is not None else None for j in range(cols)}
            complete[i] = tags.pop() if len(tags) == 1 else None
        for i in range(rows):
            for j in range(cols):
                p = prod[i][j]
                if p is not None:
                    n, k, last, value = p
                    acc[i][j] = value if k == 0 else acc[i][j] + value
                    if last:
                        result[i][j] = (n, acc[i][j])
                ta, tw = a_at[i][j], w_at[i][j]
                if ta is not None:
                    assert tw is not None and ta[:2] == tw[:2], "A and W tokens out of step"
                    prod[i][j] = (ta[0], ta[1], ta[2], int(ta[3]) * int(tw[3]))
                else:
                    assert tw is None
                    prod[i][j] = None
        cycle += 1
    return last_out - first_in + 1, outputs


def _rand_tile(rng, rows, cols, k):
    return (np.array([[rng.randrange(-9, 10) for _ in range(k)] for _ in range(rows)], dtype=object),
            np.array([[rng.randrange(-9, 10) for _ in range(cols)] for _ in range(k)], dtype=object))


def _fold(a, w, rows, cols):
    """Output-stationary folds of C = A @ W, zero-padded edge tiles, row-major fold order."""
    m, k = a.shape
    n = w.shape[1]
    tiles = []
    for r0 in range(0, m, rows):
        for c0 in range(0, n, cols):
            ta = np.zeros((rows, k), dtype=object)
            tw = np.zeros((k, cols), dtype=object)
            part_a, part_w = a[r0:r0 + rows], w[:, c0:c0 + cols]
            ta[:part_a.shape[0]] = part_a
            tw[:, :part_w.shape[1]] = part_w
            tiles.append((ta, tw, r0, c0))
    return tiles


@pytest.mark.parametrize("rows, cols, k", [(1, 1, 1), (1, 1, 5), (1, 4, 3), (3, 1, 2), (2, 3, 1),
                                           (3, 2, 7), (4, 4, 2), (4, 4, 11)])
def test_single_tile_matches_reference(rows, cols, k):
    rng = random.Random(rows * 100 + cols * 10 + k)
    a, w = _rand_tile(rng, rows, cols, k)
    cycles, outputs = stepping_reference([(a, w)], rows, cols)
    assert (outputs[0] == a.dot(w)).all()
    gemm = Gemm("t", "forward", rows, cols, k, "activation", "weight", rows * k, k * cols, rows * cols)
    assert gemm_cycles(gemm, ArrayConfig(rows, cols)).cycles == cycles


@pytest.mark.parametrize("seed", range(10))
def test_folded_gemm_matches_reference(seed):
    """Random GEMMs with edge tiles, folded onto a small array and run back to back."""
    rng = random.Random(seed)
    rows, cols = rng.randrange(1, 5), rng.randrange(1, 5)
    m, n, k = rng.randrange(1, 3 * rows + 2), rng.randrange(1, 3 * cols + 2), rng.randrange(1, 9)
    a = np.array([[rng.randrange(-9, 10) for _ in range(k)] for _ in range(m)], dtype=object)
    w = np.array([[rng.randrange(-9, 10) for _ in range(n)] for _ in range(k)], dtype=object)
    folds = _fold(a, w, rows, cols)
    cycles, outputs = stepping_reference([(ta, tw) for ta, tw, _, _ in folds], rows, cols)
    c = np.zeros((m, n), dtype=object)
    for (_, _, r0, c0), out in zip(folds, outputs):
        c[r0:r0 + rows, c0:c0 + cols] = out[:min(rows, m - r0), :min(cols, n - c0)]
    assert (c == a.dot(w)).all()
    gemm = Gemm("g", "forward", m, n, k, "activation", "weight", m * k, k * n, m * n)
    model = gemm_cycles(gemm, ArrayConfig(rows, cols))
    assert model.cycles == cycles
    assert model.folds == len(folds) == math.ceil(m / rows) * math.ceil(n / cols)
    # traffic: every fold streams its A rows and W columns over the whole K
    assert model.a_reads == math.ceil(n / cols) * m * k
    assert model.b_reads == math.ceil(m / rows) * k * n
    assert model.utilization <= 1.0


def test_without_overlap_each_fold_pays_its_drain():
    rng = random.Random(7)
    rows, cols, k = 3, 2, 4
    tiles = [_rand_tile(rng, rows, cols, k) for _ in range(3)]
    single, _ = stepping_reference(tiles[:1], rows, cols)
    gemm = Gemm("g", "forward", 3 * rows, cols, k, "activation", "weight", 1, 1, 1)
    assert gemm_cycles(gemm, ArrayConfig(rows, cols, overlap_drain=False)).cycles == 3 * single
    overlapped, _ = stepping_reference(tiles, rows, cols)
    assert gemm_cycles(gemm, ArrayConfig(rows, cols)).cycles == overlapped < 3 * single


def test_network_utilization_is_sane():
    gemms = network_gemms("resnet20")
    cyc = network_cycles(gemms, ArrayConfig(16, 16))
    assert all(0 < c.utilization <= 1 for c in cyc)
    assert sum(c.macs for c in cyc) == sum(g.macs for g in gemms)
    # large-K backward-weight GEMMs keep a 16x16 array almost fully busy
    best = max(c.utilization for c, g in zip(cyc, gemms) if g.pass_ == "backward-weight")
    assert best > 0.95


@pytest.mark.parametrize("seed", range(20))
def test_gemm_cycles_is_the_rtl_checked_function(seed):
    """A GEMM's cycles are exactly what the RTL testbenches check: hw.array.timing.tiles_cycles
    of its folds run back to back (closed form here, a walk over every tile there)."""
    from hw.array.timing import tiles_cycles

    rng = random.Random(1000 + seed)
    rows, cols = rng.randrange(1, 33), rng.randrange(1, 33)
    gemm = Gemm("g", "forward", rng.randrange(1, 200), rng.randrange(1, 200), rng.randrange(1, 80),
                "activation", "weight", 1, 1, 1)
    model = gemm_cycles(gemm, ArrayConfig(rows, cols))
    assert model.cycles == tiles_cycles([gemm.k] * model.folds, rows, cols)


# -- weight-stationary (model only: no RTL implements it) ---------------------------------------
def ws_stepping_reference(a, w, rows, cols, overlap=True):
    """Clock-by-clock weight-stationary array: returns (cycles, C) for C = A @ W.

    Folds go N-tile outer, K-tile inner. Loading a fold shifts its R x C weight tile in from the
    top, one row per cycle, column j skewed by j cycles; a PE keeps at most two folds' weights
    (double buffering) and the reference asserts it never needs a third or a missing one.
    A row m of a fold enters array row i at its skew and moves right; partial sums move down one
    PE per cycle; column sums leave the bottom one cycle after the last row's PE. Partial sums of
    K folds are added outside (the accumulator buffer). Without ``overlap`` a fold's load waits
    until the previous fold has drained."""
    m_rows, k = a.shape
    n = w.shape[1]
    fk, fn = math.ceil(k / rows), math.ceil(n / cols)
    folds = [(kt, nt) for nt in range(fn) for kt in range(fk)]
    wt, at = [], []
    for kt, nt in folds:
        tile = np.zeros((rows, cols), dtype=object)
        part = w[kt * rows:(kt + 1) * rows, nt * cols:(nt + 1) * cols]
        tile[:part.shape[0], :part.shape[1]] = part
        wt.append(tile)
        slab = np.zeros((m_rows, rows), dtype=object)
        part = a[:, kt * rows:(kt + 1) * rows]
        slab[:, :part.shape[1]] = part
        at.append(slab)
    held = [[{} for _ in range(cols)] for _ in range(rows)]  # PE weight buffers: fold -> value
    used = [[{} for _ in range(cols)] for _ in range(rows)]  # fold -> A rows consumed
    arrivals = {}  # cycle -> list of (fold, i, j): weight stored at the end of that cycle
    a_at = [[None] * cols for _ in range(rows)]
    psum = [[None] * cols for _ in range(rows)]  # produced last cycle by PE(i, j)
    skew = [[None] * i for i in range(rows)]
    load_start, stream_start = {}, {}
    next_load = next_fold = 0
    next_m = 0
    c = np.zeros((m_rows, n), dtype=object)
    outputs_left = len(folds) * m_rows * cols
    last_out = None
    fold_last_out, fold_outs = {}, {}
    cycle = 0
    while outputs_left:
        assert cycle < 100_000
        # streamer: next A row, if its fold's weights are in PE(0, 0) and the previous fold has entered
        token = [None] * rows
        if next_fold < len(folds) and next_fold in load_start and next_fold in held[0][0]:
            f = next_fold
            if next_m == 0:
                stream_start[f] = cycle
            token = [(f, next_m, at[f][next_m, i]) for i in range(rows)]
            next_m += 1
            if next_m == m_rows:
                next_fold, next_m = next_fold + 1, 0
        # loader: start the next fold's load when the previous load is done and the fold before
        # it has started streaming, this cycle included (with overlap), or when the previous fold has drained
        if next_load < len(folds):
            f = next_load
            if f == 0:
                ok = True
            elif overlap:
                ok = cycle >= load_start[f - 1] + rows and (f - 1) in stream_start and stream_start[f - 1] <= cycle
            else:
                ok = fold_last_out.get(f - 1, math.inf) < cycle
            if ok:
                load_start[f] = cycle
                for i in range(rows):
                    for j in range(cols):  # row i's token enters at cycle + (rows-1-i) + j, sinks i rows
                        arrivals.setdefault(cycle + rows - 1 + j, []).append((f, i, j))
                next_load += 1
        # A moves right through the skew lines; every PE multiplies with its fold's weight and adds
        # the partial sum from above (row 0 starts from zero)
        new_a = [[None] * cols for _ in range(rows)]
        for i in range(rows):
            line = skew[i] + [token[i]]
            new_a[i][0], skew[i] = line[0], line[1:]
            for j in range(1, cols):
                new_a[i][j] = a_at[i][j - 1]
        a_at = new_a
        new_psum = [[None] * cols for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                tok = a_at[i][j]
                above = psum[i - 1][j] if i else None
                if tok is None:
                    assert above is None
                    continue
                f, m, value = tok
                assert f in held[i][j], f"PE({i},{j}) has no weights for fold {f}"
                base = 0
                if i:
                    assert above is not None and above[:2] == (f, m)
                    base = above[2]
                new_psum[i][j] = (f, m, base + value * held[i][j][f])
                used[i][j][f] = used[i][j].get(f, 0) + 1
        # bottom row: a column sum produced last cycle leaves now
        for j in range(cols):
            out = psum[rows - 1][j]
            if out is not None:
                f, m, value = out
                kt, nt = folds[f]
                col = nt * cols + j
                if col < n:
                    c[m, col] += value
                outputs_left -= 1
                last_out = cycle
                fold_outs[f] = fold_outs.get(f, 0) + 1
                if fold_outs[f] == m_rows * cols:
                    fold_last_out[f] = cycle
        psum = new_psum
        # clock edge: weights arriving now replace a fold every PE has finished with
        for f, i, j in arrivals.pop(cycle, []):
            done = [g for g in held[i][j] if used[i][j].get(g, 0) == m_rows]
            for g in done:
                del held[i][j][g]
            held[i][j][f] = wt[f][i, j]
            assert len(held[i][j]) <= 2, f"PE({i},{j}) would need a third weight buffer"
        cycle += 1
    return last_out + 1, c


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("overlap", [True, False])
def test_weight_stationary_matches_reference(seed, overlap):
    rng = random.Random(500 + seed)
    rows, cols = rng.randrange(1, 5), rng.randrange(1, 5)
    m, n, k = rng.randrange(1, 9), rng.randrange(1, 3 * cols + 2), rng.randrange(1, 3 * rows + 2)
    a = np.array([[rng.randrange(-9, 10) for _ in range(k)] for _ in range(m)], dtype=object)
    w = np.array([[rng.randrange(-9, 10) for _ in range(n)] for _ in range(k)], dtype=object)
    cycles, c = ws_stepping_reference(a, w, rows, cols, overlap)
    assert (c == a.dot(w)).all()
    gemm = Gemm("g", "forward", m, n, k, "activation", "weight", m * k, k * n, m * n)
    model = gemm_cycles(gemm, ArrayConfig(rows, cols, overlap_drain=overlap, dataflow="ws"))
    assert model.cycles == cycles
    assert model.folds == math.ceil(k / rows) * math.ceil(n / cols)
    assert model.b_reads == k * n and model.a_reads == math.ceil(n / cols) * m * k
    assert model.psum_reads == model.psum_writes == (math.ceil(k / rows) - 1) * m * n


def test_dataflow_errors():
    with pytest.raises(ValueError, match="dataflow must be one of"):
        ArrayConfig(4, 4, dataflow="rs")
    with pytest.raises(ValueError, match="dataflow must be one of"):
        ArrayConfig.parse("4x4-rs")
    assert ArrayConfig.parse("8x4-ws") == ArrayConfig(8, 4, dataflow="ws")
    assert str(ArrayConfig.parse("8x4-ws")) == "8x4-ws" and str(ArrayConfig.parse("8x4")) == "8x4"


# -- lanes: the L-lane dot-product PE --------------------------------------------------------------
@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_one_lane_is_the_scalar_model(net):
    """lanes = 1 reproduces today's GemmCycles field for field, for any channel block Gc; Gc = 1
    keeps today's k_chunk (kh*kw forward, the phase's taps backward-data, Ho*Wo backward-weight)."""
    base = network_gemms(net)
    for gc in (1, 4):
        gemms = network_gemms(net, gc=gc)
        assert [(g.layer, g.pass_, g.phase, g.m, g.n, g.k) for g in gemms] == [(g.layer, g.pass_, g.phase, g.m, g.n, g.k) for g in base]
        for g, b in zip(gemms, base):
            one, scalar = gemm_cycles(g, ArrayConfig(16, 16, lanes=1)), gemm_cycles(b, ArrayConfig(16, 16))
            assert one == scalar and one.tile_beats == g.k and one.lane_slots == g.macs and one.lane_utilization == 1
            assert ArrayConfig(16, 16, lanes=1).pe_latency == PE_LATENCY
    layers = {layer.name: layer for layer in _network_layers(net)}
    for g in base:
        layer = layers[g.layer]
        if layer.kind == "conv" and g.pass_ == "forward":
            assert g.k_chunk == layer.kernel[0] * layer.kernel[1]
        elif layer.kind == "conv" and g.pass_ == "backward-weight":
            assert g.k_chunk == layer.out_hw[0] * layer.out_hw[1]
        elif layer.kind == "conv":
            assert g.k_chunk == g.k // layer.out_channels


CONV_LAYERS = [  # (cin, cout, kernel, stride, padding, in size)
    (6, 5, 3, 2, 1, 7),  # cin = 6 with gc = 4: a ragged last forward chunk; four backward-data phases
    (4, 8, 1, 2, 0, 6),  # a 1x1 stride-2 shortcut
    (3, 4, 3, 1, 1, 5),
]


def _layer_tensors(cin, cout, kernel, stride, padding, size, gc, batch):
    gen = torch.Generator().manual_seed(cin * 100 + cout * 10 + gc)
    out = (size + 2 * padding - kernel) // stride + 1
    grouping = Grouping.channel(gc)
    act = quantize(torch.randn(batch, cin, size, size, generator=gen), "e2m1g3", grouping)
    weight = quantize(torch.randn(cout, cin, kernel, kernel, generator=gen), "e2m1g3", grouping)
    error = quantize(torch.randn(batch, cout, out, out, generator=gen) * torch.logspace(0, -3, cout)[None, :, None, None],
                     "e3m2g4", grouping, "stochastic", generator=gen)
    return act, weight, error


@pytest.mark.parametrize("layer", CONV_LAYERS)
@pytest.mark.parametrize("gc", [1, 4])
def test_beats_are_the_packed_conv_gemms(layer, gc):
    """The cycle model's Gemms (traced layer, k_chunk from Gc) against the real quantized GEMMs of
    the same layer packed by model.beats: every fold of every GEMM packs into exactly the beats the
    model counts, the GEMM's cycles are the timing function of those packed beats, and lane
    utilization is the packed streams' useful pairs over their lane slots."""
    cin, cout, kernel, stride, padding, size = layer
    batch, R, C = 2, 8, 3
    traced = trace_layers(nn.Conv2d(cin, cout, kernel, stride, padding), (cin, size, size))
    model_gemms = gemms_for_layer(traced[0], batch, input_grad=True, gc=gc)
    real = conv_gemms(*_layer_tensors(cin, cout, kernel, stride, padding, size, gc, batch), stride, padding)
    assert [(g.pass_, g.m, g.n, g.k) for g in model_gemms] == [(g.pass_, g.m, g.n, g.k) for g in real]
    for lanes in (1, 4, 9, 16):
        array = ArrayConfig(R, C, lanes=lanes)
        for g, r in zip(model_gemms, real):
            beats, useful, slots = [], 0, 0
            for r0 in range(0, r.m, R):
                for c0 in range(0, r.n, C):
                    stream = pack_beats(r.a.select(slice(r0, r0 + R)), r.w.select(slice(c0, c0 + C)), lanes)
                    outputs = min(R, r.m - r0) * min(C, r.n - c0)
                    beats.append(stream.beats)
                    useful += outputs * stream.useful_pairs
                    slots += outputs * lanes * stream.beats
            model = gemm_cycles(g, array)
            assert set(beats) == {model.tile_beats} == {array.timing.tile_beats(g.k, g.k_chunk)}, (g.pass_, g.phase, lanes)
            assert model.folds == len(beats)
            assert model.cycles == ArrayTiming(R, C, array.pe_latency, lanes).tiles_cycles_from_beats(beats)
            assert (model.macs, model.lane_slots) == (useful, slots)


def _independent_lane_counts(net, lanes, gc):
    """(useful pairs, lane slots) per pass from the traced layers alone: chunks listed channel block
    by channel block, phase by phase, sample by sample (nothing from sim.workloads' Gemms,
    model.beats.count_beats or conv_k_chunk)."""
    batch = NETWORKS[net][2]
    out = {p: [0, 0] for p in ("forward", "backward-data", "backward-weight")}

    def add(pass_, outputs, chunks):
        out[pass_][0] += outputs * sum(chunks)
        out[pass_][1] += outputs * lanes * sum(-(-c // lanes) for c in chunks)

    for layer in _network_layers(net):
        if layer.kind == "linear":
            rows = batch * layer.in_hw[0]
            blocks = lambda k: [min(DEFAULT_LINEAR_BLOCK, k - s) for s in range(0, k, DEFAULT_LINEAR_BLOCK)]  # noqa: E731
            add("forward", rows * layer.out_channels, blocks(layer.in_channels))
            if not layer.reads_input:
                add("backward-data", rows * layer.in_channels, blocks(layer.out_channels))
            add("backward-weight", layer.out_channels * layer.in_channels, blocks(rows))
            continue
        assert layer.groups == 1
        (h, w), (ho, wo), (kh, kw), (sh, sw), (ph, pw) = layer.in_hw, layer.out_hw, layer.kernel, layer.stride, layer.padding
        cin, cout = layer.in_channels, layer.out_channels
        add("forward", batch * ho * wo * cout, [len(range(c0, min(c0 + gc, cin))) * kh * kw for c0 in range(0, cin, gc)])
        if not layer.reads_input:
            for pr in range(sh):
                for pc in range(sw):
                    rows = sum(1 for i in range(h) if (i + ph) % sh == pr) * sum(1 for j in range(w) if (j + pw) % sw == pc)
                    taps = sum(1 for r in range(kh) if r % sh == pr) * sum(1 for s in range(kw) if s % sw == pc)
                    if rows and taps:
                        add("backward-data", batch * rows * cin, [taps] * cout)
        add("backward-weight", cout * cin * kh * kw, [ho * wo] * batch)
    return out


@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_lane_utilization_against_an_independent_count(net):
    for gc in (1, 4):
        gemms = network_gemms(net, gc=gc)
        for lanes in (4, 9, 16):
            totals = lane_totals(gemms, ArrayConfig(16, 16, lanes=lanes))
            expected = _independent_lane_counts(net, lanes, gc)
            for pass_, (useful, slots) in expected.items():
                assert (totals[("", pass_)].macs, totals[("", pass_)].lane_slots) == (useful, slots), (gc, lanes, pass_)
                assert totals[("", pass_)].lane_utilization == Fraction(useful, slots)
            step = totals[("", "step")]
            assert (step.macs, step.lane_slots) == tuple(map(sum, zip(*expected.values())))
            assert step.cycles == sum(c.cycles for c in network_cycles(gemms, ArrayConfig(16, 16, lanes=lanes)))
            assert step.gemms == len(gemms)
            per_layer = [t for (layer, _), t in totals.items() if layer]
            assert sum(t.macs for t in per_layer) == step.macs and sum(t.lane_slots for t in per_layer) == step.lane_slots


def test_lane_utilization_by_hand():
    """ResNet-20's first 3x3 16->16 stage layer at batch 128: forward K = 144 in chunks of 9 (Gc 1)
    or 36 (Gc 4); backward-data stride 1: one phase, chunks of 9; backward-weight K = 128 * 1024 in
    chunks of 1024 (ceil(1024 / 9) = 114 beats each at L = 9)."""
    gemms = {(g.pass_, g.k) for g in network_gemms("resnet20", gc=4) if g.layer == "layers.0.conv1"}
    assert gemms == {("forward", 144), ("backward-data", 144), ("backward-weight", 131072)}
    for gc, forward in ((1, Fraction(144, 16 * 16)), (4, Fraction(144, 16 * 12))):
        totals = lane_totals([g for g in network_gemms("resnet20", gc=gc) if g.layer == "layers.0.conv1"],
                             ArrayConfig(16, 16, lanes=16))
        assert totals[("layers.0.conv1", "forward")].lane_utilization == forward
        assert totals[("layers.0.conv1", "backward-data")].lane_utilization == Fraction(144, 16 * 16)
        assert totals[("layers.0.conv1", "backward-weight")].lane_utilization == 1
    nine = lane_totals([g for g in network_gemms("resnet20") if g.layer == "layers.0.conv1"], ArrayConfig(16, 16, lanes=9))
    assert nine[("layers.0.conv1", "forward")].lane_utilization == nine[("layers.0.conv1", "backward-data")].lane_utilization == 1
    assert nine[("layers.0.conv1", "backward-weight")].lane_utilization == Fraction(1024, 9 * 114)  # 1024 = 113 * 9 + 7


@pytest.mark.parametrize("lanes", [2, 4, 9, 16])
def test_pe_latency_is_the_dot_pes(lanes):
    """A lane array's drain uses MLSDotPE.latency (whatever the formats), not the scalar PE's."""
    from hw.pe.dot_pe import MLSDotPE

    pe = MLSDotPE("e3m2g4", "e2m1g3", lanes, 40)
    pe._MustUse__silence = True
    array = ArrayConfig(4, 4, lanes=lanes)
    assert array.pe_latency == dot_pe_latency(lanes) == pe.latency > PE_LATENCY
    assert array.timing == ArrayTiming(4, 4, pe.latency, lanes)
    assert ArrayConfig(4, 4, lanes=lanes, pe_latency=7).timing.drain_cycles == 4 + 4 + 7 - 1
    assert str(array) == f"4x4 L={lanes}"


def test_lane_errors():
    with pytest.raises(ValueError, match=r"^array lanes must be in \[1, 4096\], got 0$"):
        ArrayConfig(4, 4, lanes=0)
    with pytest.raises(TypeError, match=r"^array lanes must be an int, not 2.0$"):
        ArrayConfig(4, 4, lanes=2.0)
    with pytest.raises(ValueError, match=r"^lanes = 4: dot-product PEs are modelled for the output-stationary "
                                         r"dataflow only, not 'ws'$"):
        ArrayConfig(4, 4, dataflow="ws", lanes=4)
    with pytest.raises(ValueError, match=r"^pe_latency must be at least 1, got 0$"):
        ArrayConfig(4, 4, lanes=4, pe_latency=0)
    layer = trace_layers(nn.Conv2d(6, 4, 3, padding=1), (6, 5, 5))[0]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=rf"^channel block gc must be a positive int, got {bad!r}$"):
            gemms_for_layer(layer, 2, gc=bad)
    grouped = trace_layers(nn.Conv2d(12, 8, 3, padding=1, groups=2), (12, 5, 5))[0]
    with pytest.raises(ValueError, match=r"^layer 'model': gc = 4 does not divide its 6 input channels per group, "
                                         r"so channel blocks would straddle its groups$"):
        gemms_for_layer(grouped, 2, gc=4)
    assert [(g.pass_, g.k, g.k_chunk) for g in gemms_for_layer(grouped, 2, input_grad=True, gc=3)] == [
        ("forward", 54, 27), ("backward-data", 36, 9), ("backward-weight", 50, 25)] * 2


def test_cli(tmp_path, capsys):
    args = ["--networks", "resnet20", "--lanes", "1,9", "--gc", "4", "--array", "8x8"]
    assert sim_cycles.main(args + ["--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert sim_cycles.main(args + ["--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == printed.replace(str(tmp_path / "a"), str(tmp_path / "b"))
    for name in ("lanes.md", "lanes.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = printed.splitlines()
    assert lines[0].startswith("| network | Gc | L | PE latency |") and len(lines) == 2 + 2 + 1
    totals = lane_totals(network_gemms("resnet20", gc=4), ArrayConfig(8, 8, lanes=9))
    step = totals[("", "step")]
    row = lines[3].split(" | ")
    assert row[:4] == ["| resnet20", "4", "9", str(dot_pe_latency(9))]
    assert row[7] == f"{float(step.lane_utilization):.4f}" and row[8] == str(step.cycles)
    csv_lines = (tmp_path / "a" / "lanes.csv").read_text().splitlines()
    assert csv_lines[0] == "network,gc,lanes,pe_latency,layer,pass,gemms,macs,lane_slots,lane_utilization,cycles"
    assert len(csv_lines) == 1 + 2 * len(totals)
    assert f"resnet20,4,9,{dot_pe_latency(9)},(all),step,{step.gemms},{step.macs},{step.lane_slots}," in "\n".join(csv_lines)


@pytest.mark.parametrize("argv, message", [
    (["--lanes", "0"], "error: --lanes values must be at least 1, got 0"),
    (["--lanes", "4,x"], "error: --lanes takes comma-separated positive integers, got 'x'"),
    (["--gc", "4,4"], "error: --gc lists 4 twice"),
    (["--networks", "vgg"], "error: unknown network 'vgg'; choose from resnet20, resnet18"),
    (["--array", "8x8-ws"], "error: --array '8x8-ws': lanes are modelled for the output-stationary dataflow only"),
    (["--array", "8by8"], "error: array size '8by8' must look like RxC[-os|-ws], e.g. 16x16"),
])
def test_cli_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sim_cycles.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_committed_lanes_report_regenerates(tmp_path, capsys):
    """reports/lanes.md and .csv are what `python -m sim.cycles --out reports` writes, byte for byte."""
    assert sim_cycles.main(["--out", str(tmp_path)]) == 0
    reports = Path(__file__).resolve().parents[1] / "reports"
    for name in ("lanes.md", "lanes.csv"):
        assert (tmp_path / name).read_bytes() == (reports / name).read_bytes(), name
