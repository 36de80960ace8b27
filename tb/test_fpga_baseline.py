"""The FP32-PE (and INT8-PE) array of ``SystolicArray(pe=...)`` on the board flow, in the Amaranth
simulator: a tile loaded through the host bridge comes back bit-exact against
``model.baseline_arith`` with the cycle count of ``hw.array.timing``. That the board design
elaborates (no toolchain run): tests/test_fpga_wrapper.py."""

from __future__ import annotations

import numpy as np
import pytest

from hw.fpga.bridge import HostBridge
from hw.fpga.designs import make_design
from hw.fpga.simhost import SimHost, array_tile_round_trip, run_sim
from hw.fpga.tiles import array_results, array_tile_words
from model import baseline_arith as ba


@pytest.mark.parametrize("pe, R, C, K", [("fp32", 2, 2, 3), ("int8", 2, 3, 4)])
def test_baseline_tile_through_bridge(pe, R, C, K):
    factory, _ = make_design(pe, rows=R, cols=C, k_max=64)
    array = factory()
    bridge = HostBridge(array, in_depth=8, out_depth=4)
    rng = np.random.default_rng(7)
    if pe == "fp32":
        a = ba.f32_to_bits(rng.standard_normal((R, K)).astype(np.float32) * np.float32(3.0))
        w = ba.f32_to_bits(rng.standard_normal((K, C)).astype(np.float32) / np.float32(7.0))
        expect = [[ba.fp32_accumulate(a[i], w[:, j]) for j in range(C)] for i in range(R)]
    else:
        a, w = rng.integers(-128, 128, (R, K)), rng.integers(-128, 128, (K, C))
        expect = [[ba.int8_accumulate(a[i], w[:, j]) for j in range(C)] for i in range(R)]
    a_words, w_words = array_tile_words(array, a, w)

    async def bench(ctx):
        reply = await array_tile_round_trip(SimHost(ctx, bridge), a_words, w_words, rows=R, settle_cycles=K + R + C + 10)
        assert reply.level == R
        got, overflow = array_results(array, reply.words)
        assert got == expect and overflow == [[0] * C for _ in range(R)]
        assert reply.counters.flags == frozenset() and reply.counters.span == array.timing.tile_cycles(K)

    run_sim(bridge, bench)
