"""Saturating two's-complement accumulator with a sticky overflow flag and a result register."""

from __future__ import annotations

import operator

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    """Adds one signed value per valid cycle, k ascending, saturating after every add.

    Bit-exact with ``model.arith.accumulate``: ``total = acc + value`` exactly, then clamped to
    ``acc_bits``; the overflow flag is sticky within a tile. ``first`` restarts from 0 (the
    previous tile's sum is dropped); on ``last`` the new sum and flag are copied into
    ``result``/``overflow``, which hold until the next ``last`` (the double buffer that lets a
    tile drain while the next one accumulates). One register stage: ``latency == 1``.

    Members
    -------
    value : In(signed(in_bits))
    valid, first, last : In(1)
    acc : Out(signed(acc_bits))
        The running sum.
    result : Out(signed(acc_bits))
    overflow : Out(1)
    done : Out(1)
        One-cycle pulse: ``result`` was just updated.
    """

    def __init__(self, in_bits: int, acc_bits: int):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        in_bits, acc_bits = operator.index(in_bits), operator.index(acc_bits)
        if in_bits < 1:
            raise ValueError(f"in_bits must be at least 1, got {in_bits}")
        if not 2 <= acc_bits <= 256:
            raise ValueError(f"acc_bits must be in [2, 256], got {acc_bits}")
        self._in_bits, self._acc_bits = in_bits, acc_bits
        super().__init__({
            "value": In(signed(in_bits)),
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "acc": Out(signed(acc_bits)),
            "result": Out(signed(acc_bits)),
            "overflow": Out(1),
            "done": Out(1),
        })
        del self._MustUse__silence

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        width = max(self._acc_bits, self._in_bits) + 1
        lo, hi = -(1 << (self._acc_bits - 1)), (1 << (self._acc_bits - 1)) - 1
        sticky = Signal()
        total = Signal(signed(width))
        clamped = Signal(signed(self._acc_bits))
        over = Signal()
        m.d.comb += [
            total.eq(Mux(self.first, 0, self.acc) + self.value),
            over.eq((total > hi) | (total < lo)),
            clamped.eq(Mux(total > hi, hi, Mux(total < lo, lo, total))),
        ]
        flag = over | (sticky & ~self.first)
        m.d.sync += self.done.eq(self.valid & self.last)
        with m.If(self.valid):
            m.d.sync += [self.acc.eq(clamped), sticky.eq(flag)]
            with m.If(self.last):
                m.d.sync += [self.result.eq(clamped), self.overflow.eq(flag)]
        return m
