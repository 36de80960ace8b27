"""The MLS dot-product PE (docs/numerics.md §3.1): L exact lane products, one adder tree, one group
shift and one wide saturating add per beat."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring

from model.formats import MLSFormat

from .accumulator import Accumulator
from .adder_tree import AdderTree
from .elem_aligner import ElementAligner
from .group_shifter import GroupShifter
from .layout import beat_layout, field_width
from .sig_mul import SignificandMultiplier
from .signature import PEFactory, PESignature, control_layout

__all__ = ["MLSDotPE", "MLSDotPEFactory"]


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {limit}, got {value}")
    return int(value)


class MLSDotPE(wiring.Component):
    """Output-stationary MLS PE that takes one beat of ``lanes`` element pairs per cycle.

    A beat carries ``lanes`` elements of A and of W from one chunk and the chunk's group
    exponents ``g_a``, ``g_w``. Per lane a ``SignificandMultiplier`` and an ``ElementAligner``
    form ``p_l = ±sig_a·sig_w·2^((max(e_a,1)-1)+(max(e_w,1)-1))`` (element exponents only);
    an ``AdderTree`` sums them exactly into ``T``; a ``GroupShifter`` shifts ``T`` once by
    ``(2^G_a-1-g_a)+(2^G_w-1-g_w)``; the ``Accumulator`` adds that and saturates after the beat
    (sticky overflow flag). With an exact accumulator the result is the ``C_int`` of docs/numerics.md §3, for
    any chunking; a padding lane must carry a zero element (the host's beat packer does that).

    Pipeline: the lane products register (1 cycle), the tree registers every
    ``tree_levels_per_stage`` levels (``tree_latency`` cycles, 0 for one lane), the group shift
    and the wide add share the accumulator cycle (1). ``latency = 2 + tree_latency``; at
    ``lanes = 1`` this is the scalar ``MLSPE``'s 2.

    Parameters
    ----------
    fmt_a, fmt_w : MLSFormat or str
        Element formats of A (travels right) and W (travels down); they may differ.
    lanes : int
        Element pairs per beat, in [1, 1024].
    acc_bits : int
        Accumulator width in [2, 256]; narrower than ``fmt_a.acc_bits_exact(K, fmt_w)``
        saturates after each beat's add.
    tree_levels_per_stage : int, keyword-only
        Adder levels between two tree registers (default 2).

    Members
    -------
    ``PESignature(beat_layout(fmt_a, lanes), beat_layout(fmt_w, lanes), signed(acc_bits))``:
    a_in : In(beat_layout(fmt_a, lanes)); b_in : In(beat_layout(fmt_w, lanes)); ctl_in : In(control_layout())
        One beat: ``elems[l]`` is lane ``l``, ``g`` the chunk's group exponent.
    a_out, b_out, ctl_out : Out(...)
        The inputs, one cycle later (systolic forwarding).
    result : Out(signed(acc_bits)); overflow : Out(1); done : Out(1)
        As ``MLSPE``: the last finished tile, ``latency`` cycles after its ``last`` beat.
    """

    MAX_LANES = AdderTree.MAX_LANES

    def __init__(self, fmt_a, fmt_w, lanes: int, acc_bits: int, *, tree_levels_per_stage: int = 2):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._fmt_a, self._fmt_w = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
        self._lanes = _check_int("lanes", lanes, 1, self.MAX_LANES)
        self._acc_bits = _check_int("acc_bits", acc_bits, 2, 256)
        self._tree_levels_per_stage = _check_int("tree_levels_per_stage", tree_levels_per_stage, 1)
        super().__init__(PESignature(beat_layout(self._fmt_a, self._lanes), beat_layout(self._fmt_w, self._lanes),
                                     signed(self._acc_bits)))
        del self._MustUse__silence

    # -- parameters -----------------------------------------------------------------------
    @property
    def fmt_a(self) -> MLSFormat:
        return self._fmt_a

    @property
    def fmt_w(self) -> MLSFormat:
        return self._fmt_w

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def tree_levels_per_stage(self) -> int:
        return self._tree_levels_per_stage

    # -- widths, all from model.formats.MLSFormat ----------------------------------------
    @property
    def sig_product_bits(self) -> int:
        """Unsigned significand product of one lane, ``sig_bits_a + sig_bits_w``."""
        return self._fmt_a.sig_product_bits(self._fmt_w)

    @property
    def elem_shift_max(self) -> int:
        """Largest element shift of a lane, ``(2^E_a - 2) + (2^E_w - 2)``."""
        return self._fmt_a.elem_product_shift_max(self._fmt_w)

    @property
    def product_bits(self) -> int:
        """Signed lane product ``p_l`` (element shift only)."""
        return self._fmt_a.elem_product_bits(self._fmt_w)

    @property
    def tree_bits(self) -> int:
        """Signed beat sum ``T``: holds ``±lanes·max|p_l|``."""
        return self._fmt_a.beat_sum_bits(self._lanes, self._fmt_w)

    @property
    def group_shift_max(self) -> int:
        """Largest group shift, ``(2^G_a - 1) + (2^G_w - 1)``."""
        return self._fmt_a.group_shift_max(self._fmt_w)

    @property
    def beat_bits(self) -> int:
        """Signed shifted beat sum, the accumulator's input: ``fmt_a.acc_bits_exact(lanes, fmt_w)``."""
        return self.tree_bits + self.group_shift_max

    # -- timing -----------------------------------------------------------------------------
    @property
    def tree_latency(self) -> int:
        """Tree register stages, ``ceil(ceil(log2 lanes) / tree_levels_per_stage)``."""
        return AdderTree.latency_for(self._lanes, self._tree_levels_per_stage)

    @staticmethod
    def latency_for(lanes: int, tree_levels_per_stage: int = 2) -> int:
        """Latency of an ``lanes``-lane dot-product PE (this one, and the same-lane FP8/INT8
        baselines, which share the pipeline): the lane product register, the adder tree's
        registers and the accumulator register. The formats do not enter."""
        return 1 + AdderTree.latency_for(lanes, tree_levels_per_stage) + 1

    @property
    def latency(self) -> int:
        """Cycles from a beat at the inputs to ``result`` holding it (``last`` beat): ``latency_for``."""
        return self.latency_for(self._lanes, self._tree_levels_per_stage)

    def elaborate(self, platform):
        m = Module()
        fmt_a, fmt_w, lanes = self._fmt_a, self._fmt_w, self._lanes
        m.submodules.tree = tree = AdderTree(lanes, ElementAligner.max_magnitude(fmt_a, fmt_w),
                                             self._tree_levels_per_stage)
        m.submodules.group_shift = shifter = GroupShifter(fmt_a, fmt_w, tree.sum_bits)
        m.submodules.acc = acc = Accumulator(shifter.out_bits, self._acc_bits)
        assert tree.sum_bits == self.tree_bits and tree.latency == self.tree_latency
        assert shifter.out_bits == self.beat_bits

        # Stage 1: every lane's exact product (element exponents only), registered.
        lane_products = Signal(data.ArrayLayout(signed(self.product_bits), lanes))
        for lane in range(lanes):
            mul = SignificandMultiplier(fmt_a, fmt_w)
            align = ElementAligner(fmt_a, fmt_w)
            m.submodules[f"mul{lane}"], m.submodules[f"align{lane}"] = mul, align
            a_elem, w_elem = self.a_in.elems[lane], self.b_in.elems[lane]
            m.d.comb += [
                mul.a.eq(a_elem), mul.b.eq(w_elem),
                align.product.eq(mul.product), align.sign.eq(mul.sign),
                align.a_exp.eq(a_elem.exp), align.w_exp.eq(w_elem.exp),
            ]
            m.d.sync += lane_products[lane].eq(align.value)
        m.d.comb += tree.inputs.eq(lane_products)

        # The beat's group exponents and control follow its products: stage 1, then the tree.
        g_a, g_w, ctl = self.a_in.g, self.b_in.g, self.ctl_in
        for stage in range(1 + tree.latency):
            g_a_next = Signal(field_width(fmt_a.group_bits), name=f"g_a_s{stage + 1}")
            g_w_next = Signal(field_width(fmt_w.group_bits), name=f"g_w_s{stage + 1}")
            ctl_next = Signal(control_layout(), name=f"ctl_s{stage + 1}")
            m.d.sync += [g_a_next.eq(g_a), g_w_next.eq(g_w), ctl_next.eq(ctl)]
            g_a, g_w, ctl = g_a_next, g_w_next, ctl_next

        # Last stage: one group shift of the beat sum, one wide saturating add.
        m.d.comb += [
            shifter.value.eq(tree.sum), shifter.g_a.eq(g_a), shifter.g_w.eq(g_w),
            acc.value.eq(shifter.shifted), acc.valid.eq(ctl.valid), acc.first.eq(ctl.first), acc.last.eq(ctl.last),
            self.result.eq(acc.result), self.overflow.eq(acc.overflow), self.done.eq(acc.done),
        ]
        # Systolic forwarding.
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), self.ctl_out.eq(self.ctl_in)]
        return m


@dataclass(frozen=True)
class MLSDotPEFactory(PEFactory):
    """``MLSDotPE(fmt_a, fmt_w, lanes, acc_bits)`` for each position of a ``SystolicArray``
    (``SystolicArray(fmt, ..., lanes=L)``, or mixed formats).

    Parameters are validated as ``MLSDotPE`` validates them, when the factory is made.
    ``exact(max_k)``: the accumulator holds every sum of ``max_k`` products
    (``fmt_a.acc_bits_exact(max_k, fmt_w)``; zero padding lanes add nothing).
    """

    fmt_a: MLSFormat
    fmt_w: MLSFormat
    lanes: int
    acc_bits: int
    tree_levels_per_stage: int = 2
    name = "mls"

    def __post_init__(self):
        object.__setattr__(self, "fmt_a", MLSFormat.parse(self.fmt_a))
        object.__setattr__(self, "fmt_w", MLSFormat.parse(self.fmt_w))
        object.__setattr__(self, "lanes", _check_int("lanes", self.lanes, 1, MLSDotPE.MAX_LANES))
        object.__setattr__(self, "acc_bits", _check_int("acc_bits", self.acc_bits, 2, 256))
        object.__setattr__(self, "tree_levels_per_stage",
                           _check_int("tree_levels_per_stage", self.tree_levels_per_stage, 1))

    @property
    def fmt(self) -> MLSFormat | None:
        """The element format of both operands, or None when A and W differ."""
        return self.fmt_a if self.fmt_a == self.fmt_w else None

    @property
    def signature(self) -> PESignature:
        return PESignature(beat_layout(self.fmt_a, self.lanes), beat_layout(self.fmt_w, self.lanes),
                           signed(self.acc_bits))

    @property
    def tree_bits(self) -> int:
        """Signed width of the beat sum ``T`` (``MLSDotPE.tree_bits``)."""
        return self.fmt_a.beat_sum_bits(self.lanes, self.fmt_w)

    @property
    def tree_latency(self) -> int:
        return AdderTree.latency_for(self.lanes, self.tree_levels_per_stage)

    @property
    def latency(self) -> int:
        """``MLSDotPE.latency``: lane products, the tree registers, the accumulator."""
        return MLSDotPE.latency_for(self.lanes, self.tree_levels_per_stage)

    def exact(self, max_k: int) -> bool:
        return self.acc_bits >= self.fmt_a.acc_bits_exact(max_k, self.fmt_w)

    def __call__(self) -> MLSDotPE:
        return MLSDotPE(self.fmt_a, self.fmt_w, self.lanes, self.acc_bits,
                        tree_levels_per_stage=self.tree_levels_per_stage)
