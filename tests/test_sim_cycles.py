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

import numpy as np
import pytest

from hw.array.timing import PE_LATENCY
from sim.cycles import ArrayConfig, gemm_cycles, network_cycles
from sim.workloads import Gemm, network_gemms


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
