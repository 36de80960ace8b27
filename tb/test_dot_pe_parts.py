# amaranth: UnusedElaboratable=no
"""The dot-product PE's parts, each checked alone (one probe build holds them side by side):
the mixed-format significand multiplier (every code pair), the element aligner (every product,
sign and exponent pair), adder trees for several L and register spacings (random, extreme and
cancelling vectors through the pipeline) and the group shifter (every g pair). The saturating
``Accumulator`` is the scalar PE's, tested alone in ``test_pe_parts.py``."""

import pytest
from amaranth import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.pe import AdderTree, ElementAligner, GroupShifter, SignificandMultiplier
from hw.pe.layout import element_layout, field_width
from model.formats import MLSFormat
from tb.harness import run_cocotb

#: (lanes, levels_per_stage) of the probed trees: odd and power-of-two L, several register spacings
TREES = [(1, 2), (2, 2), (3, 1), (4, 1), (5, 2), (9, 2), (9, 1), (16, 2), (16, 3), (17, 2)]
#: the group shifter is probed at the width of a 9-lane beat sum
SHIFTER_LANES = 9


class DotPEPartsProbe(wiring.Component):
    def __init__(self, fmt_a, fmt_w):
        self.fmt_a, self.fmt_w = fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
        self.max_p = ElementAligner.max_magnitude(fa, fw)
        self.trees = {(lanes, lps): AdderTree(lanes, self.max_p, lps) for lanes, lps in TREES}
        self.shifter = GroupShifter(fa, fw, fa.beat_sum_bits(SHIFTER_LANES, fw))
        ports = {
            "m_a": In(element_layout(fa)), "m_w": In(element_layout(fw)),
            "m_product": Out(fa.sig_product_bits(fw)), "m_sign": Out(1),
            "al_product": In(fa.sig_product_bits(fw)), "al_sign": In(1),
            "al_a_exp": In(field_width(fa.exp_bits)), "al_w_exp": In(field_width(fw.exp_bits)),
            "al_value": Out(signed(fa.elem_product_bits(fw))),
            "gs_value": In(signed(self.shifter.in_bits)), "gs_g_a": In(field_width(fa.group_bits)),
            "gs_g_w": In(field_width(fw.group_bits)), "gs_shifted": Out(signed(self.shifter.out_bits)),
        }
        for (lanes, lps), tree in self.trees.items():
            ports[f"t{lanes}_{lps}_in"] = In(data.ArrayLayout(signed(tree.in_bits), lanes))
            ports[f"t{lanes}_{lps}_sum"] = Out(signed(tree.sum_bits))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        fa, fw = self.fmt_a, self.fmt_w
        m.submodules.mul = mul = SignificandMultiplier(fa, fw)
        m.submodules.align = al = ElementAligner(fa, fw)
        m.submodules.group_shift = gs = self.shifter
        m.d.comb += [
            mul.a.eq(self.m_a), mul.b.eq(self.m_w), self.m_product.eq(mul.product), self.m_sign.eq(mul.sign),
            al.product.eq(self.al_product), al.sign.eq(self.al_sign), al.a_exp.eq(self.al_a_exp),
            al.w_exp.eq(self.al_w_exp), self.al_value.eq(al.value),
            gs.value.eq(self.gs_value), gs.g_a.eq(self.gs_g_a), gs.g_w.eq(self.gs_g_w), self.gs_shifted.eq(gs.shifted),
        ]
        for (lanes, lps), tree in self.trees.items():
            m.submodules[f"tree{lanes}_{lps}"] = tree
            m.d.comb += [tree.inputs.eq(getattr(self, f"t{lanes}_{lps}_in")),
                         getattr(self, f"t{lanes}_{lps}_sum").eq(tree.sum)]
        return m


@pytest.mark.parametrize("fmt_a, fmt_w", [("e2m1g3", "e2m1g3"), ("e2m1g3", "e3m2g4")])
def test_dot_pe_parts(fmt_a, fmt_w):
    probe = DotPEPartsProbe(fmt_a, fmt_w)
    trees = [{"lanes": t.lanes, "lps": t.levels_per_stage, "in_bits": t.in_bits, "sum_bits": t.sum_bits,
              "latency": t.latency} for t in probe.trees.values()]
    run_cocotb(probe, "dot_pe_parts", "dot_pe_parts_cocotb",
               params={"fmt_a": fmt_a, "fmt_w": fmt_w, "seed": 7, "max_p": probe.max_p, "trees": trees,
                       "product_bits": probe.fmt_a.elem_product_bits(probe.fmt_w),
                       "shifter_in_bits": probe.shifter.in_bits, "shifter_out_bits": probe.shifter.out_bits})


def test_dot_pe_tree_structure():
    """Depth ceil(log2 L), a register every levels_per_stage levels and after the last, exact widths."""
    for lanes, depth in [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (16, 4), (17, 5)]:
        tree = AdderTree(lanes, 144)
        assert (tree.depth, tree.in_bits, tree.sum_bits) == (depth, 9, 1 + (lanes * 144).bit_length())
        assert [AdderTree(lanes, 144, lps).latency for lps in (1, 2, 3)] == [depth, -(-depth // 2), -(-depth // 3)]


def test_dot_pe_part_constructor_errors():
    e2m1g3 = MLSFormat.parse("e2m1g3")
    with pytest.raises(TypeError, match=r"^lanes must be an int, not 2\.0$"):
        AdderTree(2.0, 144)
    with pytest.raises(ValueError, match=r"^lanes must be in \[1, 1024\], got 0$"):
        AdderTree(0, 144)
    with pytest.raises(ValueError, match=r"^max_magnitude must be at least 1, got 0$"):
        AdderTree(4, 0)
    with pytest.raises(ValueError, match=r"^levels_per_stage must be at least 1, got 0$"):
        AdderTree(4, 144, 0)
    with pytest.raises(TypeError, match=r"^fmt_w must be an MLSFormat, not 'e2m1g3'$"):
        ElementAligner(e2m1g3, "e2m1g3")
    with pytest.raises(TypeError, match=r"^fmt_a must be an MLSFormat, not None$"):
        GroupShifter(None, e2m1g3, 12)
    with pytest.raises(ValueError, match=r"^in_bits must be at least 1, got 0$"):
        GroupShifter(e2m1g3, e2m1g3, 0)
    with pytest.raises(TypeError, match=r"^fmt_b must be an MLSFormat, not 'e3m2g4'$"):
        SignificandMultiplier(e2m1g3, "e3m2g4")
