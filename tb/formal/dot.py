"""Proofs of the dot-product PE's beat contribution (docs/numerics.md §3.1), in two sound steps.

1. ``LaneProductWrapper`` (one lane, combinational): the lane circuit the PE instantiates per
   lane (``SignificandMultiplier`` then ``ElementAligner``) equals the plain wide product
   ``int_e(a) * int_e(w)`` of the two decoded element integers ``int_e = (-1)^s sig 2^(max(e,1)-1)``
   (``spec.decoded_elem_int``), for every pair of element codes.
2. ``BeatWrapper`` (the whole ``MLSDotPE``, ``L`` lanes, exact accumulator): for every beat
   (all lane codes, both group exponents), a tile of that one beat finishes with
   ``result == (sum_l lane_l) * 2^(o_a + o_w)`` where ``lane_l`` is a fresh copy of the lane
   circuit of step 1 on lane ``l``'s codes and ``o = 2^G - 1 - g`` (``spec.group_offset``).
   Shifting a product is multiplying by a power of two, and ``int(a) = int_e(a) * 2^o_a``, so
   with step 1 this is ``sum_l int(a_l) * int(w_l)`` of §3 for every input.

Why two steps: one SAT problem holding sixteen wide multipliers on the specification side and
sixteen differently built ones in the PE does not finish (one e3m3g3 scalar product alone took
z3 a minute). Step 1 keeps the multiplier identity to one lane; in step 2 the lane circuits on
both sides are the same terms, and what is left is the adder tree, its pipeline, the group
shifter and the accumulator against an exact pairwise sum shifted once by the group offsets
(§3.1's ``T * 2^(o_a + o_w)``).
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.hdl import Assert, Assume, ResetSignal
from amaranth.hdl._ir import Fragment
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from hw.pe.dot_pe import MLSDotPE
from hw.pe.elem_aligner import ElementAligner
from hw.pe.layout import beat_layout, element_layout
from hw.pe.sig_mul import SignificandMultiplier
from model.formats import MLSFormat

from .internal import internal_signal, subfragment
from .spec import decoded_elem_int, group_offset

__all__ = ["LaneProductWrapper", "BeatWrapper"]


def _lane_circuit(m, name, fmt_a, fmt_w, a_elem, w_elem):
    """The documented per-lane composition: significand product, then the element shift."""
    mul, align = SignificandMultiplier(fmt_a, fmt_w), ElementAligner(fmt_a, fmt_w)
    m.submodules[f"{name}_mul"], m.submodules[f"{name}_align"] = mul, align
    m.d.comb += [
        mul.a.eq(a_elem), mul.b.eq(w_elem),
        align.product.eq(mul.product), align.sign.eq(mul.sign),
        align.a_exp.eq(a_elem.exp), align.w_exp.eq(w_elem.exp),
    ]
    return align.value


class LaneProductWrapper(wiring.Component):
    """Step 1: ``lane(a, w) == int_e(a) * int_e(w)`` for all element codes (combinational).

    ``wrong_spec`` drops the sign of ``w`` from the specification: a deliberately false
    property that the proof must reject.
    """

    def __init__(self, fmt_a, fmt_w, *, wrong_spec: bool = False):
        self._fmt_a, self._fmt_w = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
        self._wrong_spec = wrong_spec
        super().__init__({"a": In(element_layout(self._fmt_a)), "w": In(element_layout(self._fmt_w))})

    def elaborate(self, platform):
        m = Module()
        lane = _lane_circuit(m, "lane", self._fmt_a, self._fmt_w, self.a, self.w)
        w_int = decoded_elem_int(self._fmt_w, self.w)
        if self._wrong_spec:
            w_int = abs(w_int)
        spec = Signal(signed(len(lane) + 2))
        m.d.comb += [
            spec.eq(decoded_elem_int(self._fmt_a, self.a) * w_int),
            Assert(lane == spec, "lane product == int_e(a) * int_e(w)"),
        ]
        return m


class BeatWrapper(wiring.Component):
    """Step 2: a one-beat tile of ``MLSDotPE(fmt_a, fmt_w, lanes)`` (exact accumulator) ends
    with ``result == (sum_l lane_l) << (o_a + o_w)``; checked ``latency`` cycles after the beat.

    The beat enters in cycle 0 with ``valid = first = last = 1``; the inputs of later cycles
    are free (they must not disturb the finished tile). ``wrong_spec`` leaves the last lane
    out of the specification's sum (a property the proof must reject).
    """

    def __init__(self, fmt_a, fmt_w, lanes: int, *, wrong_spec: bool = False):
        self._fmt_a, self._fmt_w = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
        self._lanes, self._wrong_spec = lanes, wrong_spec
        self.dut = MLSDotPE(self._fmt_a, self._fmt_w, lanes, self._fmt_a.acc_bits_exact(lanes, self._fmt_w))
        super().__init__({
            "a": In(beat_layout(self._fmt_a, lanes)),
            "w": In(beat_layout(self._fmt_w, lanes)),
        })

    @property
    def depth(self) -> int:
        """BMC depth that reaches the cycle ``result`` holds the beat's tile (plus one)."""
        return self.dut.latency + 2

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        fragment = Fragment.get(dut, platform)
        m.submodules.dut = fragment
        fmt_a, fmt_w, lanes = self._fmt_a, self._fmt_w, self._lanes
        cycle = Signal(range(self.depth + 1))
        m.d.sync += cycle.eq(cycle + (cycle != self.depth))
        m.d.comb += [
            Assume(~ResetSignal()),
            dut.a_in.eq(self.a), dut.b_in.eq(self.w),
            dut.ctl_in.valid.eq(cycle == 0), dut.ctl_in.first.eq(cycle == 0), dut.ctl_in.last.eq(cycle == 0),
        ]
        # The specification, from the beat of cycle 0 (held in registers).
        used = lanes - (1 if self._wrong_spec else 0)
        lanes_r = []
        for l in range(used):
            term = _lane_circuit(m, f"spec{l}", fmt_a, fmt_w, self.a.elems[l], self.w.elems[l])
            held = Signal(signed(len(term)), name=f"spec_lane{l}")
            with m.If(cycle == 0):
                m.d.sync += held.eq(term)
            lanes_r.append(held)
        shift = group_offset(fmt_a, self.a.g) + group_offset(fmt_w, self.w.g)
        shift_r = Signal(len(shift))
        with m.If(cycle == 0):
            m.d.sync += shift_r.eq(shift)
        # The exact sum of the lane terms, added pairwise (lanes 0+1, 2+3, ..., then pairs of
        # those) at full width: an exact integer sum does not depend on the order.
        levels = [lanes_r]
        while len(levels[-1]) > 1:
            prev = levels[-1]
            levels.append([prev[i] + prev[i + 1] if i + 1 < len(prev) else prev[i] for i in range(0, len(prev), 2)])
        expected = Signal(signed(dut.acc_bits + 1))
        m.d.comb += expected.eq(levels[-1][0] << shift_r)

        # Step lemmas on the PE's pipeline registers. smtbmc assumes every assertion it has
        # proven at a step while it checks later steps, so each of these is a small problem:
        # the lane products against the specification's lane terms, then each registered tree
        # level against the same partial sums. They are consequences of the final property for
        # a correct PE, not extra assumptions: each one is itself proven.
        if not self._wrong_spec:
            products = internal_signal(fragment, "lane_products")
            product_view = data.View(data.ArrayLayout(signed(dut.product_bits), lanes), products)
            with m.If(cycle == 1):
                for l in range(lanes):
                    m.d.comb += Assert(product_view[l] == lanes_r[l], f"lane {l} product register")
            if lanes > 1:
                tree = subfragment(fragment, "tree")
                depth = len(levels) - 1
                stage = 0
                for level in range(1, depth + 1):
                    if level % dut.tree_levels_per_stage == 0 or level == depth:
                        stage += 1
                        with m.If(cycle == 1 + stage):
                            for index, partial in enumerate(levels[level]):
                                node = internal_signal(tree, f"l{level}_n{index}")
                                m.d.comb += Assert(node == partial, f"tree level {level} node {index}")

        with m.If(cycle == dut.latency):
            m.d.comb += [
                Assert(dut.done, "done pulses latency cycles after the last beat"),
                Assert(dut.result == expected, "result == (sum of lane products) << group offsets"),
                Assert(~dut.overflow, "an exact accumulator never overflows"),
            ]
        return m
