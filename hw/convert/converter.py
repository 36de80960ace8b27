"""The output converter of docs/numerics.md §3: accumulators to FP32, a stream of rows in and out."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from .fp32_multiply import FP32Multiply
from .int_to_fp32 import IntToFP32, check_int

__all__ = ["OutputConverter", "MAX_LANES"]

#: Most accumulators converted per transfer (one array row: the array has at most 64 columns).
MAX_LANES = 64


class OutputConverter(wiring.Component):
    """``y = fp32_rne(fp32_rne(C_int * 2**-L) * fp32_rne(S_A * S_B))`` with FTZ, per lane.

    Bit for bit ``model.arith.output_convert(c_int, S_A, S_B, L)``: the integer is rounded once to
    24 bits (``IntToFP32``, FTZ and +-inf past the range), then multiplied by the scale product
    with one IEEE rounding on the subnormal grid; a result below 2**-126 becomes +0. The scale
    product ``fp32(S_A * S_B)`` is itself an IEEE product (subnormal results kept, as torch
    keeps them). A NaN comes only from ``inf * 0`` (an integer past the FP32 range times a
    scale product that underflowed to zero); it is ``0x7FC00000`` and raises ``nan``.

    Pipeline: two register stages (``latency``), one transfer per cycle at steady state; the
    whole pipeline holds while ``o`` is not ready, and bubbles close up.

    Parameters
    ----------
    acc_bits : int
        Accumulator width, in [2, 63].
    lsb_exponent : int
        L = L_A + L_W of the operand formats (``MLSFormat.lsb_exponent``), in [-1024, 1024].
    lanes : int
        Accumulators per transfer, in [1, 64].

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(acc_bits), lanes)))
    o : Out(stream.Signature(ArrayLayout(32, lanes)))
        FP32 bit patterns, lane for lane.
    scale_a, scale_b : In(32)
        FP32 bits of the two tensor scales. The scale product is registered, so the scales must
        be held from the cycle before the first transfer they apply to until their last result
        leaves ``o``.
    nan : Out(1)
        ``o.valid`` and some lane of ``o.payload`` is the NaN.
    """

    LATENCY = 2

    def __init__(self, acc_bits: int, lsb_exponent: int, lanes: int = 1):
        self._acc_bits = check_int("acc_bits", acc_bits, 2, 63)
        self._lsb_exponent = check_int("lsb_exponent", lsb_exponent, -1024, 1024)
        self._lanes = check_int("lanes", lanes, 1, MAX_LANES)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(acc_bits), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(FP32.bits, lanes))),
            "scale_a": In(FP32.bits),
            "scale_b": In(FP32.bits),
            "nan": Out(1),
        })

    acc_bits = property(lambda self: self._acc_bits)
    lsb_exponent = property(lambda self: self._lsb_exponent)
    lanes = property(lambda self: self._lanes)

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its result on ``o`` (``o.valid``), when not held."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        m.submodules.scale_mul = scale_mul = FP32Multiply(flush=False)
        scale = Signal(FP32.bits)
        m.d.comb += [scale_mul.a.eq(self.scale_a), scale_mul.b.eq(self.scale_b)]
        m.d.sync += scale.eq(scale_mul.y)

        valid1, valid2 = Signal(), Signal()
        x1 = Signal(data.ArrayLayout(FP32.bits, self._lanes))
        y2 = Signal(data.ArrayLayout(FP32.bits, self._lanes))
        nan2 = Signal()
        advance2 = ~valid2 | self.o.ready
        advance1 = ~valid1 | advance2
        nans = []
        for lane in range(self._lanes):
            m.submodules[f"to_fp32_{lane}"] = to_fp32 = IntToFP32(self._acc_bits, self._lsb_exponent)
            m.submodules[f"mul_{lane}"] = mul = FP32Multiply(flush=True)
            m.d.comb += [to_fp32.value.eq(self.i.payload[lane]), mul.a.eq(x1[lane]), mul.b.eq(scale)]
            with m.If(advance1):
                m.d.sync += x1[lane].eq(to_fp32.y)
            with m.If(advance2):
                m.d.sync += y2[lane].eq(mul.y)
            nans.append(mul.nan)
        with m.If(advance1):
            m.d.sync += valid1.eq(self.i.valid)
        with m.If(advance2):
            m.d.sync += [valid2.eq(valid1), nan2.eq(valid1 & sum_or(nans))]
        m.d.comb += [
            self.i.ready.eq(advance1),
            self.o.valid.eq(valid2),
            self.o.payload.eq(y2),
            self.nan.eq(valid2 & nan2),
        ]
        return m


def sum_or(bits):
    result = bits[0]
    for bit in bits[1:]:
        result = result | bit
    return result
