# amaranth: UnusedElaboratable=no
"""Testbenches of the engine's partial-sum buffer (``hw.engine.psum.PartialSumBuffer``), cocotb
side in psum_cocotb.py: bit for bit and cycle for cycle against a reference built on
``model.arith`` (``saturate``; GEMM passes checked against ``split_k_matmul``).

Stimulus (built here, expected results from the reference): K segments first / middle / last
and the one-segment GEMM (``add``/``store`` all four combinations), several GEMM-like passes
back to back with ``start`` between (their parts from ``model.arith.accumulate`` over K slices of
real MLS operands, the reference's final rows asserted equal to ``split_k_matmul``); saturation
at both ends (the sum exactly at ``hi``/``lo``, one and two past, both sides, the extremes) and
chained saturation through a middle segment; ``overflow`` on exactly the saturating rows; rows
past ``depth`` (``refused`` on exactly those rows when ``add | store``, the memory untouched,
read back afterwards, the sum the row alone; commands long enough to wrap the address
register if it did not stop one past ``depth``); every (stored, row) pair of a 6-bit accumulator,
different pairs in every lane. Random input bubbles and back-pressure on ``o``; with neither,
the exact latency (each row leaves ``LATENCY`` cycles after it was taken) and full rate.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from hw.engine.psum import PartialSumBuffer
from model.arith import accumulate, matmul_products, saturate, split_k_matmul
from model.grouping import Grouping
from model.quantize import quantize
from tb.harness import run_cocotb

__all__ = ["CONFIGS", "Reference", "build_cases"]


class Reference:
    """The buffer's contract per command (docstring of ``PartialSumBuffer``), row by row.

    ``mem`` starts unknown (``None``): a buffer's memory is not reset, so every case stores a
    row before it adds it (an add of an unknown row is a bug of the stimulus, and raises)."""

    def __init__(self, acc_bits: int, lanes: int, depth: int):
        self.acc_bits, self.lanes, self.depth = acc_bits, lanes, depth
        self.lo, self.hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
        self.mem: list[list[int] | None] = [None] * depth

    def command(self, add: bool, store: bool, rows: list[list[int]]) -> dict:
        out, overflow, refused = [], [], []
        for r, row in enumerate(rows):
            assert len(row) == self.lanes and all(self.lo <= v <= self.hi for v in row), row
            in_range = r < self.depth
            if add and in_range:
                assert self.mem[r] is not None, f"stimulus adds row {r} before storing it"
                wide = torch.tensor(row, dtype=torch.int64) + torch.tensor(self.mem[r], dtype=torch.int64)
                total = saturate(wide, self.acc_bits)
                if not torch.equal(total, wide):
                    overflow.append(r)
                total = total.tolist()
            else:
                total = list(row)
            if (add or store) and not in_range:
                refused.append(r)
            if store:
                if in_range:
                    self.mem[r] = total
            else:
                out.append(total)
        return {"add": int(add), "store": int(store), "rows": [list(r) for r in rows], "out": out,
                "overflow": overflow, "refused": refused}


def _rand_row(rng, lanes, acc_bits):
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    row = []
    for _ in range(lanes):
        kind = rng.random()
        if kind < 0.15:
            row.append(rng.choice([lo, hi, lo + 1, hi - 1, 0, -1, 1]))
        elif kind < 0.5:
            row.append(rng.randrange(lo, hi + 1))
        else:   # smaller magnitudes: sums that stay in range too
            row.append(rng.randrange(lo >> (acc_bits // 2), (hi >> (acc_bits // 2)) + 1))
    return row


def _segments(ref: Reference, rng: random.Random, passes: int) -> list[dict]:
    """K segments of GEMM-like passes: first (store), middles (add + store), last (add), and
    one-segment GEMMs (neither); row counts 1..depth."""
    cmds = []
    for p in range(passes):
        n = rng.randrange(1, ref.depth + 1) if p % 3 else ref.depth
        segs = [1, 2, 3, 4, 2][p % 5]
        for s in range(segs):
            rows = [_rand_row(rng, ref.lanes, ref.acc_bits) for _ in range(n)]
            cmds.append(ref.command(s > 0, s < segs - 1, rows))
    return cmds


def _gemm_passes(ref: Reference, seed: int, passes: int) -> list[dict]:
    """GEMMs with K split into segments, as the engine runs them: segment s's rows are the
    integer result of that K slice from zero (``accumulate`` over ``matmul_products``, as the
    array computes it); the last command's rows must equal ``split_k_matmul``'s C."""
    fmt = "e1m1g1" if ref.acc_bits <= 8 else "e2m1g1"
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cmds = []
    for p in range(passes):
        m = rng.randrange(1, ref.depth + 1)
        k = rng.randrange(2, 17)
        seg = rng.randrange(1, k + 1) if p % 4 else max(1, k // 3)
        a = quantize(torch.randn(m, k, generator=gen), fmt, Grouping.blocks(3, axis=-1))
        w = quantize(torch.randn(k, ref.lanes, generator=gen), fmt, Grouping.blocks(3, axis=0))
        products = matmul_products(a, w)
        starts = list(range(0, k, seg))
        for s, k0 in enumerate(starts):
            part, _ = accumulate(products[..., k0:k0 + seg], ref.acc_bits)
            cmds.append(ref.command(s > 0, s < len(starts) - 1, part.tolist()))
        c_int, _ = split_k_matmul(a, w, seg, ref.acc_bits)
        assert cmds[-1]["out"] == c_int.tolist(), "the reference does not add up as split_k_matmul"
    return cmds


def _boundary_pairs(acc_bits: int, rng: random.Random) -> list[tuple[int, int]]:
    """(stored, row) pairs whose sum lands exactly at hi / lo, one and two inside, one and two
    past, plus the extremes; both orders of every pair."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    pairs = [(hi, hi), (lo, lo), (hi, lo), (0, hi), (0, lo), (hi, 0), (lo, 0), (hi, 1), (lo, -1), (-1, -1)]
    for stored in sorted({hi, hi - 1, lo, lo + 1, 0, 1, -1, hi // 2, lo // 2,
                          rng.randrange(lo, hi + 1), rng.randrange(lo, hi + 1)}):
        for target in (hi - 2, hi - 1, hi, hi + 1, hi + 2, lo - 2, lo - 1, lo, lo + 1, lo + 2):
            row = target - stored
            if lo <= row <= hi:
                pairs += [(stored, row), (row, stored)]
    return list(dict.fromkeys(pairs))


def _pair_passes(ref: Reference, pairs: list[tuple[int, int]], rng: random.Random, shuffle_lanes: bool) -> list[dict]:
    """Every pair as (stored, row) of one lane in two-segment passes (store, then add);
    every lane gets the pairs in another order, so rows saturate in one lane alone too."""
    per_lane = []
    for j in range(ref.lanes):
        order = list(pairs)
        if j and shuffle_lanes:
            rng.shuffle(order)
        elif j:
            order = order[j * 7 % len(order):] + order[:j * 7 % len(order)]
        per_lane.append(order)
    cmds = []
    for base in range(0, len(pairs), ref.depth):
        n = min(ref.depth, len(pairs) - base)
        first = [[per_lane[j][base + r][0] for j in range(ref.lanes)] for r in range(n)]
        second = [[per_lane[j][base + r][1] for j in range(ref.lanes)] for r in range(n)]
        cmds.append(ref.command(False, True, first))
        cmds.append(ref.command(True, False, second))
    return cmds


def _chained(ref: Reference, rng: random.Random) -> list[dict]:
    """Three segments through saturation: the middle segment stores a saturated sum, the last
    adds to it (sat(sat(a + b) + c) is not sat(a + b + c)); then a read back of the store."""
    lo, hi = ref.lo, ref.hi
    triples = [(hi, hi, lo), (lo, lo, hi), (hi, 1, -1), (lo, -1, 1), (hi - 1, 1, 1), (lo + 1, -1, -1), (hi, lo, hi)]
    cmds = []
    for base in range(0, len(triples), ref.depth):
        chunk = triples[base:base + ref.depth]
        rows = [[[t[i] if (j + r) % 2 == 0 else -t[i] - 1 for j in range(ref.lanes)] for r, t in enumerate(chunk)]
                for i in range(3)]
        cmds.append(ref.command(False, True, rows[0]))
        cmds.append(ref.command(True, True, rows[1]))
        cmds.append(ref.command(True, False, rows[2]))
    return cmds


def _past_depth(ref: Reference, rng: random.Random) -> list[dict]:
    """Rows past the buffer (up to depth + 3: the address counter stops at depth + 1) in every
    combination; the rows stored before stay untouched (read back with zero rows), and the
    sum of a refused row is the row itself."""
    d = ref.depth
    n = d + 3
    cmds = []
    stored = [[(r * 5 + j * 3 + 1) % (ref.hi + 1) - (r % 2) * (ref.hi // 2) for j in range(ref.lanes)] for r in range(d)]
    zeros = [[0] * ref.lanes for _ in range(d)]

    def extra(k, n=n):
        return [[ref.hi - ((r + j + k) % 3) if (r + k) % 2 else ref.lo + ((r + j) % 3) for j in range(ref.lanes)]
                for r in range(n)]
    # past the wrap of the address register (range(depth + 2)): a counter that did not stop at
    # depth + 1 would come back to address 0 and read or overwrite the stored rows
    n_long = d + (1 << (d + 1).bit_length()) + 2
    cmds.append(ref.command(False, True, stored + extra(0)[d:]))     # first: store d rows, refuse 3
    cmds.append(ref.command(True, False, zeros))                     # read back: untouched
    cmds.append(ref.command(True, False, extra(1)))                  # last: add, refuse 3 (sum = row)
    cmds.append(ref.command(False, False, extra(2)))                 # one segment: never refused
    cmds.append(ref.command(True, True, extra(3)))                   # middle: add + store, refuse 3
    cmds.append(ref.command(True, False, zeros + [[0] * ref.lanes]))  # read back the middle's sums, one past
    cmds.append(ref.command(False, True, stored))                    # first again (exactly depth rows)
    cmds.append(ref.command(True, False, zeros[:1]))                 # a command shorter than the stored one
    cmds.append(ref.command(True, False, zeros))
    cmds.append(ref.command(False, True, stored + extra(4, n_long)[d:]))  # first, long: refused to the end
    cmds.append(ref.command(True, False, extra(5, n_long)))            # last, long: sum = row past depth
    cmds.append(ref.command(True, True, extra(6, n_long)))             # middle, long
    cmds.append(ref.command(True, False, zeros))                       # read back the middle's d sums
    return cmds


CONFIGS = {
    # name: acc_bits, lanes, depth
    "a6_l1_d5": (6, 1, 5),
    "a6_l2_d4": (6, 2, 4),     # a power-of-two depth: rows past it alias memory addresses (the mutation unit)
    "a12_l3_d5": (12, 3, 5),
}

#: the cocotb checks (psum_cocotb.py) and the stimulus each runs
CHECKS = ("psum_full_rate", "psum_stalls", "psum_pairs")


def build_cases(acc_bits: int, lanes: int, depth: int, seed: int) -> dict[str, list[dict]]:
    """The commands of every check, with the reference's expected rows and pulses. Each check
    runs its list from one reset, in order (the reference's memory carries over within it)."""
    rng = random.Random(seed)
    cases = {}
    for check in CHECKS:
        ref = Reference(acc_bits, lanes, depth)
        if check == "psum_pairs":
            if acc_bits <= 6:   # every (stored, row) pair
                lo, hi = ref.lo, ref.hi
                pairs = [(s, r) for s in range(lo, hi + 1) for r in range(lo, hi + 1)]
            else:
                pairs = _boundary_pairs(acc_bits, rng)
                pairs += [(rng.randrange(ref.lo, ref.hi + 1), rng.randrange(ref.lo, ref.hi + 1)) for _ in range(300)]
            rng.shuffle(pairs)
            cmds = _pair_passes(ref, pairs, rng, shuffle_lanes=True)
        else:
            cmds = (_segments(ref, rng, 6) + _past_depth(ref, rng) + _chained(ref, rng)
                    + _pair_passes(ref, _boundary_pairs(acc_bits, rng), rng, shuffle_lanes=False)
                    + _gemm_passes(ref, seed + len(cases), 6) + _segments(ref, rng, 10))
        cases[check] = cmds
    return cases


def write_cases(path, acc_bits: int, lanes: int, depth: int, seed: int) -> None:
    path.write_text(json.dumps(build_cases(acc_bits, lanes, depth, seed)))


def tb_parameters(dut: PartialSumBuffer, lanes: int, cases_path) -> dict:
    return {"acc_bits": dut.acc_bits, "lanes": lanes, "depth": dut.depth, "latency": dut.LATENCY,
            "cases": str(cases_path), "seed": 11}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_psum(name, tmp_path):
    acc_bits, lanes, depth = CONFIGS[name]
    path = tmp_path / "cases.json"
    write_cases(path, acc_bits, lanes, depth, seed=23)
    dut = PartialSumBuffer(acc_bits, lanes, depth)
    run_cocotb(dut, "mls_psum", "psum_cocotb", params=tb_parameters(dut, lanes, path))


def test_psum_covers_corners():
    """The stimulus really holds what the docstring promises (else a test could pass vacuously)."""
    for name, (acc_bits, lanes, depth) in CONFIGS.items():
        cases = build_cases(acc_bits, lanes, depth, seed=23)
        lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
        for check, cmds in cases.items():
            modes = {(c["add"], c["store"]) for c in cmds}
            assert modes == ({(0, 1), (1, 0)} if check == "psum_pairs" else {(0, 0), (0, 1), (1, 1), (1, 0)}), (name, check)
            assert any(c["overflow"] for c in cmds) and any(c["add"] and not c["overflow"] for c in cmds)
            outs = [v for c in cmds for row in c["out"] for v in row]
            assert hi in outs and lo in outs, (name, check)
            if check == "psum_pairs":
                continue
            refused = [c for c in cmds if c["refused"]]
            assert {(c["add"], c["store"]) for c in refused} == {(0, 1), (1, 0), (1, 1)}, (name, check)
            assert all(c["refused"] == list(range(depth, len(c["rows"]))) for c in refused)
            assert any(len(c["rows"]) > depth and not c["refused"] for c in cmds)      # add = store = 0
            wrap = 1 << (depth + 1).bit_length()     # the address register's own range
            assert {(c["add"], c["store"]) for c in refused if len(c["rows"]) > wrap + depth} == {(0, 1), (1, 0), (1, 1)}
            assert sum(c["add"] and not c["store"] and len(c["rows"]) < depth for c in cmds) > 0  # shorter commands
        # the exact boundaries, both sides, with the sum one past and exactly at each limit
        pairs = _boundary_pairs(acc_bits, random.Random(0))
        sums = {s + r for s, r in pairs}
        assert {hi, hi + 1, lo, lo - 1, 2 * hi, 2 * lo} <= sums
        # a row can saturate in one lane while another stays in range
        if lanes > 1:
            pairs_cmds = cases["psum_pairs"]
            one_lane = 0
            for first, second in zip(pairs_cmds[::2], pairs_cmds[1::2]):
                for r in second["overflow"]:
                    sums = [s + v for s, v in zip(first["rows"][r], second["rows"][r])]
                    one_lane += any(lo <= x <= hi for x in sums)
            assert one_lane > 0, name
        ref = Reference(acc_bits, lanes, depth)
        ref.mem = [[hi] * lanes] * depth
        got = ref.command(True, False, [[1] * lanes, [0] * lanes])
        assert got["out"] == [[hi] * lanes, [hi] * lanes] and got["overflow"] == [0]


def test_psum_reference_matches_split_k():
    """The reference adds K segments exactly as ``model.arith.split_k_matmul`` (asserted inside
    ``_gemm_passes`` for every pass), saturating ones included."""
    ref = Reference(6, 2, 5)
    cmds = _gemm_passes(ref, 3, 12)
    assert any(c["overflow"] for c in cmds) and len({(c["add"], c["store"]) for c in cmds}) == 4


def test_psum_parameters():
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 63\], got 1$"):
        PartialSumBuffer(1, 2, 4)
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 63\], got 64$"):
        PartialSumBuffer(64, 2, 4)
    with pytest.raises(TypeError, match=r"^acc_bits must be an int, not 8.0$"):
        PartialSumBuffer(8.0, 2, 4)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 64\], got 0$"):
        PartialSumBuffer(8, 0, 4)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 64\], got 65$"):
        PartialSumBuffer(8, 65, 4)
    with pytest.raises(TypeError, match=r"^lanes must be an int, not True$"):
        PartialSumBuffer(8, True, 4)
    with pytest.raises(ValueError, match=r"^depth must be in \[1, 1048576\], got 0$"):
        PartialSumBuffer(8, 2, 0)
    with pytest.raises(ValueError, match=r"^depth must be in \[1, 1048576\], got 1048577$"):
        PartialSumBuffer(8, 2, (1 << 20) + 1)
    with pytest.raises(TypeError, match=r"^depth must be an int, not '4'$"):
        PartialSumBuffer(8, 2, "4")
    dut = PartialSumBuffer(12, 3, 5)
    assert (dut.acc_bits, dut.depth, dut.bits, dut.LATENCY) == (12, 5, 180, 1)
    PartialSumBuffer(2, 1, 1), PartialSumBuffer(63, 64, 1 << 20)   # the limits themselves are accepted
