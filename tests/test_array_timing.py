"""hw.array.timing: the closed forms against a cycle-by-cycle walk of the tile protocol."""

import random
from fractions import Fraction

import pytest
import torch

from hw.array import timing
from hw.array.timing import ArrayTiming
from model.beats import GemmOperand, pack_beats
from model.formats import MLSFormat


def _walk(ks, R, C, L):
    """Step the protocol of timing.py's docstring one cycle at a time (independent of the formulas):
    tiles of ``ks`` input beats each (a beat is one element for one lane), PE latency ``L``."""
    beats = [(n, i == k - 1) for n, k in enumerate(ks) for i in range(k)]
    row_ready = {}   # (tile, row) -> first cycle the row may leave
    drained, busy_until, cycle, pos, out = 0, -1, 0, 0, []
    first_in = None
    while len(out) < len(ks) * R:
        # output: the next row leaves when complete
        n, r = divmod(len(out), R)
        leaving = (n, r) in row_ready and row_ready[(n, r)] <= cycle
        if leaving:
            out.append(cycle)
        # input: a last beat waits until the previous tile's final row leaves (that cycle allowed)
        if pos < len(beats):
            tile, last = beats[pos]
            if not last or tile == 0 or len(out) >= tile * R:
                first_in = cycle if first_in is None else first_in
                if last:
                    for rr in range(R):
                        row_ready[(tile, rr)] = cycle + rr + (C - 1) + L + 1
                pos += 1
        cycle += 1
    return out[-1] - first_in + 1


@pytest.mark.parametrize("R, C", [(1, 1), (2, 3), (8, 8), (4, 16)])
def test_formulas_match_walk(R, C):
    t = ArrayTiming(R, C)
    for ks in ([1], [5], [100], [1, 1, 1], [3, 40, 2, 17], [R + C, R + C + 1, R + C - 1 or 1], [7] * 6):
        assert t.tiles_cycles(ks) == _walk(ks, R, C, t.pe_latency), ks
        if len(ks) == 1:
            assert t.tile_cycles(ks[0]) == t.tiles_cycles(ks)
    for k in (1, 9, 64):
        compute, drain = t.phases(k)
        for n in (1, 2, 5):
            expected = compute + drain if n == 1 else n * max(compute, drain) + min(compute, drain)
            assert t.tiles_cycles([k] * n) == expected
    assert timing.tile_phases(9, R, C) == t.phases(9)
    assert timing.tile_cycles(9, R, C) == t.tile_cycles(9)


def test_errors():
    with pytest.raises(ValueError, match=r"^rows must be at least 1, got 0$"):
        ArrayTiming(0, 4)
    with pytest.raises(TypeError, match=r"^cols must be an int, not 2.0$"):
        ArrayTiming(2, 2.0)
    with pytest.raises(ValueError, match=r"^reduction length k must be at least 1, got 0$"):
        ArrayTiming(2, 2).tile_cycles(0)
    with pytest.raises(ValueError, match="at least one tile"):
        ArrayTiming(2, 2).tiles_cycles([])


# -- lanes: beats of L-lane dot-product PEs ----------------------------------------------------------
def _beats_by_enumeration(k, k_chunk, lanes):
    """Walk the k elements in order; a new beat opens when the lanes are full or the chunk changes
    (groups change every k_chunk elements from k = 0). Independent of model.beats.count_beats."""
    beats, fill, chunk = 0, 0, None
    for i in range(k):
        if fill == lanes or i // k_chunk != chunk:
            beats, fill, chunk = beats + 1, 0, i // k_chunk
        fill += 1
    return beats


@pytest.mark.parametrize("R, C", [(1, 1), (2, 3), (8, 8), (4, 16)])
def test_one_lane_is_the_scalar_array(R, C):
    """lanes = 1: every count is the scalar array's (the walk over k beats), whatever k_chunk says."""
    scalar, one = ArrayTiming(R, C), ArrayTiming(R, C, lanes=1)
    assert one == scalar and one.macs_per_cycle == R * C
    for ks in ([1], [5], [100], [1, 1, 1], [3, 40, 2, 17], [R + C, R + C + 1, R + C - 1 or 1], [7] * 6):
        expected = _walk(ks, R, C, scalar.pe_latency)
        for k_chunk in (None, 1, 3, 9, 1000):
            assert one.tiles_cycles(ks, k_chunk) == expected, (ks, k_chunk)
            assert timing.tiles_cycles(ks, R, C, lanes=1, k_chunk=k_chunk) == expected
        assert one.tiles_cycles_from_beats(ks) == expected
        for k in ks:
            for k_chunk in (None, 1, 2, k):
                assert one.tile_beats(k, k_chunk) == k
                assert one.tile_cycles(k, k_chunk) == scalar.tile_cycles(k) == k + scalar.drain_cycles
                assert one.phases(k, k_chunk) == scalar.phases(k) == (k, scalar.drain_cycles)
                assert one.last_beat_interval(k, k_chunk) == max(k, scalar.drain_cycles)
                assert one.lane_utilization(k, k_chunk) == 1


def test_lane_beats_by_enumeration():
    """tile_beats and lane_utilization against an element-by-element count, every L 1..17."""
    for lanes in range(1, 18):
        t = ArrayTiming(2, 2, lanes=lanes)
        assert t.macs_per_cycle == 4 * lanes
        for k in range(1, 41):
            for k_chunk in range(1, k + 3):
                beats = _beats_by_enumeration(k, k_chunk, lanes)
                assert t.tile_beats(k, k_chunk) == beats, (lanes, k, k_chunk)
                assert t.lane_utilization(k, k_chunk) == Fraction(k, lanes * beats)
                assert t.tile_cycles(k, k_chunk) == beats + t.drain_cycles


@pytest.mark.parametrize("lanes", [4, 9, 16])
def test_lane_beats_are_the_packers(lanes):
    """The timing function's beats are the beat packer's for operands whose groups change every k_chunk."""
    for k, k_chunk in [(1, 1), (9, 9), (10, 9), (27, 18), (37, 5), (64, 64), (64, 100), (50, 1)]:
        group = torch.arange(k) // k_chunk
        a = GemmOperand(MLSFormat.parse("e2m1g3"), torch.ones(3, k, dtype=torch.int64), (group % 4).expand(3, k),
                        group.expand(3, k))
        w = GemmOperand(MLSFormat.parse("e2m1g3"), torch.ones(2, k, dtype=torch.int64), (group % 3).expand(2, k),
                        group.expand(2, k))
        stream = pack_beats(a, w, lanes)
        t = ArrayTiming(3, 2, lanes=lanes)
        assert t.tile_beats(k, k_chunk) == stream.beats
        assert t.lane_utilization(k, k_chunk) == Fraction(stream.useful_pairs, lanes * stream.beats)
        assert t.tile_cycles_from_beats(stream.beats) == t.tile_cycles(k, k_chunk)


@pytest.mark.parametrize("seed", range(12))
def test_lane_tiles_match_walk(seed):
    """Random back-to-back tiles of random chunking on L-lane arrays with deeper PE pipelines:
    the closed forms against the protocol walk over the enumerated beats."""
    rng = random.Random(seed)
    R, C = rng.randrange(1, 9), rng.randrange(1, 9)
    lanes, pe_latency = rng.choice([1, 4, 9, 16]), rng.randrange(2, 6)
    t = ArrayTiming(R, C, pe_latency, lanes)
    ks = [rng.randrange(1, 120) for _ in range(rng.randrange(1, 6))]
    chunks = [rng.randrange(1, k + 2) for k in ks]
    beats = [_beats_by_enumeration(k, c, lanes) for k, c in zip(ks, chunks)]
    expected = _walk(beats, R, C, pe_latency)
    assert t.tiles_cycles(ks, chunks) == t.tiles_cycles_from_beats(beats) == expected
    assert timing.tiles_cycles(ks, R, C, pe_latency, lanes=lanes, k_chunk=chunks) == expected
    # one chunk length for every tile; N equal tiles in closed form
    assert t.tiles_cycles(ks, chunks[0]) == _walk([_beats_by_enumeration(k, chunks[0], lanes) for k in ks], R, C, pe_latency)
    compute, drain = t.phases(ks[0], chunks[0])
    assert timing.tile_phases(ks[0], R, C, pe_latency, lanes=lanes, k_chunk=chunks[0]) == (compute, drain)
    assert timing.tile_cycles(ks[0], R, C, pe_latency, lanes=lanes, k_chunk=chunks[0]) == compute + drain
    for n in (1, 2, 5):
        expected = compute + drain if n == 1 else n * max(compute, drain) + min(compute, drain)
        assert t.tiles_cycles([ks[0]] * n, chunks[0]) == expected == _walk([compute] * n, R, C, pe_latency)


def test_lane_errors():
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, got 0$"):
        ArrayTiming(2, 2, lanes=0)
    with pytest.raises(TypeError, match=r"^lanes must be an int, not 4.0$"):
        ArrayTiming(2, 2, 2, 4.0)
    with pytest.raises(ValueError, match=r"^pe_latency must be at least 1, got 0$"):
        ArrayTiming(2, 2, 0, 4)
    for lanes in (1, 9):
        with pytest.raises(ValueError, match=r"^k_chunk must be at least 1, got 0$"):
            ArrayTiming(2, 2, lanes=lanes).tile_beats(9, 0)
        with pytest.raises(ValueError, match=r"^k_chunk must be at least 1, got -3$"):
            ArrayTiming(2, 2, lanes=lanes).tiles_cycles([9, 4], -3)
        with pytest.raises(ValueError, match=r"^reduction length k must be at least 1, got 0$"):
            ArrayTiming(2, 2, lanes=lanes).tile_cycles(0, 4)
        with pytest.raises(TypeError, match=r"^k_chunk must be an int, not True$"):
            ArrayTiming(2, 2, lanes=lanes).tile_beats(9, True)
    with pytest.raises(ValueError, match=r"^a 9-lane array needs k_chunk \(the chunk length along k\) to count "
                                         r"beats; pass k_chunk=k for a tile that is one chunk$"):
        ArrayTiming(2, 2, lanes=9).tile_cycles(9)
    with pytest.raises(ValueError, match=r"^k_chunk has 1 entries for 2 tiles$"):
        ArrayTiming(2, 2, lanes=4).tiles_cycles([9, 4], [9])
    with pytest.raises(ValueError, match=r"^beats must be at least 1, got 0$"):
        ArrayTiming(2, 2, lanes=4).tiles_cycles_from_beats([3, 0])
    with pytest.raises(ValueError, match=r"^beats must be at least 1, got 0$"):
        ArrayTiming(2, 2).tile_cycles_from_beats(0)
    with pytest.raises(ValueError, match=r"^tiles_cycles needs at least one tile$"):
        ArrayTiming(2, 2, lanes=4).tiles_cycles([], 3)
