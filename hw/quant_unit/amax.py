"""Amax pass: the largest |x| of an FP32 stream, DAZ, with a sticky NaN/Inf flag."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from ..baseline.layout import float_layout

__all__ = ["AmaxPass"]

_FP32 = float_layout(FP32)
_MAX_EXP = FP32.max_exp_field
_MAG_BITS = FP32.bits - 1   # exponent and mantissa fields: |x| of an FP32 word


class AmaxPass(wiring.Component):
    """Running max of the magnitudes of ``lanes`` FP32 values per transfer (docs/numerics.md §2 steps 1-2).

    Subnormal inputs count as zero (DAZ). NaN and Inf set the sticky ``invalid`` flag and are
    left out of the max. Non-negative FP32 numbers order like their bit patterns, so the max is
    an unsigned compare of the 31 magnitude bits. ``clear`` (priority over a transfer) restarts.
    The input is always ready: one word per cycle.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(32, lanes)))
    clear : In(1)
    amax : Out(32)
        FP32 bits of the max so far (+0 after ``clear``), ``latency`` cycles after the transfer.
    invalid : Out(1)
    """

    #: Cycles from an input transfer until ``amax``/``invalid`` include it.
    LATENCY = 1

    def __init__(self, lanes: int):
        if not 1 <= lanes <= 64:
            raise ValueError(f"lanes must be in [1, 64], got {lanes}")
        self._lanes = lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(FP32.bits, lanes), always_ready=True)),
            "clear": In(1),
            "amax": Out(FP32.bits),
            "invalid": Out(1),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        return self.LATENCY

    @property
    def throughput(self) -> int:
        """Elements accepted per cycle."""
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        mags = []
        bad = []
        for lane in range(self._lanes):
            x = _FP32(self.i.payload[lane])   # the FP32 fields of this lane
            mag = Signal(_MAG_BITS, name=f"mag{lane}")
            m.d.comb += mag.eq(Mux((x.exp == 0) | (x.exp == _MAX_EXP), 0, Cat(x.man, x.exp)))
            mags.append(mag)
            bad.append(x.exp == _MAX_EXP)
        # balanced max tree
        level = mags
        while len(level) > 1:
            nxt = []
            for a, b in zip(level[0::2], level[1::2]):
                mx = Signal(_MAG_BITS)
                m.d.comb += mx.eq(Mux(a > b, a, b))
                nxt.append(mx)
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        word_max = level[0]
        any_bad = bad[0]
        for b in bad[1:]:
            any_bad = any_bad | b

        amax = Signal(_MAG_BITS)
        with m.If(self.clear):
            m.d.sync += [amax.eq(0), self.invalid.eq(0)]
        with m.Elif(self.i.valid):
            with m.If(word_max > amax):
                m.d.sync += amax.eq(word_max)
            with m.If(any_bad):
                m.d.sync += self.invalid.eq(1)
        m.d.comb += self.amax.eq(amax)
        return m
