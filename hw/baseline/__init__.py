"""Baseline PEs built in the same Amaranth flow as the MLS PE, for same-flow area/energy ratios.

- :class:`FP32MAC`: IEEE binary32 multiply then add (two RNE roundings, DAZ/FTZ).
- :class:`FP8MAC`: FP8 (E4M3 / E5M2, any mix) exact multiply, FP32 accumulate.
- :class:`Int8MAC`: INT8 x INT8, INT32 wrapping accumulate.
- :class:`BaselinePE`: any of them in the MLS PE's systolic port style and pipeline (the
  baseline that ``hw.synth`` synthesizes for the synthesis report).
- :class:`FP8DotPE`, :class:`INT8DotPE`: the same-lane dot-product baselines, L operand pairs
  per beat, drop-in for ``hw.pe.MLSDotPE`` (FP8: exact products, an exact adder tree, one FP32
  rounding per beat; INT8: a wrapping INT32 accumulator).

Numerics: :mod:`model.baseline_arith` (the golden reference each PE is tested against).
"""

from .layout import float_layout
from .fp32_mul import FP32Multiplier
from .fp32_add import FP32Adder
from .fp8_mul import FP8Multiplier
from .int_mul import IntMultiplier
from .fp32_mac import FP32MAC
from .fp8_mac import FP8MAC
from .int8_mac import Int8MAC
from .systolic_pe import BaselinePE
from .fp8_fixed_mul import FP8FixedMultiplier
from .fp32_wide_add import FP32WideAdder
from .fp8_dot_pe import FP8DotPE, fp8_dot_pe_signature
from .int8_dot_pe import INT8DotPE, int8_dot_pe_signature

__all__ = ["float_layout", "FP32Multiplier", "FP32Adder", "FP8Multiplier", "IntMultiplier",
           "FP32MAC", "FP8MAC", "Int8MAC", "BaselinePE",
           "FP8FixedMultiplier", "FP32WideAdder", "FP8DotPE", "fp8_dot_pe_signature",
           "INT8DotPE", "int8_dot_pe_signature"]
