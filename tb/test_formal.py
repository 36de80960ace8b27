# amaranth: UnusedElaboratable=no
"""Formal proofs (SymbiYosys from PyPI: yowasp-sby, smtbmc with z3) of the PE accumulator, the
dot-product PE's beat contribution and the array's stream ports; run with ``pytest tb/ -k formal``.

Every proof prints its mode, depth and time, puts them in its assertion message, and writes
``sim_build/formal/<name>/result.json``. A missing tool fails the test (``require_tools``). Each
proof has a deliberately wrong variant of its specification that must FAIL, so a proof that
cannot fail (a vacuous wrapper, a broken flow that reports PASS for anything) is caught.
"""

import pytest

from tb.formal.accumulator import WRONG_SPECS as ACC_WRONG, AccumulatorWrapper
from tb.formal.array import DEPTH as ARRAY_DEPTH, WRONG_SPECS as ARRAY_WRONG, ArrayStreamWrapper
from tb.formal.dot import BeatWrapper, LaneProductWrapper
from tb.formal.sby import require_tools, run_proof

#: k-induction depth of the accumulator proof (its invariant is 1-inductive; 3 also lets the
#: base case show a wrong sticky rule: overflow, then a fitting add, then the check).
ACC_DEPTH = 3


def _check(result, expect_pass=True):
    message = result.describe() + ("\n" + result.summary if result.summary else "")
    if expect_pass:
        assert result.passed, message
    else:
        assert result.status == "FAIL", "a deliberately wrong specification must FAIL: " + message


def test_formal_tools_installed():
    require_tools()


# -- accumulator: saturation and sticky flag, every input sequence (k-induction) -------------
@pytest.mark.parametrize("in_bits,acc_bits", [(6, 4), (4, 7), (9, 9)])
def test_formal_accumulator(in_bits, acc_bits):
    _check(run_proof(f"accumulator_{in_bits}_{acc_bits}", AccumulatorWrapper(in_bits, acc_bits),
                     mode="prove", depth=ACC_DEPTH))


@pytest.mark.parametrize("wrong", ACC_WRONG)
def test_formal_accumulator_wrong_spec_fails(wrong):
    _check(run_proof(f"accumulator_wrong_{wrong}", AccumulatorWrapper(6, 4, wrong_spec=wrong),
                     mode="prove", depth=ACC_DEPTH), expect_pass=False)


def test_formal_accumulator_cover():
    # The covers (both rails saturated, a tile without overflow) are reachable: the proof is not vacuous.
    _check(run_proof("accumulator_cover", AccumulatorWrapper(6, 4), mode="cover", depth=6))


# -- array stream ports (bounded) -----------------------------------------------------------
def test_formal_array_streams():
    _check(run_proof("array_streams_2x2", ArrayStreamWrapper(), mode="bmc", depth=ARRAY_DEPTH))


def test_formal_array_streams_cover():
    # Three tiles drained, and a stalled row with a tile outstanding, are reachable within DEPTH.
    _check(run_proof("array_streams_cover", ArrayStreamWrapper(), mode="cover", depth=ARRAY_DEPTH))


@pytest.mark.parametrize("wrong", ARRAY_WRONG)
def test_formal_array_streams_wrong_spec_fails(wrong):
    _check(run_proof(f"array_streams_wrong_{wrong}", ArrayStreamWrapper(wrong_spec=wrong),
                     mode="bmc", depth=ARRAY_DEPTH), expect_pass=False)


# -- dot-product PE: beat contribution = sum_l int(a_l) * int(w_l) ---------------------------
LANE_PAIRS = [("e3m3g3", "e3m3g3"), ("e4m3g3", "e4m3g3"), ("e2m1g3", "e4m3g3"), ("e4m3g3", "e2m1g6")]


@pytest.mark.parametrize("fmt_a,fmt_w", LANE_PAIRS)
def test_formal_dot_lane_product(fmt_a, fmt_w):
    _check(run_proof(f"dot_lane_{fmt_a}_{fmt_w}", LaneProductWrapper(fmt_a, fmt_w), mode="bmc", depth=1))


def test_formal_dot_lane_product_wrong_spec_fails():
    _check(run_proof("dot_lane_wrong", LaneProductWrapper("e2m1g3", "e2m1g3", wrong_spec=True),
                     mode="bmc", depth=1), expect_pass=False)


@pytest.mark.parametrize("fmt_a,fmt_w,lanes", [
    ("e3m3g3", "e3m3g3", 16),
    ("e4m3g3", "e4m3g3", 16),
    ("e2m1g3", "e4m3g3", 16),
    ("e4m3g3", "e2m1g6", 16),
])
def test_formal_dot_beat(fmt_a, fmt_w, lanes):
    wrapper = BeatWrapper(fmt_a, fmt_w, lanes)
    _check(run_proof(f"dot_beat_{fmt_a}_{fmt_w}_L{lanes}", wrapper, mode="bmc", depth=wrapper.depth))


def test_formal_dot_beat_wrong_spec_fails():
    wrapper = BeatWrapper("e2m1g3", "e2m1g3", 4, wrong_spec=True)
    _check(run_proof("dot_beat_wrong", wrapper, mode="bmc", depth=wrapper.depth), expect_pass=False)
