"""The MLS processing element: significand multiplier, exponent adder, aligner, accumulator."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from amaranth import Module, Signal, signed
from amaranth.lib import wiring

from model.formats import MLSFormat

from .accumulator import Accumulator
from .aligner import Aligner
from .exp_add import ExponentAdder
from .layout import operand_layout
from .sig_mul import SignificandMultiplier
from .signature import PEFactory, PESignature, control_layout

__all__ = ["MLSPE", "MLSPEFactory", "mls_pe_signature"]


def _check_acc_bits(acc_bits) -> int:
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, int):
        raise TypeError(f"acc_bits must be an int, not {acc_bits!r}")
    if not 2 <= acc_bits <= 256:
        raise ValueError(f"acc_bits must be in [2, 256], got {acc_bits}")
    return operator.index(acc_bits)


def mls_pe_signature(fmt: MLSFormat, acc_bits: int) -> PESignature:
    """The ``PESignature`` of an MLS PE: one operand (element + g) each way, a signed sum."""
    return PESignature(operand_layout(fmt), operand_layout(fmt), signed(acc_bits))


class MLSPE(wiring.Component):
    """Output-stationary MLS PE with always-valid systolic ports (docs/hardware.md).

    Stage 1 registers the exact signed product ``int(a) * int(b)`` (multiply, exponent add,
    align); stage 2 is the saturating ``Accumulator``. The A operand and the control travel
    right through one register (``a_out``, ``ctl_out``), the B operand down (``b_out``), so a
    grid of PEs is a skewed systolic array.

    Parameters
    ----------
    fmt : MLSFormat or str
        Element format of both operands.
    acc_bits : int
        Accumulator width; narrower than ``fmt.acc_bits_exact(K)`` saturates with a sticky flag.

    Members
    -------
    ``PESignature(operand_layout(fmt), operand_layout(fmt), signed(acc_bits))``:
    a_in, b_in : In(operand_layout(fmt)); ctl_in : In(control_layout())
    a_out, b_out : Out(operand_layout(fmt)); ctl_out : Out(control_layout())
        The inputs, one cycle later.
    result : Out(signed(acc_bits)); overflow : Out(1)
        Sum and sticky overflow of the last finished tile; updated ``latency`` cycles after the
        ``last`` beat was at the inputs.
    done : Out(1)
        Pulse in the first cycle ``result`` holds a new tile.
    """

    def __init__(self, fmt, acc_bits: int):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._fmt, self._acc_bits = MLSFormat.parse(fmt), _check_acc_bits(acc_bits)
        super().__init__(mls_pe_signature(self._fmt, self._acc_bits))
        del self._MustUse__silence

    @property
    def fmt(self) -> MLSFormat:
        return self._fmt

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def product_bits(self) -> int:
        return Aligner.product_bits(self._fmt)

    #: Cycles from an operand pair at the inputs to ``result`` holding it (product + accumulator register).
    LATENCY = 2

    @property
    def latency(self) -> int:
        """``LATENCY``: the product register plus the accumulator register."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        m.submodules.mul = mul = SignificandMultiplier(fmt)
        m.submodules.exp_add = exp_add = ExponentAdder(fmt)
        m.submodules.align = align = Aligner(fmt)
        m.submodules.acc = acc = Accumulator(self.product_bits, self._acc_bits)

        m.d.comb += [
            mul.a.eq(self.a_in.elem), mul.b.eq(self.b_in.elem),
            exp_add.a_exp.eq(self.a_in.elem.exp), exp_add.b_exp.eq(self.b_in.elem.exp),
            exp_add.a_g.eq(self.a_in.g), exp_add.b_g.eq(self.b_in.g),
            align.product.eq(mul.product), align.sign.eq(mul.sign), align.shift.eq(exp_add.shift),
        ]
        # Stage 1: the exact product and its control.
        product = Signal(signed(self.product_bits))
        ctl = Signal(control_layout())
        m.d.sync += [product.eq(align.value), ctl.eq(self.ctl_in)]
        # Stage 2: accumulate.
        m.d.comb += [
            acc.value.eq(product), acc.valid.eq(ctl.valid), acc.first.eq(ctl.first), acc.last.eq(ctl.last),
            self.result.eq(acc.result), self.overflow.eq(acc.overflow), self.done.eq(acc.done),
        ]
        # Systolic forwarding.
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), self.ctl_out.eq(self.ctl_in)]
        return m


@dataclass(frozen=True)
class MLSPEFactory(PEFactory):
    """``MLSPE(fmt, acc_bits)`` for each position of a ``SystolicArray`` (``SystolicArray(pe="mls")``).

    ``fmt`` (an ``MLSFormat`` or its name) and ``acc_bits`` are validated as ``MLSPE`` does.
    """

    fmt: MLSFormat
    acc_bits: int
    name = "mls"

    def __post_init__(self):
        object.__setattr__(self, "fmt", MLSFormat.parse(self.fmt))
        object.__setattr__(self, "acc_bits", _check_acc_bits(self.acc_bits))

    @property
    def signature(self) -> PESignature:
        return mls_pe_signature(self.fmt, self.acc_bits)

    @property
    def latency(self) -> int:
        return MLSPE.LATENCY

    def exact(self, max_k: int) -> bool:
        """The accumulator holds every sum of ``max_k`` products (``fmt.acc_bits_exact(max_k)``)."""
        return self.acc_bits >= self.fmt.acc_bits_exact(max_k)

    def __call__(self) -> MLSPE:
        return MLSPE(self.fmt, self.acc_bits)
