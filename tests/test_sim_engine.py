"""The engine's cycle model (sim/engine.py): formulas derived by hand, blocking, the report.

The RTL side (every command's measured cycles equal these functions) is tb/test_engine.py.
"""

from __future__ import annotations

import pathlib
from fractions import Fraction

import pytest

from hw.array.timing import ArrayTiming
from hw.engine import EngineConfig
from sim.engine import EngineCycles, main, plan, render_report

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
    # a bank holds 160 // 36 = 4 lines: blocks of 16 rows of A and 16 columns of W
    assert (p.m_block, p.n_block) == (16, 16)
    blocks = [16] * 6 + [4]
    expected_quant = model.amax(100, 36) + model.amax(10, 36) + model.load(10, 36) + sum(model.load(b, 36) for b in blocks)
    assert p.quant_cycles == expected_quant
    assert p.gemm_cycles == sum(model.gemm(b, 10, 36) for b in blocks)
    with pytest.raises(ValueError, match=r"^k 10 must be a multiple of group_len 9$"):
        plan(model, 4, 4, 10)
    with pytest.raises(ValueError, match=r"^k 180 must be in \[1, 153\]"):
        plan(model, 4, 4, 180)


def test_report_regenerates(tmp_path):
    md, csv = render_report()
    assert (ROOT / "reports" / "engine.md").read_text() == md
    assert (ROOT / "reports" / "engine.csv").read_text() == csv
    assert main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "engine.md").read_text() == md
    bad = tmp_path / "file"
    bad.write_text("x")
    assert main(["--out", str(bad)]) == 2
