"""The FP32 operations the quantization pipeline is written in: DAZ/FTZ, exact powers of two, bit patterns.

Shared by the definition (``model.quantize``), the container (``model.mls_tensor``) and the fast
paths (``model.fake_quantize``); see docs/numerics.md, "Quantization".
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["FP32_MIN_NORMAL", "bits_fp32", "daz", "fp32_bits", "ftz", "pow2"]

FP32_MIN_NORMAL = 2.0**-126


def ftz(t: torch.Tensor) -> torch.Tensor:
    """Flush FP32 subnormals to +0 (also used as DAZ on inputs)."""
    return torch.where(t.abs() < FP32_MIN_NORMAL, torch.zeros_like(t), t)


daz = ftz


def pow2(exponent: torch.Tensor) -> torch.Tensor:
    """Exact FP32 ``2**exponent`` for integer exponents in [-126, 127] (built from bits)."""
    return ((exponent.to(torch.int32) + 127) << 23).view(torch.float32)


def fp32_bits(x) -> np.ndarray:
    """FP32 bit patterns (uint32, flattened row-major) of a tensor, array or number."""
    return np.ascontiguousarray(torch.as_tensor(x).to(torch.float32).reshape(-1).numpy()).view(np.uint32).copy()


def bits_fp32(bits) -> torch.Tensor:
    """The FP32 values (flat tensor) of uint32 bit patterns: the inverse of ``fp32_bits``."""
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32).copy())
