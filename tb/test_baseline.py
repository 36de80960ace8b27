# amaranth: UnusedElaboratable=no
"""Baseline PEs (hw/baseline) under cocotb, bit-exact against model.baseline_arith."""

from __future__ import annotations

import pytest

from hw.baseline import FP8MAC, FP32MAC, Int8MAC
from hw.baseline.systolic_pe import BaselinePE
from tb.harness import run_cocotb

FP8_TESTS = ["fp8_products_exhaustive", "fp8_accumulate_random"]
FP32_TESTS = ["fp32_products", "fp32_add_pairs", "fp32_mac_random"]
INT8_TESTS = ["int8_products_exhaustive", "int8_accumulate_random"]


@pytest.mark.parametrize("fmt_a,fmt_b", [
    ("e4m3", "e4m3"), ("e5m2", "e5m2"),
    # The mixed multiplier shares both decoders; its random tiles run by default in
    # test_systolic_baseline_pe, its exhaustive pairs with MLS_SLOW=1 (test-time budget).
    pytest.param("e4m3", "e5m2", marks=pytest.mark.slow),
])
def test_fp8_mac(fmt_a, fmt_b):
    run_cocotb(FP8MAC(fmt_a, fmt_b), "fp8_mac", "baseline_cocotb",
               params={"pe": "fp8", "fmt_a": fmt_a, "fmt_b": fmt_b}, testcase=FP8_TESTS,
               build_tag=f"{fmt_a}_{fmt_b}")


def test_fp32_mac():
    run_cocotb(FP32MAC(), "fp32_mac", "baseline_cocotb", params={"pe": "fp32"}, testcase=FP32_TESTS)


def test_int8_mac():
    run_cocotb(Int8MAC(), "int8_mac", "baseline_cocotb", params={"pe": "int8"}, testcase=INT8_TESTS)


@pytest.mark.slow
def test_int8_mac_wraps():
    # 2^17 cycles (~10 s): the accumulator reaches 2^31 and must wrap.
    run_cocotb(Int8MAC(), "int8_mac", "baseline_cocotb", params={"pe": "int8"}, testcase="int8_wraps")


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"unknown FP8 format 'e2m5'"):
        FP8MAC("e2m5")
    from hw.baseline import IntMultiplier
    with pytest.raises(ValueError, match=r"width must be in \[2, 32\], got 1"):
        IntMultiplier(1)


def test_latency_and_ports():
    for pe in (FP32MAC(), FP8MAC(), Int8MAC()):
        assert pe.latency == 1
        assert set(pe.signature.members) == {"a", "b", "valid", "clear", "acc"}


@pytest.mark.parametrize("kind,fmt_a,fmt_b", [("fp32", "", ""), ("fp8", "e4m3", "e5m2"), ("int8", "", "")])
def test_systolic_baseline_pe(kind, fmt_a, fmt_b):
    pe = BaselinePE(kind, fmt_a or "e4m3", fmt_b or "e4m3")
    run_cocotb(pe, f"{kind}_pe", "baseline_cocotb", params={"pe": kind, "fmt_a": fmt_a, "fmt_b": fmt_b},
               testcase="systolic_tiles", build_tag=f"sys_{kind}_{fmt_a}_{fmt_b}")


def test_systolic_ports_match_mls_pe():
    from hw.pe import MLSPE, PESignature
    from hw.pe.signature import control_layout

    mls = MLSPE("e2m1g3", 24)
    for kind in ("fp32", "fp8", "int8"):
        pe = BaselinePE(kind)
        assert set(pe.signature.members) == set(mls.signature.members)
        assert isinstance(pe.signature, PESignature) and isinstance(mls.signature, PESignature)
        assert pe.signature.members["ctl_in"].shape == control_layout()
        assert pe.latency == mls.latency
    with pytest.raises(ValueError, match="kind must be one of fp32, fp8, int8, got 'bf16'"):
        BaselinePE("bf16")
