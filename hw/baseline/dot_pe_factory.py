"""``PEFactory`` of the same-lane FP8 / INT8 dot-product baselines (``FP8DotPE``, ``INT8DotPE``),
so ``hw.array.SystolicArray(pe="fp8-e4m3", lanes=L)`` builds their array exactly as it builds the
L-lane MLS array: the same ports, control, skew and drain; only the operand shapes (L codes per
beat, no group exponent) and the arithmetic differ (docs/numerics.md §3.1)."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import wiring

from ..pe.adder_tree import AdderTree
from ..pe.signature import PESignature
from .fp8_dot_pe import FP8DotPE, fp8_dot_pe_signature
from .int8_dot_pe import INT8DotPE, int8_dot_pe_signature
from .systolic_pe import BaselinePEFactory

__all__ = ["BaselineDotPEFactory", "DOT_KINDS"]

#: Baseline kinds that have a dot-product PE; the FP32 baseline stays the scalar multiply-add PE.
DOT_KINDS = ("fp8", "int8")


@dataclass(frozen=True)
class BaselineDotPEFactory(BaselinePEFactory):
    """``FP8DotPE(fmt_a, fmt_b, lanes)`` (``kind="fp8"``) or ``INT8DotPE(lanes)`` (``"int8"``) for
    each position of a ``SystolicArray``. ``name`` and ``formats`` are those of the scalar kind
    (``"fp8-e4m3"``, ``"int8"``, ...); ``lanes`` says how many operand pairs a beat carries.
    ``exact``: as the scalar kind (INT8 while the INT32 sum cannot wrap; never for FP32 sums)."""

    lanes: int = 1
    tree_levels_per_stage: int = 2

    def __post_init__(self):
        if self.kind not in DOT_KINDS:
            raise ValueError(f"a dot-product baseline is one of {', '.join(DOT_KINDS)} (the FP32 baseline is the "
                             f"scalar multiply-add PE), got kind={self.kind!r}")
        super().__post_init__()
        self.signature   # validates lanes as the PE does  # noqa: B018
        if isinstance(self.tree_levels_per_stage, bool) or not isinstance(self.tree_levels_per_stage, int) \
                or self.tree_levels_per_stage < 1:
            raise ValueError(f"tree_levels_per_stage must be an int >= 1, got {self.tree_levels_per_stage!r}")

    @property
    def signature(self) -> PESignature:
        if self.kind == "fp8":
            return fp8_dot_pe_signature(self.fmt_a, self.fmt_b, self.lanes)
        return int8_dot_pe_signature(self.lanes)

    @property
    def tree_latency(self) -> int:
        return AdderTree.latency_for(self.lanes, self.tree_levels_per_stage)

    @property
    def latency(self) -> int:
        """As ``FP8DotPE.latency`` / ``INT8DotPE.latency``: lane products, tree registers, accumulator."""
        return 2 + self.tree_latency

    def __call__(self) -> wiring.Component:
        if self.kind == "fp8":
            return FP8DotPE(self.fmt_a, self.fmt_b, self.lanes, tree_levels_per_stage=self.tree_levels_per_stage)
        return INT8DotPE(self.lanes, tree_levels_per_stage=self.tree_levels_per_stage)
