"""Proof that ``hw.pe.accumulator.Accumulator`` saturates and keeps its sticky flag as specified.

The specification (docs/numerics.md §3 and §3.1, the accumulator's docstring): on a valid cycle the exact sum
``(first ? 0 : acc) + value`` is kept if it fits in ``acc_bits`` signed bits and replaced by the
rail of its sign otherwise; the sticky flag is set by a saturating add and cleared only by
``first``; on ``last`` the new sum and flag are copied to ``result``/``overflow``; ``done``
pulses one cycle after a valid ``last``. The shadow model below is written from that text with
a representability test (``spec.sat_add_spec``), not from the RTL's comparisons.

The proof is k-induction: the wrapper asserts that the RTL's state (``acc``, the internal sticky
register, ``result``, ``overflow``, ``done``) equals the shadow model's in every cycle, which is
1-inductive, so the result holds for every input sequence of any length.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.hdl import Assert, Assume, Cover, ResetSignal
from amaranth.hdl._ir import Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from hw.pe.accumulator import Accumulator

from .internal import internal_signal
from .spec import sat_add_spec

__all__ = ["AccumulatorWrapper", "WRONG_SPECS"]

#: Deliberately false variants of the specification that the proof must reject.
WRONG_SPECS = ("not_sticky", "wrap")


class AccumulatorWrapper(wiring.Component):
    def __init__(self, in_bits: int, acc_bits: int, *, wrong_spec: str | None = None):
        if wrong_spec not in (None, *WRONG_SPECS):
            raise ValueError(f"wrong_spec must be None or one of {WRONG_SPECS}, got {wrong_spec!r}")
        self._in_bits, self._acc_bits, self._wrong_spec = in_bits, acc_bits, wrong_spec
        super().__init__({"value": In(signed(in_bits)), "valid": In(1), "first": In(1), "last": In(1)})

    def elaborate(self, platform):
        m = Module()
        acc = Accumulator(self._in_bits, self._acc_bits)
        fragment = Fragment.get(acc, platform)
        sticky = internal_signal(fragment, "sticky")
        m.submodules.acc = fragment
        m.d.comb += [acc.value.eq(self.value), acc.valid.eq(self.valid),
                     acc.first.eq(self.first), acc.last.eq(self.last), Assume(~ResetSignal())]

        n = self._acc_bits
        spec_acc, spec_result = Signal(signed(n)), Signal(signed(n))
        spec_sticky, spec_overflow, spec_done = Signal(), Signal(), Signal()
        base = Mux(self.first, 0, spec_acc)
        total, saturated, overflowed = sat_add_spec(base, self.value, n)
        if self._wrong_spec == "wrap":
            saturated = total[:n].as_signed()
        new_sticky = overflowed | (spec_sticky & ~self.first)
        if self._wrong_spec == "not_sticky":
            new_sticky = overflowed
        m.d.sync += spec_done.eq(self.valid & self.last)
        with m.If(self.valid):
            m.d.sync += [spec_acc.eq(saturated), spec_sticky.eq(new_sticky)]
            with m.If(self.last):
                m.d.sync += [spec_result.eq(saturated), spec_overflow.eq(new_sticky)]
        m.d.comb += [
            Assert(acc.acc == spec_acc, "running sum"),
            Assert(sticky == spec_sticky, "sticky flag"),
            Assert(acc.result == spec_result, "result register"),
            Assert(acc.overflow == spec_overflow, "overflow flag of the finished tile"),
            Assert(acc.done == spec_done, "done pulse"),
            # Reachability (checked in cover mode): both rails and a cleared flag occur.
            Cover(acc.overflow & (acc.result == (1 << (n - 1)) - 1)),
            Cover(acc.overflow & (acc.result == -(1 << (n - 1)))),
            Cover(acc.done & ~acc.overflow & (acc.result != 0)),
        ]
        return m
