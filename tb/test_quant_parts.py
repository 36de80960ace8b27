# amaranth: UnusedElaboratable=no
"""cocotb: the quantization unit's datapath parts, bit-exact against model/ (docs/numerics.md §2 steps 3-5).

One probe component per format holds an FP32ScaleMul, a GroupExponent, an ElementRounder and
a LaneLFSR side by side, so one simulator build checks all of them.
"""


import pytest
from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.quant_unit.element_round import ElementRounder
from hw.quant_unit.fp32_mul import FP32ScaleMul
from hw.quant_unit.group_exp import GroupExponent
from hw.quant_unit.lfsr import LaneLFSR
from model.formats import MLSFormat
from tb.harness import run_cocotb

PROBE_LANES = 3


class QuantPartsProbe(wiring.Component):
    def __init__(self, fmt, sr_bits):
        self.fmt = MLSFormat.parse(fmt)
        self.sr_bits = sr_bits
        super().__init__({
            "x": In(32), "inv": In(32), "y": Out(32), "mul_invalid": Out(1),
            "gmax": In(31), "g": Out(self.fmt.group_bits),
            "ry": In(32), "rg": In(self.fmt.group_bits), "stochastic": In(1), "r": In(sr_bits),
            "code": Out(self.fmt.elem_bits),
            "seed": In(32), "load": In(1), "advance": In(1),
            "bits": Out(data.ArrayLayout(sr_bits, PROBE_LANES)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = FP32ScaleMul()
        m.submodules.gexp = gexp = GroupExponent(self.fmt)
        m.submodules.rnd = rnd = ElementRounder(self.fmt, self.sr_bits)
        m.submodules.lfsr = lfsr = LaneLFSR(PROBE_LANES, self.sr_bits)
        m.d.comb += [
            mul.x.eq(self.x), mul.inv.eq(self.inv), self.y.eq(mul.y), self.mul_invalid.eq(mul.invalid),
            gexp.gmax.eq(self.gmax), self.g.eq(gexp.g),
            rnd.y.eq(self.ry), rnd.g.eq(self.rg), rnd.stochastic.eq(self.stochastic), rnd.r.eq(self.r),
            self.code.eq(rnd.code),
            lfsr.seed.eq(self.seed), lfsr.load.eq(self.load), lfsr.advance.eq(self.advance),
            self.bits.eq(lfsr.bits),
        ]
        return m


def _run(fmt, sr_bits, seed):
    probe = QuantPartsProbe(fmt, sr_bits)
    run_cocotb(probe, "quant_parts", "quant_parts_cocotb",
               params={"fmt": fmt, "sr_bits": sr_bits, "lanes": PROBE_LANES, "seed": seed})


@pytest.mark.parametrize("fmt, sr_bits", [
    ("e2m1g3", 8),   # OCP FP4 grid, the default
    ("e4m3g4", 8),
    ("e5m10g6", 12),  # widest element, the g = 63 clamp
    ("e3m0g2", 1),   # M = 0: ties go to the even code, R = 1
])
def test_quant_parts(fmt, sr_bits):
    _run(fmt, sr_bits, 1234)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, sr_bits", [
    ("e1m2g1", 3),
    ("e0m3g2", 4),   # E = 0: fixed-point elements
    ("e2m1g3", 24),  # the widest R
    ("e5m2g5", 8),
])
def test_quant_parts_slow(fmt, sr_bits):
    _run(fmt, sr_bits, 99)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"GroupExponent needs group_bits >= 1, got e2m1g0"):
        GroupExponent("e2m1g0")
    with pytest.raises(ValueError, match=r"sr_bits must be in \[1, 24\], got 0"):
        ElementRounder("e2m1g3", 0)
    with pytest.raises(ValueError, match=r"lanes must be in \[1, 64\], got 0"):
        LaneLFSR(0, 8)
    with pytest.raises(ValueError, match=r"sr_bits must be in \[1, 31\], got 32"):
        LaneLFSR(1, 32)
