# amaranth: UnusedElaboratable=no
"""``SystolicArray(..., lanes=L)`` without a simulator: which PE each configuration gets, the
beat layouts, timing in beats, exactness and the exact constructor errors (the cocotb runs are
tb/test_array_dot.py)."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment

from hw.array import ArrayTiming, SystolicArray
from hw.array.array import MAX_LANES, PE_KINDS
from hw.baseline.dot_pe_factory import BaselineDotPEFactory
from hw.baseline.fp8_dot_pe import FP8DotPE, fp8_dot_pe_signature
from hw.baseline.int8_dot_pe import INT8DotPE, int8_dot_pe_signature
from hw.pe import MLSDotPE, MLSDotPEFactory, MLSPEFactory, beat_layout, operand_layout
from model.formats import MLSFormat

E2M1G3, E3M2G4 = MLSFormat.parse("e2m1g3"), MLSFormat.parse("e3m2g4")


def test_acceptance_line():
    a = SystolicArray("e2m1g3", 8, 8, lanes=9)
    assert a.lanes == 9 and a.timing == ArrayTiming(8, 8, MLSDotPE("e2m1g3", "e2m1g3", 9, 43).latency, 9)
    assert a.timing.tile_beats(288, 9) == 32 and a.timing.macs_per_cycle == 8 * 8 * 9


@pytest.mark.parametrize("lanes", [1, 2, 4, 9, 16, 17])
def test_lanes_pick_the_pe_and_layouts(lanes):
    arr = SystolicArray("e2m1g3", 3, 2, lanes=lanes, max_k=100)
    if lanes == 1:   # the scalar MLSPE, exactly today's array
        assert arr.pe_factory == MLSPEFactory(E2M1G3, E2M1G3.acc_bits_exact(100)) and not arr.is_dot
        assert arr.a_shape == operand_layout(E2M1G3)
    else:
        assert arr.pe_factory == MLSDotPEFactory(E2M1G3, E2M1G3, lanes, E2M1G3.acc_bits_exact(100)) and arr.is_dot
        assert arr.a_shape == beat_layout(E2M1G3, lanes) == arr.w_shape
    pe = MLSDotPE(E2M1G3, E2M1G3, lanes, arr.acc_bits)
    assert arr.pe_latency == (2 if lanes == 1 else pe.latency) and arr.timing.lanes == lanes
    assert arr.a_layout.size == 3 * beat_layout(E2M1G3, lanes).size + 1
    assert arr.w_layout.size == 2 * beat_layout(E2M1G3, lanes).size
    assert arr.acc_bits == E2M1G3.acc_bits_exact(100) and arr.exact and (arr.fmt, arr.fmt_a, arr.fmt_w) == (E2M1G3,) * 3
    assert arr.latency == arr.timing.drain_cycles - 2


def test_mixed_formats():
    for arr in (SystolicArray(("e2m1g3", "e3m2g4"), 2, 2, lanes=4, max_k=50),
                SystolicArray("e2m1g3", 2, 2, lanes=4, max_k=50, fmt_w="e3m2g4")):
        assert (arr.fmt, arr.fmt_a, arr.fmt_w, arr.lanes) == (None, E2M1G3, E3M2G4, 4)
        assert arr.acc_bits == E2M1G3.acc_bits_exact(50, E3M2G4) and arr.exact
        assert (arr.a_shape, arr.w_shape) == (beat_layout(E2M1G3, 4), beat_layout(E3M2G4, 4))
    one = SystolicArray("e3m2g4", 2, 2, fmt_w="e2m1g3", max_k=50)   # mixed at one lane: the one-lane dot PE
    assert one.is_dot and one.lanes == 1 and one.pe_latency == MLSDotPE(E3M2G4, E2M1G3, 1, 30).latency == 2
    assert not SystolicArray("e2m1g3", 2, 2, lanes=4, acc_bits=20, max_k=50).exact


def test_factory_matches_its_pe():
    for fa, fw, lanes, levels in [(E2M1G3, E2M1G3, 16, 2), (E2M1G3, E3M2G4, 9, 1), (E3M2G4, E2M1G3, 1, 2)]:
        acc = fa.acc_bits_exact(100, fw)
        f = MLSDotPEFactory(fa, fw, lanes, acc, levels)
        pe = MLSDotPE(fa, fw, lanes, acc, tree_levels_per_stage=levels)
        assert (f.signature, f.latency, f.tree_bits, f.tree_latency) == (pe.signature, pe.latency, pe.tree_bits, pe.tree_latency)
        made = f()
        Fragment.get(made, None)   # elaborated: a factory-made PE is used
        assert made.signature == pe.signature and made.latency == pe.latency
        assert f.exact(fa.max_k_for_acc_bits(acc, fw)) and not f.exact(fa.max_k_for_acc_bits(acc, fw) + 1)
    arr = SystolicArray(None, 2, 2, pe=MLSDotPEFactory("e2m1g3", "e2m1g3", 4, 30))
    assert arr.lanes == 4 and arr.acc_bits == 30 and arr.timing == ArrayTiming(2, 2, 3, 4)


def test_baseline_dot_factories():
    for name in ("fp8-e4m3", "fp8-e5m2", "fp8-e4m3-e5m2", "fp8-e5m2-e4m3", "int8"):
        for lanes in (2, 9, 16):
            arr = SystolicArray(None, 2, 3, pe=name, lanes=lanes, max_k=1000)
            f = arr.pe_factory
            base = PE_KINDS[name]
            assert f == BaselineDotPEFactory(base.kind, base.fmt_a, base.fmt_b, lanes)
            assert arr.pe == name and arr.is_baseline and arr.is_dot and arr.lanes == lanes
            assert arr.pe_formats == base.formats and arr.exact == (name == "int8")
            pe = INT8DotPE(lanes) if name == "int8" else FP8DotPE(base.fmt_a, base.fmt_b, lanes)
            assert f.signature == pe.signature and f.latency == pe.latency == arr.pe_latency
            assert arr.timing == ArrayTiming(2, 3, pe.latency, lanes)
            sig = int8_dot_pe_signature(lanes) if name == "int8" else fp8_dot_pe_signature(base.fmt_a, base.fmt_b, lanes)
            assert (arr.a_shape, arr.w_shape, arr.result_shape) == (sig.a_shape, sig.b_shape, sig.result_shape)
    made = BaselineDotPEFactory("int8", lanes=4)()
    Fragment.get(made, None)
    assert isinstance(made, INT8DotPE) and made.lanes == 4
    with pytest.raises(ValueError, match=r"^a dot-product baseline is one of fp8, int8 \(the FP32 baseline is the "
                                         r"scalar multiply-add PE\), got kind='fp32'$"):
        BaselineDotPEFactory("fp32", lanes=4)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 0$"):
        BaselineDotPEFactory("int8", lanes=0)


def test_constructor_errors():
    with pytest.raises(ValueError, match=rf"^lanes must be in \[1, {MAX_LANES}\], got 0$"):
        SystolicArray("e2m1g3", 2, 2, lanes=0)
    with pytest.raises(TypeError, match=r"^lanes must be an int, not 4\.0$"):
        SystolicArray("e2m1g3", 2, 2, lanes=4.0)
    with pytest.raises(ValueError, match=r"^lanes must be 1 for pe='fp32' \(no 4-lane dot-product PE of that kind\), got 4$"):
        SystolicArray(None, 2, 2, pe="fp32", lanes=4)
    with pytest.raises(ValueError, match=r"^give the W format either in fmt=\('e2m1g3', 'e3m2g4'\) or as "
                                         r"fmt_w='e3m2g4', not both$"):
        SystolicArray(("e2m1g3", "e3m2g4"), 2, 2, fmt_w="e3m2g4")
    with pytest.raises(ValueError, match=r"^fmt must be one format or a pair \(A format, W format\), got \('e2m1g3',\)$"):
        SystolicArray(("e2m1g3",), 2, 2)
    with pytest.raises(ValueError, match=r"^fmt must be None for pe='int8' .*, got 'e2m1g3'$"):
        SystolicArray(None, 2, 2, pe="int8", fmt_w="e2m1g3")
    with pytest.raises(ValueError, match=r"^fmt_w must be None when pe is a PEFactory \(it has the formats\), got 'e2m1g3'$"):
        SystolicArray(None, 2, 2, pe=MLSDotPEFactory("e2m1g3", "e2m1g3", 4, 30), fmt_w="e2m1g3")
    with pytest.raises(ValueError, match=r"^lanes=8 disagrees with the PEFactory's 4 lanes \(leave lanes out: the "
                                         r"factory has them\)$"):
        SystolicArray(None, 2, 2, pe=MLSDotPEFactory("e2m1g3", "e2m1g3", 4, 30), lanes=8)
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        SystolicArray("e2m1g3", 2, 2, lanes=4, acc_bits=1)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 1025$"):
        MLSDotPEFactory("e2m1g3", "e2m1g3", 1025, 30)
