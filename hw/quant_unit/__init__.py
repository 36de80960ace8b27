"""Dynamic quantization unit, FP32 -> MLS (docs/numerics.md §2); see docs/quant_unit.md."""

from .config import QuantUnitConfig
from .top import QuantUnit

__all__ = ["QuantUnit", "QuantUnitConfig"]
