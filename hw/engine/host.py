"""The host's side of the engine (pure Python): operand streams, scales, output order, the golden GEMM.

What a driver (a testbench, the FPGA UART host) does around ``hw.engine.Engine``; everything
numerical comes from ``model`` (``quantize``, ``tensor_scale``, ``mls_matmul``).

A GEMM of any K runs as the engine's commands (docs/engine.md): the host zero-pads K to a
multiple of ``group_len`` (:meth:`EngineConfig.padded_k`) and, when that is longer than one
buffer line, cuts it into the segments of :meth:`EngineConfig.segments`. Per operand it runs
one amax pass per segment and takes the largest amax (the tensor scale is per tensor), then per
segment ``s`` a convert pass of each operand (LFSR seed ``seed + s``) and one GEMM command that
adds the partial-sum buffer (``psum_add``, every segment but the first) and stores into it
(``psum_store``, every segment but the last). :func:`gemm_commands` lists that sequence.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from model.arith import mls_matmul
from model.fp32 import fp32_bits
from model.grouping import Grouping
from model.lfsr import lfsr_random_bits
from model.quant_stream import host_scale, to_words
from model.quantize import quantize

from .config import EngineConfig

__all__ = ["operand_words", "output_order", "gemm_reference", "quantized_operands", "host_scale",
           "pad_k", "segment_bounds", "segment_seed", "GemmCommand", "gemm_commands"]


def pad_k(x: torch.Tensor, config: EngineConfig, role: str) -> torch.Tensor:
    """The FP32 operand with K zero-padded to ``config.padded_k(K)`` (A ``[M, K]``: columns; W
    ``[K, N]``: rows)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if role not in ("A", "W"):
        raise ValueError(f"role must be 'A' or 'W', got {role!r}")
    if x.dim() != 2:
        raise ValueError(f"operand {role} must be 2-D, got shape {tuple(x.shape)}")
    k = x.shape[1] if role == "A" else x.shape[0]
    extra = config.padded_k(k) - k
    if not extra:
        return x
    return torch.nn.functional.pad(x, (0, extra) if role == "A" else (0, 0, 0, extra))


def segment_bounds(config: EngineConfig, m: int, n: int, k: int) -> list[tuple[int, int]]:
    """``(start, stop)`` along the padded K of every segment of an ``m x n`` GEMM (one when K
    fits one command)."""
    bounds, start = [], 0
    for length in config.segments(k, m, n):
        bounds.append((start, start + length))
        start += length
    return bounds


def segment_seed(seed: int, segment: int) -> int:
    """The LFSR seed of segment ``segment``'s convert pass: ``seed + segment`` (mod 2^32), so no two
    segments of an operand reuse one random sequence."""
    return (seed + segment) & 0xFFFFFFFF


def operand_words(x: torch.Tensor, config: EngineConfig, role: str, segment: tuple[int, int] | None = None) -> list[int]:
    """Stream payloads of an FP32 operand: A ``[M, K]`` row-major, W ``[K, N]`` as W^T row-major,
    K zero-padded, restricted to ``segment`` (``(start, stop)`` along K; None: all of it)."""
    lines = pad_k(x, config, role)
    lines = lines if role == "A" else lines.T
    if segment is not None:
        lines = lines[:, segment[0]:segment[1]]
    return to_words(fp32_bits(lines.contiguous().reshape(-1)).tolist(), 32, config.quant_lanes)


def output_order(config: EngineConfig, m: int, n: int) -> list[tuple[int, int]]:
    """``(row, first column)`` of every row of C the engine sends, in order: M tiles outer, N
    tiles inner, rows of a tile in order, rows past M left out."""
    order = []
    for mt in range(0, m, config.rows):
        for nt in range(0, n, config.cols):
            order += [(mt + i, nt) for i in range(config.rows) if mt + i < m]
    return order


class GemmCommand(NamedTuple):
    """One command of a GEMM, in order: ``op`` (an ``Op`` name), the operand (``"A"``/``"W"``/
    None), its K segment, the command's ``chunks`` and the split-K controls."""
    op: str
    role: str | None
    segment: int
    bounds: tuple[int, int]
    chunks: int
    psum_add: int = 0
    psum_store: int = 0


def gemm_commands(config: EngineConfig, m: int, n: int, k: int) -> list[GemmCommand]:
    """The engine commands of ``C[m, n] = A[m, k] x W[k, n]`` (one block: ``check_gemm`` must
    pass for the padded K)."""
    config.check_gemm(m, n, config.padded_k(k))
    bounds = segment_bounds(config, m, n, k)
    last = len(bounds) - 1
    gl = config.group_len
    cmds = [GemmCommand("AMAX_A", "A", s, b, (b[1] - b[0]) // gl) for s, b in enumerate(bounds)]
    cmds += [GemmCommand("AMAX_W", "W", s, b, (b[1] - b[0]) // gl) for s, b in enumerate(bounds)]
    for s, b in enumerate(bounds):
        chunks = (b[1] - b[0]) // gl
        cmds += [GemmCommand("LOAD_A", "A", s, b, chunks), GemmCommand("LOAD_W", "W", s, b, chunks),
                 GemmCommand("GEMM", None, s, b, chunks, int(s > 0), int(s < last))]
    return cmds


def _random_bits(lines: int, config: EngineConfig, seed: int, bounds) -> torch.Tensor:
    """``[lines, padded K]``: per segment, the LFSR's values of that segment's convert pass."""
    parts = []
    for s, (start, stop) in enumerate(bounds):
        bits = lfsr_random_bits(lines * (stop - start), config.quant_lanes, segment_seed(seed, s), config.sr_bits)
        parts.append(bits.reshape(lines, stop - start))
    return torch.cat(parts, dim=1)


def quantized_operands(config: EngineConfig, a: torch.Tensor, w: torch.Tensor, *, stochastic_a: bool = False,
                       stochastic_w: bool = False, seed_a: int = 0, seed_w: int = 0):
    """``(quantize(A), quantize(W))`` of the K-padded operands exactly as the engine's
    quantization units make them: groups of ``group_len`` along K, the LFSR's random bits of
    each segment's convert pass for stochastic rounding."""
    a, w = pad_k(a, config, "A"), pad_k(w, config, "W")
    (m, k), n = a.shape, w.shape[1]
    bounds = segment_bounds(config, m, n, k)
    qa = quantize(a, config.fmt_a, Grouping.blocks(config.group_len, axis=-1),
                  "stochastic" if stochastic_a else "nearest",
                  _random_bits(m, config, seed_a, bounds) if stochastic_a else None, sr_bits=config.sr_bits)
    qw = quantize(w, config.fmt_w, Grouping.blocks(config.group_len, axis=0),
                  "stochastic" if stochastic_w else "nearest",
                  _random_bits(n, config, seed_w, bounds).T if stochastic_w else None, sr_bits=config.sr_bits)
    return qa, qw


def gemm_reference(config: EngineConfig, a: torch.Tensor, w: torch.Tensor, **rounding):
    """``(C, overflow)``: ``mls_matmul(quantize(A), quantize(W))`` with the engine's accumulator
    and lanes (saturation per beat) and, when K is longer than one buffer line, its K split
    (``model.arith.split_k_matmul``); ``C`` FP32 ``[M, N]``, ``overflow`` per output."""
    qa, qw = quantized_operands(config, a, w, **rounding)
    (m, k), n = qa.shape, qw.shape[1]
    bounds = segment_bounds(config, m, n, k)
    split = bounds[0][1] if len(bounds) > 1 else None
    return mls_matmul(qa, qw, config.accumulator_bits, lanes=config.lanes, return_overflow=True, k_segment=split)
