"""The output converter (docs/numerics.md §3): accumulators to FP32 (docs/engine.md)."""

from .converter import MAX_LANES, OutputConverter
from .fp32_multiply import FP32_QUIET_NAN, FP32Multiply
from .int_to_fp32 import IntToFP32

__all__ = ["OutputConverter", "FP32Multiply", "IntToFP32", "FP32_QUIET_NAN", "MAX_LANES"]
