"""A baseline PE with the MLS PE's systolic port style (``hw.pe.MLSPE``), for fair comparisons.

Same ports, control and pipeline as ``MLSPE``: ``a_in``/``b_in``/``ctl_in`` in, forwarded one
cycle later on ``a_out``/``b_out``/``ctl_out``; stage 1 registers the product, stage 2 is the
accumulator with the ``first``/``last`` tile protocol and a result register (double buffer), so
``latency == 2`` and the register overhead matches the MLS PE's. Only the operand shapes and the
arithmetic differ. ``overflow`` is always 0 (the float accumulators saturate to Inf, the INT32 one
wraps; see ``model.baseline_arith``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from model.baseline_arith import FP32, float_format

from ..pe.signature import PESignature, control_layout

from .fp8_mul import FP8Multiplier
from .fp32_add import FP32Adder
from .fp32_mul import FP32Multiplier
from .int_mul import IntMultiplier
from .layout import float_layout

__all__ = ["BaselinePE", "KINDS"]

KINDS = ("fp32", "fp8", "int8")
_INT_BITS, _INT_ACC = 8, 32


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
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        if kind == "fp32":
            shape_a = shape_b = float_layout(FP32)
            acc = float_layout(FP32)
        elif kind == "fp8":
            self.fmt_a, self.fmt_b = float_format(fmt_a), float_format(fmt_b)
            shape_a, shape_b = float_layout(self.fmt_a), float_layout(self.fmt_b)
            acc = float_layout(FP32)
        else:
            shape_a = shape_b = signed(_INT_BITS)
            acc = signed(_INT_ACC)
        super().__init__(PESignature(shape_a, shape_b, acc))
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
