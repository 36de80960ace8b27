"""The R x C output-stationary systolic array of MLS PEs (of L-lane dot-product PEs with ``lanes=L``,
or of baseline PEs, ``pe=``).

``hw.array.timing`` is pure Python (the cycle model imports it without Amaranth); the Amaranth
component ``SystolicArray`` is loaded lazily on first access.
"""

from . import timing
from .timing import ArrayTiming

__all__ = ["ArrayTiming", "SystolicArray", "timing"]


def __getattr__(name):
    if name == "SystolicArray":
        from .array import SystolicArray

        return SystolicArray
    raise AttributeError(f"module 'hw.array' has no attribute {name!r}")
