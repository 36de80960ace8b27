"""The same-lane FP8 baseline (docs/numerics.md §3.1): L exact FP8 products per beat, one exact adder tree,
one FP32 accumulator add with a single rounding."""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from model.baseline_arith import FP32_NEG_ZERO, fp8_dot_max_product, fp8_dot_product_lsb
from model.floats import FP32, FloatFormat, fp8_format

from ..pe.adder_tree import AdderTree
from ..pe.dot_pe import MLSDotPE
from ..pe.signature import PESignature, control_layout
from .fp8_fixed_mul import FP8FixedMultiplier
from .fp32_wide_add import FP32WideAdder
from .layout import float_layout

__all__ = ["FP8DotPE", "fp8_dot_pe_signature"]


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {limit}, got {value}")
    return int(value)


def fp8_dot_pe_signature(fmt_a: FloatFormat | str, fmt_w: FloatFormat | str, lanes: int) -> PESignature:
    """The ``PESignature`` of ``FP8DotPE(fmt_a, fmt_w, lanes)``: a beat of ``lanes`` FP8 codes per
    operand (``ArrayLayout`` of ``float_layout``, lane 0 at the LSB end), an FP32 result."""
    fa, fw = fp8_format(fmt_a), fp8_format(fmt_w)
    lanes = _check_int("lanes", lanes, 1, FP8DotPE.MAX_LANES)
    return PESignature(data.ArrayLayout(float_layout(fa), lanes), data.ArrayLayout(float_layout(fw), lanes),
                       float_layout(FP32))


class FP8DotPE(wiring.Component):
    """Output-stationary FP8 dot-product PE: ``acc <- fp32_rne(acc + Σ_l a_l·w_l)`` per beat.

    The golden model is ``model.baseline_arith.fp8_dot_mac`` (E4M3 / E5M2 / mixed, FP8
    subnormals kept, DAZ accumulator, canonical NaN, one rounding per beat). Per lane an
    ``FP8FixedMultiplier`` forms the exact product as an integer on one common LSB
    (``2^fp8_dot_product_lsb``); an ``AdderTree`` sums the lanes exactly; an ``FP32WideAdder``
    adds the exact sum to the accumulator with one normalization and one rounding. The lanes'
    special cases (NaN, ±Inf, all -0) travel beside the sum as four flags.

    Same ports, control and pipeline as ``hw.pe.MLSDotPE``, so it drops into the same array: the
    lane products register (1 cycle), the tree registers every ``tree_levels_per_stage`` levels
    (``tree_latency`` cycles, 0 for one lane), the wide add and the accumulator share the last
    cycle (1): ``latency = 2 + tree_latency``. A tile's ``first`` beat is added to -0 (the
    additive identity), its ``last`` beat copies the sum into ``result`` and pulses ``done``.
    ``overflow`` is always 0 (no FP8 beat can overflow FP32; see docs/numerics.md). A padding
    lane must carry zero codes.

    Parameters
    ----------
    fmt_a, fmt_w : FloatFormat or str
        ``"e4m3"`` or ``"e5m2"`` (a mix serves the E4M3 x E5M2 backward GEMMs).
    lanes : int
        Operand pairs per beat, in [1, 1024].
    tree_levels_per_stage : int, keyword-only
        Adder levels between two tree registers (default 2, as ``MLSDotPE``).

    Members
    -------
    ``fp8_dot_pe_signature(fmt_a, fmt_w, lanes)``:
    a_in : In(ArrayLayout(float_layout(fmt_a), lanes)); b_in : In(ArrayLayout(float_layout(fmt_w), lanes))
    ctl_in : In(control_layout())
    a_out, b_out, ctl_out : Out(...), the inputs one cycle later
    result : Out(float_layout(FP32)); overflow : Out(1) (always 0); done : Out(1)
    """

    MAX_LANES = AdderTree.MAX_LANES

    def __init__(self, fmt_a: FloatFormat | str = "e4m3", fmt_w: FloatFormat | str = "e4m3", lanes: int = 1, *,
                 tree_levels_per_stage: int = 2):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._fmt_a, self._fmt_w = fp8_format(fmt_a), fp8_format(fmt_w)
        self._lanes = _check_int("lanes", lanes, 1, self.MAX_LANES)
        self._tree_levels_per_stage = _check_int("tree_levels_per_stage", tree_levels_per_stage, 1)
        super().__init__(fp8_dot_pe_signature(self._fmt_a, self._fmt_w, self._lanes))
        del self._MustUse__silence

    @property
    def fmt_a(self) -> FloatFormat:
        return self._fmt_a

    @property
    def fmt_w(self) -> FloatFormat:
        return self._fmt_w

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def tree_levels_per_stage(self) -> int:
        return self._tree_levels_per_stage

    @property
    def product_lsb(self) -> int:
        """Exponent of the LSB of every lane product and of the beat sum
        (``model.baseline_arith.fp8_dot_product_lsb``: -18, -25 or -32)."""
        return fp8_dot_product_lsb(self._fmt_a, self._fmt_w)

    @property
    def max_product(self) -> int:
        """Largest finite lane-product magnitude in LSB units (``fp8_dot_max_product``)."""
        return fp8_dot_max_product(self._fmt_a, self._fmt_w)

    @property
    def product_bits(self) -> int:
        """Signed lane product, exact (37 bits for E4M3 x E4M3, 65 for E5M2 x E5M2)."""
        return 1 + self.max_product.bit_length()

    @property
    def tree_bits(self) -> int:
        """Signed exact beat sum: holds ``±lanes·max|p_l|``."""
        return 1 + (self._lanes * self.max_product).bit_length()

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
        m.submodules.tree = tree = AdderTree(lanes, self.max_product, self._tree_levels_per_stage)
        m.submodules.add = add = FP32WideAdder(tree.sum_bits, self.product_lsb)
        assert tree.sum_bits == self.tree_bits and tree.latency == self.tree_latency

        # Stage 1: every lane's exact product and the beat's special-case flags, registered.
        lane_products = Signal(data.ArrayLayout(signed(self.product_bits), lanes))
        flags = {name: [] for name in ("nan", "pos_inf", "neg_inf", "neg_zero")}
        for lane in range(lanes):
            m.submodules[f"mul{lane}"] = mul = FP8FixedMultiplier(self._fmt_a, self._fmt_w)
            m.d.comb += [mul.a.eq(self.a_in[lane]), mul.w.eq(self.b_in[lane])]
            m.d.sync += lane_products[lane].eq(mul.product)
            for name, values in flags.items():
                values.append(getattr(mul, name))
        beat_flags = Signal(data.StructLayout({name: 1 for name in flags}), name="flags_s1")
        m.d.sync += [
            beat_flags.nan.eq(reduce(operator.or_, flags["nan"])),
            beat_flags.pos_inf.eq(reduce(operator.or_, flags["pos_inf"])),
            beat_flags.neg_inf.eq(reduce(operator.or_, flags["neg_inf"])),
            beat_flags.neg_zero.eq(reduce(operator.and_, flags["neg_zero"])),   # every lane -0
        ]
        m.d.comb += tree.inputs.eq(lane_products)

        # The flags and the control follow the products: stage 1, then the tree's registers.
        ctl = Signal(control_layout(), name="ctl_s1")
        m.d.sync += ctl.eq(self.ctl_in)
        for stage in range(tree.latency):
            flags_next = Signal.like(beat_flags, name=f"flags_s{stage + 2}")
            ctl_next = Signal(control_layout(), name=f"ctl_s{stage + 2}")
            m.d.sync += [flags_next.eq(beat_flags), ctl_next.eq(ctl)]
            beat_flags, ctl = flags_next, ctl_next

        # Last stage: acc + exact sum, one rounding; `first` adds to -0 (the additive identity).
        acc = Signal(float_layout(FP32))
        m.d.comb += [
            add.acc.eq(Mux(ctl.first, FP32_NEG_ZERO, acc.as_value())), add.sum.eq(tree.sum),
            add.nan.eq(beat_flags.nan), add.pos_inf.eq(beat_flags.pos_inf),
            add.neg_inf.eq(beat_flags.neg_inf), add.neg_zero.eq(beat_flags.neg_zero),
        ]
        m.d.sync += self.done.eq(ctl.valid & ctl.last)
        with m.If(ctl.valid):
            m.d.sync += acc.eq(add.o)
            with m.If(ctl.last):
                m.d.sync += self.result.eq(add.o)

        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), self.ctl_out.eq(self.ctl_in)]
        return m
