"""The board wrapper around the real MLS array: load a tile over the host protocol, read C back,
compare with model/arith.py bit for bit (Amaranth simulator, byte level, no toolchain)."""

from __future__ import annotations

import pytest
import torch

from hw.array import SystolicArray
from hw.fpga.bridge import HostBridge
from hw.fpga.simhost import SimHost as _Host, array_tile_round_trip, run_sim as _run
from hw.fpga.tiles import array_results, array_tile_words
from model.arith import exact_matmul
from model.grouping import Grouping
from model.quantize import quantize



def _tile(fmt, R, C, K, seed):
    g = torch.Generator().manual_seed(seed)
    # Rows/columns of very different magnitude so the group exponents differ.
    a = torch.randn(R, K, generator=g) * torch.logspace(-3, 3, R).unsqueeze(1)
    w = torch.randn(K, C, generator=g) * torch.logspace(2, -2, C).unsqueeze(0)
    # One group per row of A and per column of W (blocks spanning K), as in a GEMM tile.
    return quantize(a, fmt, Grouping.blocks(K, axis=1)), quantize(w, fmt, Grouping.blocks(K, axis=0))


@pytest.mark.parametrize("fmt,R,C,K,seed", [("e2m1g3", 2, 2, 5, 1), ("e3m3g3", 2, 3, 9, 2), ("e1m1g3", 3, 2, 1, 3)])
def test_array_tile_through_bridge(fmt, R, C, K, seed):
    array = SystolicArray(fmt, R, C, max_k=64)
    bridge = HostBridge(array, in_depth=16, out_depth=8)
    a, w = _tile(fmt, R, C, K, seed)
    expect = exact_matmul(a, w).tolist()
    a_words, w_words = array_tile_words(array, a, w)

    async def bench(ctx):
        reply = await array_tile_round_trip(_Host(ctx, bridge), a_words, w_words, rows=R, settle_cycles=K + R + C + 10)
        assert reply.level == R
        got, overflow = array_results(array, reply.words)
        assert got == expect
        assert overflow == [[0] * C for _ in range(R)]
        assert reply.counters.flags == frozenset()
        # Measured on the bridge, first A/W beat in .. last C row out: exactly hw.array.timing's count.
        assert reply.counters.span == array.timing.tile_cycles(K)

    _run(bridge, bench)


