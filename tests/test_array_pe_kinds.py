# amaranth: UnusedElaboratable=no
"""SystolicArray(pe=...): constructor validation, layouts, widths and timing of the baseline-PE
arrays (no simulator; the cocotb runs are in tb/test_array_baseline.py)."""

from __future__ import annotations

import re

import pytest
from amaranth import Shape, signed
from amaranth.hdl import Fragment

from hw.array import SystolicArray
from hw.array.array import BASELINE_ACC_BITS, INT8_MAX_K_EXACT, PE_KINDS
from hw.baseline.layout import float_layout
from hw.baseline.systolic_pe import BaselinePE
from hw.pe import MLSPE
from model.baseline_arith import E4M3, E5M2, FP32
from model.formats import MLSFormat

ALLOWED = "'mls', 'fp32', 'fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3-e5m2', 'fp8-e5m2-e4m3', 'int8'"


def _array(*args, **kwargs):
    arr = SystolicArray(*args, **kwargs)
    return arr


@pytest.mark.filterwarnings("error")
def test_pe_errors():
    with pytest.raises(ValueError, match=r"^pe must be one of " + re.escape(ALLOWED) + r", got 'bf16'$"):
        SystolicArray(None, 2, 2, pe="bf16")
    with pytest.raises(ValueError, match=r"^pe must be one of .*, got 'fp8'$"):
        SystolicArray(None, 2, 2, pe="fp8")
    with pytest.raises(ValueError, match=r"^pe must be one of .*, got 'FP32'$"):
        SystolicArray(None, 2, 2, pe="FP32")
    with pytest.raises(TypeError, match=r"^pe must be a str or a PEFactory, not 32$"):
        SystolicArray(None, 2, 2, pe=32)
    with pytest.raises(ValueError, match=r"^acc_bits must be None for pe='fp32' \(its accumulator is a fixed "
                                         r"32-bit word\), got 24$"):
        SystolicArray(None, 2, 2, acc_bits=24, pe="fp32")
    with pytest.raises(ValueError, match=r"^acc_bits must be None for pe='int8' .*, got 32$"):
        SystolicArray(None, 2, 2, acc_bits=32, pe="int8")
    with pytest.raises(ValueError, match=r"^fmt must be None for pe='fp32' \(a baseline PE's operand formats are "
                                         r"fixed\), got 'e2m1g3'$"):
        SystolicArray("e2m1g3", 2, 2, pe="fp32")
    with pytest.raises(TypeError, match=r"^fmt is required for pe='mls'"):
        SystolicArray(None, 2, 2)
    with pytest.raises(TypeError, match=r"^fmt is required for pe='mls'"):
        SystolicArray(rows=2, cols=2)
    # the other checks still apply to baselines
    with pytest.raises(ValueError, match=r"^rows must be in \[1, 64\], got 0$"):
        SystolicArray(None, 0, 2, pe="int8")
    with pytest.raises(ValueError, match=r"^max_k must be in \[1, 1099511627776\], got 0$"):
        SystolicArray(None, 2, 2, max_k=0, pe="fp32")


def test_mls_default_unchanged():
    arr = _array("e2m1g3", 4, 4)
    assert arr.pe == "mls" and not arr.is_baseline and arr.pe_formats is None
    assert str(arr.fmt) == "e2m1g3" and arr.acc_bits == MLSFormat.parse("e2m1g3").acc_bits_exact(1 << 20)
    assert arr.pe_latency == MLSPE.LATENCY == 2 and arr.exact
    same = _array("e2m1g3", 4, 4, pe="mls")
    assert same.a_layout == arr.a_layout and same.c_layout == arr.c_layout


@pytest.mark.parametrize("pe, a_shape, w_shape, result", [
    ("fp32", float_layout(FP32), float_layout(FP32), float_layout(FP32)),
    ("fp8-e4m3", float_layout(E4M3), float_layout(E4M3), float_layout(FP32)),
    ("fp8-e5m2", float_layout(E5M2), float_layout(E5M2), float_layout(FP32)),
    ("fp8-e4m3-e5m2", float_layout(E4M3), float_layout(E5M2), float_layout(FP32)),
    ("fp8-e5m2-e4m3", float_layout(E5M2), float_layout(E4M3), float_layout(FP32)),
    ("int8", signed(8), signed(8), signed(32)),
])
def test_baseline_layouts_and_timing(pe, a_shape, w_shape, result):
    arr = _array(None, 3, 5, max_k=100, pe=pe)
    assert arr.pe == pe and arr.is_baseline and arr.fmt is None
    assert arr.acc_bits == BASELINE_ACC_BITS == 32 and Shape.cast(arr.result_shape).width == 32
    assert arr.a_shape == a_shape and arr.w_shape == w_shape and arr.result_shape == result
    assert arr.a_layout.size == 3 * Shape.cast(a_shape).width + 1
    assert arr.w_layout.size == 5 * Shape.cast(w_shape).width
    assert arr.c_layout.size == 5 * 32 + 5 + 1
    # same pipeline as the MLS PE, hence the same cycle counts
    assert arr.pe_latency == BaselinePE.LATENCY == MLSPE.LATENCY
    mls = _array("e2m1g3", 3, 5, max_k=100)
    assert arr.timing == mls.timing and arr.latency == mls.latency
    assert arr.timing.tiles_cycles([1, 7, 40]) == mls.timing.tiles_cycles([1, 7, 40])
    # exact: never for a rounding float accumulator; INT32 while it cannot wrap
    assert arr.exact == (pe == "int8")
    pe_obj = arr.make_pe()
    Fragment.get(pe_obj, None)   # it elaborates (and counts as used)
    assert isinstance(pe_obj, BaselinePE) and pe_obj.signature.members["a_in"].shape == a_shape
    assert pe_obj.signature.members["b_in"].shape == w_shape


def test_int8_exact_bound():
    assert INT8_MAX_K_EXACT == (1 << 17) - 1   # 2^17 products of (-128)^2 reach 2^31 and wrap
    assert _array(None, 2, 2, max_k=INT8_MAX_K_EXACT, pe="int8").exact
    assert not _array(None, 2, 2, max_k=INT8_MAX_K_EXACT + 1, pe="int8").exact
    assert not _array(None, 2, 2, pe="int8").exact   # default max_k = 2**20


def test_pe_kinds_listed():
    assert tuple(PE_KINDS) == tuple(s.strip("'") for s in ALLOWED.split(", "))


def test_baseline_arrays_elaborate():
    from amaranth.back import rtlil

    for pe in PE_KINDS:
        arr = SystolicArray("e2m1g3" if pe == "mls" else None, 2, 2, max_k=16, pe=pe)
        text = rtlil.convert(arr, name="top")
        assert "pe_1_1" in text


def test_pe_signature():
    from amaranth.lib import data, wiring

    from hw.pe import PESignature, control_layout, operand_layout

    fmt = MLSFormat.parse("e2m1g3")
    sig = PESignature(operand_layout(fmt), operand_layout(fmt), signed(20))
    assert list(sig.members) == ["a_in", "b_in", "ctl_in", "a_out", "b_out", "ctl_out", "result",
                                 "overflow", "done"]
    assert sig.members["a_in"] == wiring.In(operand_layout(fmt))
    assert sig.members["ctl_out"] == wiring.Out(control_layout())
    assert sig.members["result"] == wiring.Out(signed(20)) and sig.members["overflow"] == wiring.Out(1)
    assert (sig.a_shape, sig.b_shape, sig.result_shape) == (operand_layout(fmt), operand_layout(fmt), signed(20))
    # equal by shapes, so every PE kind of an array has the signature its shapes say
    assert sig == PESignature(operand_layout(fmt), operand_layout(fmt), signed(20))
    assert sig.flip() == PESignature(operand_layout(fmt), operand_layout(fmt), signed(20)).flip()
    assert sig != PESignature(operand_layout(fmt), operand_layout(fmt), signed(21))
    assert sig != wiring.Signature(dict(sig.members))
    # an L-lane operand is one ArrayLayout member
    lanes = PESignature(data.ArrayLayout(operand_layout(fmt), 4), data.ArrayLayout(operand_layout(fmt), 4), signed(24))
    assert Shape.cast(lanes.members["b_out"].shape).width == 4 * operand_layout(fmt).size
    with pytest.raises(TypeError, match=r"^a_shape must be a shape \(a Shape, a lib.data layout, an int or a "
                                        r"range\), not 'e2m1g3'$"):
        PESignature("e2m1g3", signed(8), signed(32))
    with pytest.raises(TypeError, match=r"^result_shape must be a shape .*, not None$"):
        PESignature(signed(8), signed(8), None)
    for pe in (MLSPE(fmt, 20), BaselinePE("fp32"), BaselinePE("fp8", "e5m2", "e4m3"), BaselinePE("int8")):
        assert isinstance(pe.signature, PESignature)
    assert MLSPE(fmt, 20).signature == sig
    assert BaselinePE("fp8", "e5m2", "e4m3").signature == PESignature(float_layout(E5M2), float_layout(E4M3),
                                                                      float_layout(FP32))


def test_pe_factory():
    """A PEFactory passed as ``pe`` builds the same array as its preset name; the presets are
    factories (the baselines) or MLSPEFactory(fmt, acc_bits) (mls)."""
    from hw.baseline.systolic_pe import BaselinePEFactory
    from hw.pe import MLSPEFactory, PEFactory

    mls = _array("e2m1g3", 3, 4, acc_bits=25)
    assert mls.pe_factory == MLSPEFactory(MLSFormat.parse("e2m1g3"), 25) == MLSPEFactory("e2m1g3", 25)
    same = _array(None, 3, 4, pe=MLSPEFactory("e2m1g3", 25))
    assert (same.pe, same.fmt, same.acc_bits, same.a_layout, same.w_layout, same.c_layout, same.timing) == \
        (mls.pe, mls.fmt, mls.acc_bits, mls.a_layout, mls.w_layout, mls.c_layout, mls.timing)
    # e2m1g3: 25 bits hold K = 7 products exactly, not K = 8
    assert MLSFormat.parse("e2m1g3").acc_bits_exact(7) == 25 < MLSFormat.parse("e2m1g3").acc_bits_exact(8)
    assert _array(None, 3, 4, max_k=7, pe=MLSPEFactory("e2m1g3", 25)).exact
    assert not _array(None, 3, 4, max_k=8, pe=MLSPEFactory("e2m1g3", 25)).exact
    for name, factory in PE_KINDS.items():
        if factory is None:
            continue
        assert isinstance(factory, BaselinePEFactory) and isinstance(factory, PEFactory) and factory.name == name
        by_name, by_factory = _array(None, 2, 2, max_k=100, pe=name), _array(None, 2, 2, max_k=100, pe=factory)
        assert by_factory.pe == name and by_factory.pe_formats == by_name.pe_formats == factory.formats
        assert by_factory.c_layout == by_name.c_layout and by_factory.exact == by_name.exact
    assert PE_KINDS["fp8-e5m2-e4m3"] == BaselinePEFactory("fp8", "e5m2", "e4m3")
    with pytest.raises(ValueError, match=r"^fmt and acc_bits must be None when pe is a PEFactory \(it has them\), "
                                         r"got fmt='e2m1g3', acc_bits=None$"):
        SystolicArray("e2m1g3", 2, 2, pe=MLSPEFactory("e2m1g3", 20))
    with pytest.raises(ValueError, match=r"^fmt and acc_bits must be None .*, got fmt=None, acc_bits=24$"):
        SystolicArray(None, 2, 2, acc_bits=24, pe=PE_KINDS["int8"])
    with pytest.raises(ValueError, match=r"^rows must be in \[1, 64\], got 65$"):
        SystolicArray(None, 65, 2, pe=PE_KINDS["int8"])
    # the factories validate as the PEs do, on construction
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        MLSPEFactory("e2m1g3", 1)
    with pytest.raises(TypeError, match=r"^acc_bits must be an int, not '20'$"):
        MLSPEFactory("e2m1g3", "20")
    with pytest.raises(ValueError, match=r"^kind must be one of fp32, fp8, int8, got 'bf16'$"):
        BaselinePEFactory("bf16")
    with pytest.raises(ValueError, match=r"^fmt_a and fmt_b are the FP8 formats of kind='fp8' only, got "
                                         r"kind='fp8', fmt_a='e4m3', fmt_b=None$"):
        BaselinePEFactory("fp8", "e4m3")
    with pytest.raises(ValueError, match=r"^fmt_a and fmt_b are .*, got kind='int8', fmt_a='e4m3', fmt_b='e4m3'$"):
        BaselinePEFactory("int8", "e4m3", "e4m3")


def test_pe_factory_drop_in():
    """Any PEFactory drops in: here one that makes INT8 PEs under another name; and a factory
    whose PEs do not have its signature is refused when the array elaborates."""
    from dataclasses import dataclass

    from amaranth.back import rtlil

    from hw.pe import PEFactory, PESignature

    @dataclass(frozen=True)
    class Int8Again(PEFactory):
        wrong_signature: bool = False
        name = "int8-again"

        @property
        def signature(self):
            return PESignature(signed(8), signed(8), signed(31 if self.wrong_signature else 32))

        latency = property(lambda self: BaselinePE.LATENCY)

        def exact(self, max_k):
            return False

        def __call__(self):
            return BaselinePE("int8")

    arr = SystolicArray(None, 2, 3, pe=Int8Again())
    assert arr.pe == "int8-again" and arr.fmt is None and arr.acc_bits == 32 and not arr.is_baseline
    assert arr.c_layout == _array(None, 2, 3, pe="int8").c_layout
    assert "pe_1_2" in rtlil.convert(arr, name="top")
    bad = SystolicArray(None, 2, 3, pe=Int8Again(wrong_signature=True))
    with pytest.raises(TypeError, match=r"made a PE with signature PESignature\(signed\(8\), signed\(8\), "
                                        r"signed\(32\)\), not PESignature\(signed\(8\), signed\(8\), signed\(31\)\)$"):
        rtlil.convert(bad, name="top")
