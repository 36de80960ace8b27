"""The PE's parts, each checked alone (one probe build holds them side by side):
significand multiplier (every code pair), exponent adder (every (e, g, e, g)), aligner
(random products, every shift, both signs) and accumulator (random signed streams with
first/last/bubbles against ``model.arith.accumulate``, narrow so it saturates)."""

import pytest
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.pe import Accumulator, Aligner, ExponentAdder, SignificandMultiplier
from hw.pe.layout import element_layout, field_width
from model.formats import MLSFormat
from tb.harness import run_cocotb

ACC_IN_BITS, ACC_BITS = 12, 14


class PEPartsProbe(wiring.Component):
    def __init__(self, fmt):
        self.fmt = fmt = MLSFormat.parse(fmt)
        sb = ExponentAdder.shift_bits(fmt)
        super().__init__({
            "ma": In(element_layout(fmt)), "mb": In(element_layout(fmt)),
            "m_product": Out(2 * fmt.sig_bits), "m_sign": Out(1),
            "ea": In(field_width(fmt.exp_bits)), "eb": In(field_width(fmt.exp_bits)),
            "ga": In(field_width(fmt.group_bits)), "gb": In(field_width(fmt.group_bits)), "e_shift": Out(sb),
            "al_product": In(2 * fmt.sig_bits), "al_sign": In(1), "al_shift": In(sb),
            "al_value": Out(signed(Aligner.product_bits(fmt))),
            "ac_value": In(signed(ACC_IN_BITS)), "ac_ctl": In(3),
            "ac_result": Out(signed(ACC_BITS)), "ac_overflow": Out(1), "ac_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        m.submodules.mul = mul = SignificandMultiplier(fmt)
        m.submodules.exp_add = ea = ExponentAdder(fmt)
        m.submodules.align = al = Aligner(fmt)
        m.submodules.acc = ac = Accumulator(ACC_IN_BITS, ACC_BITS)
        m.d.comb += [
            mul.a.eq(self.ma), mul.b.eq(self.mb), self.m_product.eq(mul.product), self.m_sign.eq(mul.sign),
            ea.a_exp.eq(self.ea), ea.b_exp.eq(self.eb), ea.a_g.eq(self.ga), ea.b_g.eq(self.gb), self.e_shift.eq(ea.shift),
            al.product.eq(self.al_product), al.sign.eq(self.al_sign), al.shift.eq(self.al_shift), self.al_value.eq(al.value),
            ac.value.eq(self.ac_value), ac.valid.eq(self.ac_ctl[0]), ac.first.eq(self.ac_ctl[1]), ac.last.eq(self.ac_ctl[2]),
            self.ac_result.eq(ac.result), self.ac_overflow.eq(ac.overflow), self.ac_done.eq(ac.done),
        ]
        return m


@pytest.mark.parametrize("fmt", ["e3m3g3", pytest.param("e0m3g1", marks=pytest.mark.slow),
                                 pytest.param("e2m1g3", marks=pytest.mark.slow)])
def test_pe_parts(fmt):
    probe = PEPartsProbe(fmt)
    run_cocotb(probe, "pe_parts", "pe_parts_cocotb",
               params={"fmt": fmt, "acc_in_bits": ACC_IN_BITS, "acc_bits": ACC_BITS, "seed": 11,
                       "shift_bits": ExponentAdder.shift_bits(probe.fmt), "product_bits": Aligner.product_bits(probe.fmt)})


def test_part_constructor_errors():
    with pytest.raises(TypeError, match=r"^fmt must be an MLSFormat, not 'e2m1g3'$"):
        SignificandMultiplier("e2m1g3")
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        Accumulator(8, 1)
    with pytest.raises(ValueError, match=r"^in_bits must be at least 1, got 0$"):
        Accumulator(0, 8)
