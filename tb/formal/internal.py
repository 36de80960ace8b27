"""Find a component's internal registers in its elaborated fragment, for proof invariants.

A proof by induction (or a BMC whose later steps lean on earlier ones) needs to state facts about
state that is not a port: the accumulator's sticky flag, the dot-product PE's lane-product and
adder-tree registers. Amaranth has no hierarchical references, but every signal a fragment
assigns appears in its statements; these helpers look signals up there by name. A renamed
signal raises ``LookupError``, so a proof never silently checks nothing.
"""

from __future__ import annotations

from amaranth import Signal
from amaranth.hdl._ir import Fragment

__all__ = ["internal_signal", "subfragment"]


def _assigned_signal(lhs):
    while not isinstance(lhs, Signal):      # a slice, part or as_signed() of a signal: the signal
        if hasattr(lhs, "value"):
            lhs = lhs.value
        elif getattr(lhs, "operands", None) and len(lhs.operands) == 1:
            lhs = lhs.operands[0]
        else:
            return None
    return lhs


def internal_signal(fragment: Fragment, name: str) -> Signal:
    """The one signal called ``name`` that ``fragment``'s own statements assign."""
    found = []

    def visit(stmt):
        lhs = getattr(stmt, "lhs", None)
        signal = _assigned_signal(lhs) if lhs is not None else None
        if signal is not None and signal.name == name and not any(signal is f for f in found):
            found.append(signal)
        for case in getattr(stmt, "cases", ()):   # Switch: (patterns, statements, src_loc)
            for sub in case[1]:
                visit(sub)

    for statements in fragment.statements.values():
        for stmt in statements:
            visit(stmt)
    if len(found) != 1:
        raise LookupError(f"expected one signal {name!r} assigned in the fragment, found {len(found)}")
    return found[0]


def subfragment(fragment: Fragment, name: str) -> Fragment:
    """The submodule fragment that ``fragment`` holds under ``name``."""
    for sub, sub_name, *_ in fragment.subfragments:
        if sub_name == name:
            return sub
    raise LookupError(f"no submodule {name!r} in the fragment")
