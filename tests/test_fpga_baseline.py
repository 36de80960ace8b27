"""The FP32-PE (and INT8-PE) array of ``SystolicArray(pe=...)`` on the board flow: the board
design elaborates (no toolchain run) and a tile loaded through the host bridge comes back
bit-exact against ``model.baseline_arith`` with the cycle count of ``hw.array.timing``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.fpga.bridge import HostBridge
from hw.fpga.designs import make_design
from hw.fpga.simhost import SimHost, array_tile_round_trip, run_sim
from hw.fpga.tiles import array_results, array_tile_words
from model import baseline_arith as ba


def test_fp32_board_design_elaborates(tmp_path):
    pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")
    from hw.fpga.build import build_for_board

    factory, design = make_design("fp32", rows=2, cols=2)
    assert (design["design"], design["pe"], design["format"], design["acc_bits"]) == ("fp32", "fp32", "fp32", 32)
    result, manifest_path = build_for_board(factory(), "ulx3s", tmp_path, steps="files", design=design)
    m = json.loads(manifest_path.read_text())
    assert m["design"]["pe"] == "fp32" and result.luts is None
    ports = {p["name"]: p for p in m["bridge"]["ports"]}
    assert [p["name"] for p in m["bridge"]["ports"]] == ["a", "w", "c"]
    assert (ports["a"]["width"], ports["w"]["width"], ports["c"]["width"]) == (2 * 32 + 1, 2 * 32, 2 * 32 + 2 + 1)
    rtlil = (tmp_path / "top.il").read_text()
    assert "pe_1_1" in rtlil and "pe_1_1.add" in rtlil   # the FP32 adder of PE(1, 1)


def test_hw_build_board_passes_the_pe(tmp_path):
    pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")
    from hw.build import main

    assert main(["--preset", "fp32-8x8", "--rows", "2", "--cols", "2", "--board", "ulx3s", "--steps", "files",
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "board.json").read_text())
    assert (m["design"]["design"], m["design"]["pe"], m["design"]["acc_bits"]) == ("fp32", "fp32", 32)


def test_unknown_array_design():
    with pytest.raises(ValueError, match=r"^unknown design 'bf16'; known: demo, mls, fp32, fp8-e4m3, fp8-e5m2, int8$"):
        make_design("bf16")


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
