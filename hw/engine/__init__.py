"""The engine: FP32 tensors in, quantization, GEMM on the array, FP32 out (docs/engine.md)."""

from .config import EngineConfig
from .engine import Engine, Op, command_layout, flags_layout
from .loader import OperandLoader

__all__ = ["Engine", "EngineConfig", "OperandLoader", "Op", "command_layout", "flags_layout"]
