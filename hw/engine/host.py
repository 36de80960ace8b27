"""The host's side of the engine (pure Python): operand streams, scales, output order, the golden GEMM.

What a driver (a testbench, the FPGA UART host) does around ``hw.engine.Engine``; everything
numerical comes from ``model`` (``quantize``, ``tensor_scale``, ``mls_matmul``).
"""

from __future__ import annotations

import torch

from model.arith import mls_matmul
from model.fp32 import fp32_bits
from model.grouping import Grouping
from model.lfsr import lfsr_random_bits
from model.quant_stream import host_scale, to_words
from model.quantize import quantize

from .config import EngineConfig

__all__ = ["operand_words", "output_order", "gemm_reference", "quantized_operands", "host_scale"]


def operand_words(x: torch.Tensor, config: EngineConfig, role: str) -> list[int]:
    """Stream payloads of an FP32 operand: A ``[M, K]`` row-major, W ``[K, N]`` as W^T row-major."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if role not in ("A", "W"):
        raise ValueError(f"role must be 'A' or 'W', got {role!r}")
    lines = x if role == "A" else x.T
    return to_words(fp32_bits(lines.contiguous().reshape(-1)).tolist(), 32, config.quant_lanes)


def output_order(config: EngineConfig, m: int, n: int) -> list[tuple[int, int]]:
    """``(row, first column)`` of every row of C the engine sends, in order: M tiles outer, N
    tiles inner, rows of a tile in order, rows past M left out."""
    order = []
    for mt in range(0, m, config.rows):
        for nt in range(0, n, config.cols):
            order += [(mt + i, nt) for i in range(config.rows) if mt + i < m]
    return order


def _random_bits(count_shape, config: EngineConfig, seed: int, role: str) -> torch.Tensor:
    rows, cols = count_shape
    bits = lfsr_random_bits(rows * cols, config.quant_lanes, seed, config.sr_bits)
    if role == "A":
        return bits.reshape(rows, cols)
    return bits.reshape(cols, rows).T   # W streams as W^T


def quantized_operands(config: EngineConfig, a: torch.Tensor, w: torch.Tensor, *, stochastic_a: bool = False,
                       stochastic_w: bool = False, seed_a: int = 0, seed_w: int = 0):
    """``(quantize(A), quantize(W))`` exactly as the engine's quantization units make them:
    groups of ``group_len`` along K, the LFSR's random bits for stochastic rounding."""
    a = torch.as_tensor(a, dtype=torch.float32)
    w = torch.as_tensor(w, dtype=torch.float32)
    qa = quantize(a, config.fmt_a, Grouping.blocks(config.group_len, axis=-1),
                  "stochastic" if stochastic_a else "nearest",
                  _random_bits(a.shape, config, seed_a, "A") if stochastic_a else None, sr_bits=config.sr_bits)
    qw = quantize(w, config.fmt_w, Grouping.blocks(config.group_len, axis=0),
                  "stochastic" if stochastic_w else "nearest",
                  _random_bits(w.shape, config, seed_w, "W") if stochastic_w else None, sr_bits=config.sr_bits)
    return qa, qw


def gemm_reference(config: EngineConfig, a: torch.Tensor, w: torch.Tensor, **rounding):
    """``(C, overflow)``: ``mls_matmul(quantize(A), quantize(W))`` with the engine's accumulator
    and lanes (saturation per beat), ``C`` FP32 ``[M, N]``, ``overflow`` per output."""
    qa, qw = quantized_operands(config, a, w, **rounding)
    return mls_matmul(qa, qw, config.accumulator_bits, lanes=config.lanes, return_overflow=True)
