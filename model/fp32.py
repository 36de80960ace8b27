"""The FP32 operations the quantization pipeline is written in: DAZ/FTZ and exact powers of two.

Shared by the definition (``model.quantize``), the container (``model.mls_tensor``) and the fast
paths (``model.fake_quantize``); see docs/numerics.md, "Quantization".
"""

from __future__ import annotations

import torch

__all__ = ["FP32_MIN_NORMAL", "daz", "ftz", "pow2"]

FP32_MIN_NORMAL = 2.0**-126


def ftz(t: torch.Tensor) -> torch.Tensor:
    """Flush FP32 subnormals to +0 (also used as DAZ on inputs)."""
    return torch.where(t.abs() < FP32_MIN_NORMAL, torch.zeros_like(t), t)


daz = ftz


def pow2(exponent: torch.Tensor) -> torch.Tensor:
    """Exact FP32 ``2**exponent`` for integer exponents in [-126, 127] (built from bits)."""
    return ((exponent.to(torch.int32) + 127) << 23).view(torch.float32)
