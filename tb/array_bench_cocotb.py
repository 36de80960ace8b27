"""cocotb side of bench/bench_rtl.py: stream back-to-back random tiles through the array, verify
every output row against model/ and the cycle count against hw.array.timing, and write the
wall time of the streaming phase to ``params["out"]`` (JSON)."""

import json
import random
import time

import cocotb
import torch

from tb.array_cocotb import check_cycles, check_rows, random_tile, reset, run_tiles, setup
from tb.harness import tb_params


@cocotb.test()
async def bench(dut):
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    gen, rng = torch.Generator().manual_seed(p["seed"]), random.Random(p["seed"])
    tiles = [random_tile(fmt, p["rows"], p["cols"], p["k"], p["acc_bits"], arr, gen, "random") for _ in range(p["tiles"])]
    t0 = time.perf_counter()
    rows, ins, outs = await run_tiles(dut, tiles, p["rows"], p["cols"], p["acc_bits"], rng, 0, 0, 0)
    wall = time.perf_counter() - t0
    check_rows(tiles, rows, p["rows"])
    check_cycles(tiles, ins, outs, timing, p["rows"])
    macs = p["tiles"] * p["rows"] * p["cols"] * p["k"]
    with open(tb_params()["out"], "w") as f:
        json.dump({"macs": macs, "cycles": outs[-1] - ins[0] + 1, "wall_s": wall}, f)
