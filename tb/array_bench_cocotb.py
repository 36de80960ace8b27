"""cocotb side of bench/bench_rtl.py: stream back-to-back random tiles through the array (the
scalar MLSPE array at L = 1, the L-lane dot-product array otherwise), verify every output row
against model/ (``model.arith.beat_accumulate`` of the beats ``model.beats.pack_beats`` made)
and every tile's cycles against hw.array.timing, and write the wall time of the streaming phase
to ``params["out"]`` (JSON). The tiles are built and their golden rows computed before the clock
starts counting."""

import json
import random
import time

import cocotb

from tb.array_dot_cocotb import (DotTile, check_cycles, check_no_spurious_row, check_rows, random_operand, reset,
                                 run_tiles, setup)
from tb.harness import tb_params


@cocotb.test()
async def bench(dut):
    p, fa, fw, timing, packers = setup(dut)
    await reset(dut)
    rng = random.Random(p["seed"])
    tiles = [DotTile(random_operand(fa, p["rows"], p["k"], rng, "random", p["k_chunk"]),
                     random_operand(fw, p["cols"], p["k"], rng, "random", p["k_chunk"]),
                     p["lanes"], p["acc_bits"], packers, name=f"bench {n}", k_chunk=p["k_chunk"])
             for n in range(p["tiles"])]
    t0 = time.perf_counter()
    rows, ins, outs = await run_tiles(dut, tiles, p, rng, 0, 0, 0, idle_check=False)
    wall = time.perf_counter() - t0
    await check_no_spurious_row(dut, p)
    check_rows(tiles, rows, p["rows"])
    check_cycles(tiles, ins, outs, timing, p["rows"])
    macs = p["tiles"] * p["rows"] * p["cols"] * p["k"]   # useful MACs (padding lanes not counted)
    with open(tb_params()["out"], "w") as f:
        json.dump({"macs": macs, "cycles": outs[-1] - ins[0] + 1, "beats": sum(t.beats for t in tiles),
                   "wall_s": wall}, f)
