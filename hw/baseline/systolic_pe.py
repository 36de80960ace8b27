"""A baseline PE with the MLS PE's systolic port style (``hw.pe.MLSPE``), for fair comparisons.

Same ports, control and pipeline as ``MLSPE``: ``a_in``/``b_in``/``ctl_in`` in, forwarded one
cycle later on ``a_out``/``b_out``/``ctl_out``; stage 1 registers the product, stage 2 is the
accumulator with the ``first``/``last`` tile protocol and a result register (double buffer), so
``latency == 2`` and the register overhead matches the MLS PE's. Only the operand shapes and the
arithmetic differ. ``overflow`` is always 0 (the float accumulators saturate to Inf, the INT32 one
wraps; see ``model.baseline_arith``).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from model.baseline_arith import INT8_BITS, INT8_MAX_K_EXACT, INT32_ACC_BITS
from model.floats import FP32, fp8_format

from ..pe.signature import PEFactory, PESignature, control_layout
from .fp8_mul import FP8Multiplier
from .fp32_add import FP32Adder
from .fp32_mul import FP32Multiplier
from .int_mul import IntMultiplier
from .layout import float_layout

__all__ = ["BaselinePE", "BaselinePEFactory", "KINDS", "baseline_pe_signature"]

KINDS = ("fp32", "fp8", "int8")
_INT_BITS, _INT_ACC = INT8_BITS, INT32_ACC_BITS


def baseline_pe_signature(kind: str, fmt_a: str = "e4m3", fmt_b: str = "e4m3") -> PESignature:
    """The ``PESignature`` of ``BaselinePE(kind, fmt_a, fmt_b)``: FP32 or FP8 codes (IEEE bit
    order) or INT8 operands; an FP32 word or a wrapping INT32 result."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "fp32":
        return PESignature(float_layout(FP32), float_layout(FP32), float_layout(FP32))
    if kind == "fp8":
        return PESignature(float_layout(fp8_format(fmt_a)), float_layout(fp8_format(fmt_b)), float_layout(FP32))
    return PESignature(signed(_INT_BITS), signed(_INT_BITS), signed(_INT_ACC))


class BaselinePE(wiring.Component):
    """Output-stationary baseline PE, drop-in port style of ``MLSPE``.

    ``hw.array.SystolicArray(pe="fp32" | "fp8-e4m3" | ... | "int8")`` builds its array of these.

    Parameters
    ----------
    kind : "fp32" | "fp8" | "int8"
    fmt_a, fmt_b : FP8 formats for ``kind="fp8"`` ("e4m3" or "e5m2").

    Members
    -------
    ``PESignature(shape_a, shape_b, result shape)``, as ``MLSPE``:
    a_in, b_in : In(operand shape); ctl_in : In(control_layout())
    a_out, b_out, ctl_out : Out(...), the inputs one cycle later
    result : Out(float_layout(FP32) or signed(32)); overflow : Out(1) (always 0); done : Out(1)
    """

    LATENCY = 2

    def __init__(self, kind: str = "fp32", fmt_a: str = "e4m3", fmt_b: str = "e4m3"):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        signature = baseline_pe_signature(kind, fmt_a, fmt_b)
        self.kind = kind
        if kind == "fp8":
            self.fmt_a, self.fmt_b = fp8_format(fmt_a), fp8_format(fmt_b)
        super().__init__(signature)
        del self._MustUse__silence

    @property
    def latency(self) -> int:
        """Cycles from an operand pair at the inputs to ``result`` holding it (as ``MLSPE``)."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        if self.kind == "fp32":
            m.submodules.mul = mul = FP32Multiplier()
        elif self.kind == "fp8":
            m.submodules.mul = mul = FP8Multiplier(self.fmt_a, self.fmt_b)
        else:
            m.submodules.mul = mul = IntMultiplier(_INT_BITS)
        m.d.comb += [mul.a.eq(self.a_in), mul.b.eq(self.b_in)]

        # Stage 1: the product and its control.
        product = Signal.like(mul.o)
        ctl = Signal(control_layout())
        m.d.sync += [product.eq(mul.o), ctl.eq(self.ctl_in)]

        # Stage 2: accumulate; `first` restarts from the product, `last` copies into `result`.
        acc = Signal.like(self.result)
        if self.kind == "int8":
            total = Signal.like(self.result)
            m.d.comb += total.eq(Mux(ctl.first, 0, acc) + product)   # wraps modulo 2^32
        else:
            m.submodules.add = add = FP32Adder()
            total = Signal(float_layout(FP32))
            m.d.comb += [add.a.eq(acc), add.b.eq(product),
                         total.eq(Mux(ctl.first, product.as_value(), add.o.as_value()))]
        m.d.sync += self.done.eq(ctl.valid & ctl.last)
        with m.If(ctl.valid):
            m.d.sync += acc.eq(total)
            with m.If(ctl.last):
                m.d.sync += self.result.eq(total)

        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), self.ctl_out.eq(self.ctl_in)]
        return m


@dataclass(frozen=True)
class BaselinePEFactory(PEFactory):
    """``BaselinePE(kind, fmt_a, fmt_b)`` for each position of a ``SystolicArray``.

    ``fmt_a`` and ``fmt_b`` are the FP8 formats of ``kind="fp8"`` (``"e4m3"`` or ``"e5m2"``) and
    None otherwise. ``name`` is the array's name of the kind: ``"fp32"``, ``"int8"``,
    ``"fp8-<a>"`` when both formats agree, else ``"fp8-<a>-<w>"`` (``hw.array.PE_KINDS``).
    """

    kind: str
    fmt_a: str | None = None
    fmt_b: str | None = None

    def __post_init__(self):
        if (self.kind == "fp8") != (self.fmt_a is not None and self.fmt_b is not None):
            raise ValueError(f"fmt_a and fmt_b are the FP8 formats of kind='fp8' only, got kind={self.kind!r}, "
                             f"fmt_a={self.fmt_a!r}, fmt_b={self.fmt_b!r}")
        baseline_pe_signature(*self._pe_args)   # validates kind and formats

    @property
    def _pe_args(self) -> tuple:
        return (self.kind, self.fmt_a or "e4m3", self.fmt_b or "e4m3")

    @property
    def name(self) -> str:
        if self.kind != "fp8":
            return self.kind
        return f"fp8-{self.fmt_a}" if self.fmt_a == self.fmt_b else f"fp8-{self.fmt_a}-{self.fmt_b}"

    @property
    def formats(self) -> tuple:
        """``(kind, A format, W format)``, the formats None unless ``kind="fp8"``."""
        return (self.kind, self.fmt_a, self.fmt_b)

    @property
    def signature(self) -> PESignature:
        return baseline_pe_signature(*self._pe_args)

    @property
    def latency(self) -> int:
        return BaselinePE.LATENCY

    def exact(self, max_k: int) -> bool:
        """Never for a rounding float accumulator; for INT8 while the INT32 sum cannot wrap
        (K <= ``model.baseline_arith.INT8_MAX_K_EXACT``)."""
        return self.kind == "int8" and max_k <= INT8_MAX_K_EXACT

    def __call__(self) -> BaselinePE:
        return BaselinePE(*self._pe_args)
