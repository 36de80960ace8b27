"""The host side of the engine (hw/engine/host.py): K padding, the split-K command sequence and
its golden model, without a simulator (the RTL side is tb/test_engine.py)."""

from __future__ import annotations

import pytest
import torch

from hw.engine import EngineConfig
from hw.engine.host import gemm_commands, gemm_reference, operand_words, pad_k, segment_bounds, segment_seed
from model.arith import mls_matmul
from model.fp32 import fp32_bits
from model.grouping import Grouping
from model.quantize import quantize


def _cfg(**kw):
    base = dict(rows=3, cols=2, lanes=1, group_len=4, quant_lanes=1, a_depth=24, w_depth=24, psum_depth=12,
                split_k_max=256)
    base.update(kw)
    return EngineConfig("e2m1g3", "e2m1g3", **base)


def test_split_command_sequence():
    """5 x 4 over K = 75: padded to 76; each bank holds 2 lines, so segments of 12 (3 chunks):
    6 x 12 + 4. Amax passes first (one per segment and operand), then per segment both loads and
    a GEMM that adds (all but the first) and stores (all but the last)."""
    cfg = _cfg()
    assert cfg.padded_k(75) == 76 and cfg.segment_k(5, 4) == 12
    assert segment_bounds(cfg, 5, 4, 75) == [(s, s + 12) for s in range(0, 72, 12)] + [(72, 76)]
    cmds = gemm_commands(cfg, 5, 4, 75)
    assert [c.op for c in cmds[:14]] == ["AMAX_A"] * 7 + ["AMAX_W"] * 7
    body = cmds[14:]
    assert [c.op for c in body] == ["LOAD_A", "LOAD_W", "GEMM"] * 7
    gemms = [c for c in body if c.op == "GEMM"]
    assert [(c.psum_add, c.psum_store) for c in gemms] == [(0, 1)] + [(1, 1)] * 5 + [(1, 0)]
    assert [c.chunks for c in gemms] == [3] * 6 + [1]
    assert segment_seed(0xFFFFFFFF, 1) == 0 and segment_seed(5, 3) == 8
    # one segment: plain commands, no partial sums
    one = gemm_commands(cfg, 3, 2, 10)
    assert [(c.op, c.psum_add, c.psum_store) for c in one] == [
        ("AMAX_A", 0, 0), ("AMAX_W", 0, 0), ("LOAD_A", 0, 0), ("LOAD_W", 0, 0), ("GEMM", 0, 0)]


def test_padding_is_invisible():
    """Nearest rounding: the padded (and split) golden GEMM is the plain ragged one, bit for bit,
    at every K around the group and segment boundaries."""
    cfg = _cfg()
    gen = torch.Generator().manual_seed(7)
    for k in (1, 3, 4, 5, 11, 12, 13, 47, 75):
        a = torch.randn(5, k, generator=gen)
        w = torch.randn(k, 4, generator=gen)
        c, overflow = gemm_reference(cfg, a, w)
        qa = quantize(a, cfg.fmt_a, Grouping.blocks(4, axis=-1))
        qw = quantize(w, cfg.fmt_w, Grouping.blocks(4, axis=0))
        want = mls_matmul(qa, qw, cfg.accumulator_bits, lanes=1)
        assert (fp32_bits(c) == fp32_bits(want)).all(), k
        assert not overflow.any()
    words = operand_words(torch.ones(2, 5), cfg, "A")
    assert len(words) == 2 * 8 and words[5:8] == [0, 0, 0] and words[4] == 0x3F800000
    assert operand_words(torch.ones(5, 2), cfg, "W", (4, 8)) == [0x3F800000, 0, 0, 0] * 2


def test_stochastic_segments_use_their_own_seeds():
    """Each segment's convert pass restarts the LFSR at seed + s: the golden model draws the
    random values segment by segment (changing the seed of segment 0 only moves segment 0)."""
    cfg = _cfg()
    gen = torch.Generator().manual_seed(8)
    a, w = torch.randn(5, 40, generator=gen), torch.randn(40, 4, generator=gen)
    from hw.engine.host import quantized_operands
    q1, _ = quantized_operands(cfg, a, w, stochastic_a=True, seed_a=100)
    q2, _ = quantized_operands(cfg, a, w, stochastic_a=True, seed_a=101)
    assert not torch.equal(q1.codes(), q2.codes())
    # segment 1 (K 12..23) of seed 100 draws the LFSR of seed 101 from its start; the codes there
    # depend only on those values (scale and group exponents do not depend on the random bits)
    from model.lfsr import lfsr_random_bits
    for seed, same in ((101, True), (100, False)):
        bits = torch.zeros(5, 40, dtype=torch.int32)
        bits[:, 12:24] = lfsr_random_bits(5 * 12, 1, seed, cfg.sr_bits).reshape(5, 12)
        direct = quantize(a, cfg.fmt_a, Grouping.blocks(4, axis=-1), "stochastic", bits, sr_bits=cfg.sr_bits)
        assert torch.equal(direct.codes()[:, 12:24], q1.codes()[:, 12:24]) == same


def test_host_errors():
    cfg = _cfg()
    with pytest.raises(ValueError, match=r"^operand A must be 2-D, got shape \(3,\)$"):
        pad_k(torch.ones(3), cfg, "A")
    with pytest.raises(ValueError, match=r"^role must be 'A' or 'W', got 'B'$"):
        pad_k(torch.ones(3, 3), cfg, "B")
    with pytest.raises(ValueError, match=r"^a split GEMM of 7 x 4 needs 18 partial-sum rows, more than the 12 of the buffer$"):
        gemm_commands(cfg, 7, 4, 75)
    with pytest.raises(ValueError, match=r"^k must be in \[1, 4294967296\], got 0$"):
        cfg.padded_k(0)
