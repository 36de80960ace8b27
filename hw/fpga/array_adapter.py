"""Build the systolic array of ``hw.array`` for the board flow.

The host bridge needs no adapter logic: the array's ``a``, ``w`` (in) and ``c`` (out) streams
become bridge FIFOs, loaded and read over the UART (``docs/fpga.md`` gives the word layouts).
"""

from __future__ import annotations

__all__ = ["array_factory", "BASELINE_DESIGNS"]

#: Board designs that are the array of a baseline PE: the design name is the array's ``pe``.
BASELINE_DESIGNS = ("fp32", "fp8-e4m3", "fp8-e5m2", "int8")


def array_factory(design: str, *, fmt: str | None, rows: int, cols: int, k_max: int | None):
    """``(factory, description)`` for ``design`` "mls" (MLS PEs, element format ``fmt``) or a
    baseline PE kind of ``BASELINE_DESIGNS`` (``SystolicArray(pe=design)``; ``fmt`` is ignored)."""
    from model.formats import MLSFormat

    from ..array import SystolicArray as cls
    kwargs = {} if k_max is None else {"max_k": k_max}
    if design == "mls":
        fmt_obj = MLSFormat.parse(fmt)
    elif design in BASELINE_DESIGNS:
        fmt_obj = None
        kwargs["pe"] = design
    else:
        raise ValueError(f"unknown array design {design!r}; known: mls, {', '.join(BASELINE_DESIGNS)}")
    probe = cls(fmt_obj, rows, cols, **kwargs)
    probe._MustUse__silence = True   # only read for the manifest, never elaborated
    description = {"design": design, "component": f"{cls.__module__}.{cls.__qualname__}", "pe": probe.pe,
                   "format": str(fmt_obj) if fmt_obj is not None else design, "rows": rows, "cols": cols,
                   "acc_bits": probe.acc_bits, "max_k": probe.max_k, "latency": probe.latency}

    def factory():
        return cls(fmt_obj, rows, cols, **kwargs)
    return factory, description
