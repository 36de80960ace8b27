"""hw.array.timing: the closed forms against a cycle-by-cycle walk of the tile protocol."""

import pytest

from hw.array import timing
from hw.array.timing import ArrayTiming


def _walk(ks, R, C, L):
    """Step the protocol of timing.py's docstring one cycle at a time (independent of the formulas)."""
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
