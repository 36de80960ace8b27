"""The same-lane INT8 baseline (docs/numerics.md §3.1): L INT8 products per beat, one exact adder tree,
one wrapping INT32 accumulator add."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from model.baseline_arith import INT8_BITS, INT8_MIN, INT32_ACC_BITS

from ..pe.adder_tree import AdderTree
from ..pe.dot_pe import MLSDotPE
from ..pe.signature import PESignature, control_layout
from .int_mul import IntMultiplier

__all__ = ["INT8DotPE", "int8_dot_pe_signature"]


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {limit}, got {value}")
    return int(value)


def int8_dot_pe_signature(lanes: int) -> PESignature:
    """The ``PESignature`` of ``INT8DotPE(lanes)``: ``lanes`` INT8 values per operand
    (``ArrayLayout(signed(8), lanes)``, lane 0 at the LSB end), a signed INT32 result."""
    lanes = _check_int("lanes", lanes, 1, INT8DotPE.MAX_LANES)
    return PESignature(data.ArrayLayout(signed(INT8_BITS), lanes), data.ArrayLayout(signed(INT8_BITS), lanes),
                       signed(INT32_ACC_BITS))


class INT8DotPE(wiring.Component):
    """Output-stationary INT8 dot-product PE: ``acc <- wrap32(acc + Σ_l a_l·w_l)`` per beat.

    The golden model is ``model.baseline_arith.int8_dot_mac``. Per lane an ``IntMultiplier``
    forms the exact 16-bit product; an ``AdderTree`` sums the lanes exactly (``tree_bits``,
    16 + ceil(log2 L) bits); one 32-bit add into the accumulator wraps modulo 2^32, as the
    scalar INT8 PE. Same ports, control and pipeline as ``hw.pe.MLSDotPE`` (``latency =
    2 + tree_latency``); ``first`` restarts the tile from the beat sum, ``last`` copies into
    ``result``; ``overflow`` is always 0 (the accumulator wraps).

    Parameters
    ----------
    lanes : int
        Operand pairs per beat, in [1, 1024].
    tree_levels_per_stage : int, keyword-only
        Adder levels between two tree registers (default 2).

    Members
    -------
    ``int8_dot_pe_signature(lanes)``:
    a_in, b_in : In(ArrayLayout(signed(8), lanes)); ctl_in : In(control_layout())
    a_out, b_out, ctl_out : Out(...), the inputs one cycle later
    result : Out(signed(32)); overflow : Out(1) (always 0); done : Out(1)
    """

    MAX_LANES = AdderTree.MAX_LANES
    #: Largest lane-product magnitude, (-128)·(-128).
    MAX_PRODUCT = INT8_MIN * INT8_MIN

    def __init__(self, lanes: int = 1, *, tree_levels_per_stage: int = 2):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._lanes = _check_int("lanes", lanes, 1, self.MAX_LANES)
        self._tree_levels_per_stage = _check_int("tree_levels_per_stage", tree_levels_per_stage, 1)
        super().__init__(int8_dot_pe_signature(self._lanes))
        del self._MustUse__silence

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def tree_levels_per_stage(self) -> int:
        return self._tree_levels_per_stage

    @property
    def tree_bits(self) -> int:
        """Signed exact beat sum: holds ``±lanes·2^14``."""
        return 1 + (self._lanes * self.MAX_PRODUCT).bit_length()

    @property
    def tree_latency(self) -> int:
        return AdderTree.latency_for(self._lanes, self._tree_levels_per_stage)

    @property
    def latency(self) -> int:
        """Cycles from a beat at the inputs to ``result`` holding it (``last`` beat): the
        pipeline of ``MLSDotPE.latency_for``."""
        return MLSDotPE.latency_for(self._lanes, self._tree_levels_per_stage)

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        m.submodules.tree = tree = AdderTree(lanes, self.MAX_PRODUCT, self._tree_levels_per_stage)
        assert tree.sum_bits == self.tree_bits and tree.latency == self.tree_latency

        # Stage 1: every lane's exact product, registered.
        lane_products = Signal(data.ArrayLayout(signed(tree.in_bits), lanes))
        for lane in range(lanes):
            m.submodules[f"mul{lane}"] = mul = IntMultiplier(INT8_BITS)
            m.d.comb += [mul.a.eq(self.a_in[lane]), mul.b.eq(self.b_in[lane])]
            m.d.sync += lane_products[lane].eq(mul.o)
        m.d.comb += tree.inputs.eq(lane_products)

        ctl = Signal(control_layout(), name="ctl_s1")
        m.d.sync += ctl.eq(self.ctl_in)
        for stage in range(tree.latency):
            ctl_next = Signal(control_layout(), name=f"ctl_s{stage + 2}")
            m.d.sync += ctl_next.eq(ctl)
            ctl = ctl_next

        # Last stage: one 32-bit add; assigning the wider sum to 32 bits wraps modulo 2^32.
        acc = Signal(signed(INT32_ACC_BITS))
        total = Signal(signed(INT32_ACC_BITS))
        m.d.comb += total.eq(Mux(ctl.first, 0, acc) + tree.sum)
        m.d.sync += self.done.eq(ctl.valid & ctl.last)
        with m.If(ctl.valid):
            m.d.sync += acc.eq(total)
            with m.If(ctl.last):
                m.d.sync += self.result.eq(total)

        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), self.ctl_out.eq(self.ctl_in)]
        return m
