"""The one port signature every processing element of the systolic array has.

``MLSPE``, the baseline PEs (``hw.baseline.BaselinePE``) and any later PE (a dot-product PE with
``L`` lanes per operand) are ``wiring.Component`` s whose signature is a :class:`PESignature`, so
``hw.array.SystolicArray`` can place and wire any of them without knowing which one it has. Only
the three shapes differ between PE kinds; the control, the forwarding and the result flags are
the same by construction.

A :class:`PEFactory` is one PE kind with its parameters bound: it tells the array the PE's
signature, latency and exactness before any PE exists, and makes the PEs.
"""

from __future__ import annotations

import abc

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PESignature", "PEFactory", "control_layout"]


def control_layout() -> data.StructLayout:
    """What travels along a PE row with the A operand: a valid MAC, and the tile's first/last beat."""
    return data.StructLayout({"valid": 1, "first": 1, "last": 1})


def _check_shape(name, shape):
    if not isinstance(shape, (Shape, ShapeCastable, int, range)) or isinstance(shape, bool):
        raise TypeError(f"{name} must be a shape (a Shape, a lib.data layout, an int or a range), not {shape!r}")
    Shape.cast(shape)  # raises for a malformed shape (a negative width, ...)
    return shape


class PESignature(wiring.Signature):
    """Ports of an output-stationary systolic PE, seen from the PE.

    Parameters
    ----------
    a_shape, b_shape : shape
        One A operand (it travels right along a row) and one B operand (it travels down a
        column). For a PE of ``L`` lanes this is an ``ArrayLayout`` of ``L`` operands.
    result_shape : shape
        One finished tile's sum.

    Members
    -------
    a_in : In(a_shape); b_in : In(b_shape); ctl_in : In(control_layout())
        The operands of one MAC (one dot product of ``L`` lanes) and its control: ``valid``,
        and whether the beat is the ``first`` / ``last`` of a tile.
    a_out : Out(a_shape); b_out : Out(b_shape); ctl_out : Out(control_layout())
        The inputs, one cycle later (systolic forwarding to the right and down).
    result : Out(result_shape); overflow : Out(1)
        Sum and sticky overflow flag of the last finished tile (a PE whose accumulator cannot
        overflow drives 0). ``result`` holds its value until the next tile finishes.
    done : Out(1)
        Pulse in the first cycle ``result`` holds a new tile.

    The PE's ``latency`` property says how many cycles after a beat is at the inputs it is in
    ``result`` (for the ``last`` beat of a tile).
    """

    def __init__(self, a_shape, b_shape, result_shape):
        self._a_shape = _check_shape("a_shape", a_shape)
        self._b_shape = _check_shape("b_shape", b_shape)
        self._result_shape = _check_shape("result_shape", result_shape)
        super().__init__({
            "a_in": In(a_shape),
            "b_in": In(b_shape),
            "ctl_in": In(control_layout()),
            "a_out": Out(a_shape),
            "b_out": Out(b_shape),
            "ctl_out": Out(control_layout()),
            "result": Out(result_shape),
            "overflow": Out(1),
            "done": Out(1),
        })

    @property
    def a_shape(self):
        return self._a_shape

    @property
    def b_shape(self):
        return self._b_shape

    @property
    def result_shape(self):
        return self._result_shape

    def __eq__(self, other):
        other = other.flip() if isinstance(other, wiring.FlippedSignature) else other
        return (type(other) is type(self) and self._a_shape == other._a_shape
                and self._b_shape == other._b_shape and self._result_shape == other._result_shape)

    def __repr__(self):
        return f"PESignature({self._a_shape!r}, {self._b_shape!r}, {self._result_shape!r})"


class PEFactory(abc.ABC):
    """One kind of PE with its parameters bound, as ``hw.array.SystolicArray(pe=...)`` takes it.

    The array reads ``signature`` (its stream layouts and row-select width follow from the three
    shapes), ``latency`` (its skew and drain timing) and ``exact(max_k)`` before it builds any
    PE, then calls the factory once per grid position. Subclasses are frozen dataclasses that
    validate their parameters on construction, so a bad parameter fails when the array is
    built, not when it is elaborated.
    """

    #: Short name of the PE kind (``SystolicArray.pe``): ``"mls"`` or a key of ``hw.array.PE_KINDS``.
    name: str

    @property
    @abc.abstractmethod
    def signature(self) -> PESignature:
        """The signature every PE this factory makes has."""

    @property
    @abc.abstractmethod
    def latency(self) -> int:
        """Cycles from a tile's ``last`` beat at the PE's inputs to its sum in ``result``."""

    @abc.abstractmethod
    def exact(self, max_k: int) -> bool:
        """Whether the sum of every tile of reduction length K <= ``max_k`` is exact (no
        rounding, wrap or saturation)."""

    @abc.abstractmethod
    def __call__(self) -> wiring.Component:
        """A new PE whose ``signature`` equals ``self.signature``."""
