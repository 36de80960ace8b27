"""The engine's cycle model (sim/engine.py): formulas derived by hand, blocking, the report.

The RTL side (every command's measured cycles equal these functions) is tb/test_engine.py.
"""

from __future__ import annotations

import pathlib
from fractions import Fraction

import pytest

from hw.array.timing import ArrayTiming
from hw.engine import EngineConfig
from sim.engine import EngineCycles, _plan_of, main, plan, render_report

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _scalar():
    return EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1, a_depth=160, w_depth=160)


def test_gemm_cycles_by_hand():
    """M=16, N=6, K=36 on 4 x 4 scalar PEs (latency 2): 8 tiles of 36 beats, drain 4 + 4 + 2 - 1
    = 9, so the array takes 35 + 7 * 36 + 9 + 1 = 297 cycles; + 1 (issue) + 2 (converter)."""
    model = EngineCycles.of(_scalar())
    assert model.pe_latency == 2
    assert model.gemm(16, 6, 36) == 1 + (35 + 7 * 36 + 9 + 1) + 2
    # tiles shorter than the drain wait for it: 1 chunk of 9 beats < drain 9? equal: no wait
    assert model.gemm(8, 4, 9) == 1 + ArrayTiming(4, 4, 2).tiles_cycles_from_beats([9, 9]) + 2
    assert model.amax(16, 36) == 16 * 36 + 1
    assert model.load(16, 36) == 16 * 36 + 9 + 2


def test_dot_lanes_count_beats():
    """9 elements per chunk at L = 4: 3 beats per chunk (the last one padded)."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=4, group_len=9, quant_lanes=1, a_depth=64, w_depth=64)
    model = EngineCycles.of(cfg)
    tiles = 3 * 3   # M = 9 over 3 rows, N = 5 over 2 columns
    assert cfg.beats_per_line(27) == 9
    assert model.gemm(9, 5, 27) == 1 + model.timing.tiles_cycles_from_beats([9] * tiles) + 2
    whole = model.whole(9, 5, 27)
    assert whole.total == whole.quantization + whole.gemm
    assert whole.array_utilization == Fraction(9 * 5 * 27, whole.gemm * 3 * 2 * 4)


def test_plan_blocks_and_limits():
    model = EngineCycles.of(_scalar())
    p = plan(model, 100, 10, 36)
    # a bank holds 160 // 36 = 4 lines: blocks of 16 rows of A; W (10 columns) is one block
    assert (p.m_block, p.n_block, p.segments, p.split) == (16, 10, 1, False)
    blocks = [16] * 6 + [4]
    expected_quant = (sum(model.amax(b, 36) for b in blocks) + model.amax(10, 36) + model.load(10, 36)
                      + sum(model.load(b, 36) for b in blocks))
    assert p.quant_cycles == expected_quant
    assert p.gemm_cycles == sum(model.gemm(b, 10, 36) for b in blocks)
    # K is padded to a multiple of the group: K = 10 costs what K = 18 costs
    assert plan(model, 4, 4, 10).cycles == plan(model, 4, 4, 18).cycles
    with pytest.raises(ValueError, match=r"^k 180 \(padded 180\) is longer than one buffer line \(max_k 153\) and "
                                         r"the engine has no partial-sum buffer \(psum_depth 0\)$"):
        plan(model, 4, 4, 180)


def _split():
    return EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1, a_depth=160,
                        w_depth=160, psum_depth=32, split_k_max=1000)


def test_plan_split_k_by_hand():
    """K = 400 (padded 405) past a line of 153: blocks of at most 32 partial-sum rows (8 x 8 of C:
    2 x 2 tiles of 4 rows), segments of segment_k(8, 8) = 80 // 9 chunks = 72 elements (each bank
    holds two lines), 6 segments (5 x 72 + 45). Every segment loads both operands' slice; all but
    the last store partial sums."""
    cfg = _split()
    model = EngineCycles.of(cfg)
    assert cfg.segment_k(8, 8) == 72 and cfg.segments(400, 8, 8) == [72] * 5 + [45]
    p = plan(model, 8, 8, 400)
    assert (p.m_block, p.n_block, p.segments, p.split) == (8, 8, 6, True)
    segs = [72] * 5 + [45]
    quant = sum(2 * model.amax(8, s) + 2 * model.load(8, s) for s in segs)
    gemm = sum(model.gemm(8, 8, s, store=True) for s in segs[:-1]) + model.gemm(8, 8, 45)
    assert (p.quant_cycles, p.gemm_cycles) == (quant, gemm)
    # storing skips the converter (2 cycles) but every command pays the partial-sum stage (1)
    assert model.gemm(8, 8, 72, store=True) == model.gemm(8, 8, 72) - 2
    assert model.gemm(8, 8, 72) == 1 + model.timing.tiles_cycles_from_beats([8 * 9 * 9 // 9] * 4) + 1 + 2
    # a K that fits one line is also tried split, and the cheaper plan is taken
    short = plan(model, 100, 100, 36)
    whole, split = _plan_of(model, 100, 100, 36, None), _plan_of(model, 100, 100, 36, True)
    assert whole.cycles != split.cycles and short == min(whole, split, key=lambda q: q.cycles)
    with pytest.raises(ValueError, match=r"^a split GEMM of 17 x 8 needs 40 partial-sum rows, more than the 32 of the buffer$"):
        cfg.check_gemm(17, 8, 405)
    with pytest.raises(ValueError, match=r"^k 1008 is longer than split_k_max 1000, the K the default accumulator "
                                         r"is exact for; give acc_bits or a larger split_k_max$"):
        cfg.check_gemm(8, 8, 1008)
    with pytest.raises(ValueError, match=r"^split_k_max 10 needs a partial-sum buffer \(psum_depth > 0\)$"):
        EngineConfig("e2m1g3", "e2m1g3", split_k_max=10)
    assert cfg.accumulator_bits == cfg.fmt_a.acc_bits_exact(1000, cfg.fmt_w)


def test_report_regenerates(tmp_path):
    md, csv = render_report()
    assert (ROOT / "reports" / "engine.md").read_text() == md
    assert (ROOT / "reports" / "engine.csv").read_text() == csv
    assert main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "engine.md").read_text() == md
    bad = tmp_path / "file"
    bad.write_text("x")
    assert main(["--out", str(bad)]) == 2


def test_plan_double_buffered_by_hand():
    """Double buffering: every amax pass first, then the loads of block i + 1 under the GEMM of
    block i (blocks of 16 rows of A; W loaded once, with the first block): the total is the
    amax passes + the first block's loads + max(GEMM i, loads i + 1) over the blocks + the last
    GEMM; the commands' own cycles are those of the single-buffered engine."""
    single = _scalar()
    double = EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1, a_depth=160,
                          w_depth=160, double_buffer=True)
    one, two = EngineCycles.of(single), EngineCycles.of(double)
    blocks = [16] * 6 + [4]
    amax = sum(one.amax(b, 36) for b in blocks) + one.amax(10, 36)
    loads = [one.load(blocks[0], 36) + one.load(10, 36)] + [one.load(b, 36) for b in blocks[1:]]
    gemms = [one.gemm(b, 10, 36) for b in blocks]
    expected = amax + loads[0] + sum(max(gemms[i], loads[i + 1]) for i in range(6)) + gemms[-1]
    p1, p2 = plan(one, 100, 10, 36), plan(two, 100, 10, 36)
    assert (p2.quant_cycles, p2.gemm_cycles) == (p1.quant_cycles, p1.gemm_cycles)
    assert p2.cycles == expected < p1.cycles == p1.quant_cycles + p1.gemm_cycles
    assert double.slots == 2 and single.slots == 1 and str(double).endswith("_db")
    with pytest.raises(TypeError, match=r"^double_buffer must be a bool, not 1$"):
        EngineConfig("e2m1g3", "e2m1g3", double_buffer=1)
