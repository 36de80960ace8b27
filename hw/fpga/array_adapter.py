"""Build the systolic array of ``hw.array`` for the board flow.

The host bridge needs no adapter logic: the array's ``a``, ``w`` (in) and ``c`` (out) streams
become bridge FIFOs, loaded and read over the UART (``docs/fpga.md`` gives the word layouts).
"""

from __future__ import annotations

import inspect

__all__ = ["array_factory"]


def array_factory(array_module, design: str, *, fmt: str, rows: int, cols: int, k_max: int | None):
    """``(factory, description)`` for ``design`` "mls" (MLS PEs) or "fp32" (FP32 baseline PEs)."""
    from model.formats import MLSFormat

    cls = array_module.SystolicArray
    kwargs = {} if k_max is None else {"max_k": k_max}
    if design == "fp32":
        # The FP32 array needs hw.array to accept a baseline PE; look for such a parameter.
        params = inspect.signature(cls).parameters
        pe_param = next((p for p in ("pe", "pe_kind", "pe_type") if p in params), None)
        if pe_param is None:
            raise ValueError("hw.array.SystolicArray has no parameter to use the FP32 baseline PE "
                             "(hw/baseline/fp32_mac.py is not drop-in for the array yet)")
        kwargs[pe_param] = "fp32"
        fmt_obj = None
    else:
        fmt_obj = MLSFormat.parse(fmt)
    probe = cls(fmt_obj if fmt_obj is not None else "e2m1g3", rows, cols, **kwargs)
    description = {"design": design, "component": f"{cls.__module__}.{cls.__qualname__}",
                   "format": str(fmt_obj) if fmt_obj is not None else "fp32", "rows": rows, "cols": cols,
                   "acc_bits": probe.acc_bits, "max_k": probe.max_k, "latency": probe.latency}
    probe._MustUse__silence = True   # only read for the manifest, never elaborated

    def factory():
        return cls(fmt_obj if fmt_obj is not None else "e2m1g3", rows, cols, **kwargs)
    return factory, description
