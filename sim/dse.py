"""Design-space exploration: MLS formats x accumulator widths x array sizes (``python -m sim.dse``).

For every point the cost side is the training-step energy of ResNet-20/CIFAR-10 and
ResNet-18/ImageNet (``sim.energy`` on the traced workloads, ``sim.cycles`` on the array) and a PE
area proxy; the quality side is measured on real tensors captured once from a digits training
run (``sim/data/digits_tensors.npz``, see ``model.capture``):

- ``snr_<role>``: quantization SNR (dB) of the activation, weight and error tensor with
  ``model.quantize.quantize`` (channel grouping; nearest for activation/weight, stochastic for
  the error, seeded);
- ``snr_gemm``: the worst of the three training GEMMs (forward, backward-data, backward-weight
  of the captured 3x3 conv) of the output SNR against the FP32 GEMM of the unquantized tensors,
  on 512 sampled outputs per pass, through an accumulator ``acc_deficit`` bits narrower than
  exact for that GEMM's K, saturating after every product (L = 1) or after every beat of the
  L-lane dot PE (``beat_ids``). The §3 integers are formed in float64 from the exact group-scaled
  elements, so they are exact for every format (also where they pass int64, e.g. G = 6). The
  exact sums are formed in float64, exact while partial sums stay below 2**53 and within 2**-53
  relative beyond, which an SNR cannot see. A narrow accumulator saturates and sticks through
  ``model.arith.accumulate`` (k ascending) where it and every product fit 63 bits; wider, the
  same add-then-clamp runs in float64.

A network accumulator ``acc_deficit`` bits below the exact width for its largest K is judged by
the captured GEMMs at the same deficit below *their* exact width: the headroom in bits, not the
absolute width, decides saturation.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from model.arith import MAX_EXACT_BITS, accumulate
from model.beats import chunk_lengths
from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import quantize

from .cycles import ArrayConfig
from .energy import Design, pe_area, pe_area_per_mac, ungrouped_gemms, workload_energy, workload_stats
from .report_io import markdown_table, pyplot, read_csv, save_figure, write_csv
from .workloads import network_gemms

__all__ = ["SweepSpec", "evaluate_point", "gemm_quality", "main", "pareto_front", "recommend", "run_sweep"]

NETWORKS = ("resnet20", "resnet18")
SAMPLES = 512
SNR_CAP = 300.0  # dB reported for an error-free result


@dataclass(frozen=True)
class SweepSpec:
    exp_bits: tuple[int, ...] = (0, 1, 2, 3, 4)
    man_bits: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    group_bits: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    acc_deficits: tuple[int, ...] = (0, 4, 8, 12, 16)
    arrays: tuple[str, ...] = ("16x16", "32x32")
    networks: tuple[str, ...] = NETWORKS
    lanes: tuple[int, ...] = (1, 9, 16)  # 1: the scalar MLS PE; more: the MLS dot PE of that many lanes
    gcs: tuple[int, ...] = (1, 4)  # channel block of the channel grouping

    def formats(self) -> list[MLSFormat]:
        out = []
        for e, m, g in itertools.product(self.exp_bits, self.man_bits, self.group_bits):
            if e + m >= 1:
                out.append(MLSFormat(e, m, g))
        return out

    @property
    def points(self) -> int:
        return len(self.formats()) * len(self.acc_deficits) * len(self.arrays) * len(self.lanes) * len(self.gcs)


# -- quality proxy -------------------------------------------------------------------------------
def _snr(ref: torch.Tensor, approx: torch.Tensor) -> float:
    noise = float(((ref - approx) ** 2).sum())
    signal = float((ref ** 2).sum())
    if noise == 0.0:
        return SNR_CAP
    return min(SNR_CAP, 10.0 * math.log10(signal / noise)) if signal > 0 else -SNR_CAP


def _im2col(x: torch.Tensor) -> torch.Tensor:
    """[B, C, 8, 8] -> [B*H*W, C*9] for a 3x3, stride-1, pad-1 conv (exact for float64 ints)."""
    b, c, h, w = x.shape
    cols = F.unfold(x, 3, padding=1)  # [B, C*9, H*W]
    return cols.transpose(1, 2).reshape(b * h * w, c * 9)


def _gemm_operands(act, wgt, err):
    """The three training GEMMs of the captured conv as (A [M,K], B [K,N]) float64 pairs."""
    cout, cin = wgt.shape[:2]
    b = act.shape[0]
    fwd = (_im2col(act), wgt.reshape(cout, cin * 9).T)
    w_t = wgt.flip(2, 3).transpose(0, 1).reshape(cin, cout * 9).T  # transposed conv kernel
    bwd_data = (_im2col(err), w_t)
    cols = F.unfold(act, 3, padding=1).permute(0, 2, 1).reshape(-1, cin * 9)
    bwd_weight = (err.permute(1, 0, 2, 3).reshape(cout, -1), cols)
    del b
    return {"forward": fwd, "backward-data": bwd_data, "backward-weight": bwd_weight}


def _sample_index(m: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(m * n, generator=g)[:SAMPLES]
    return flat // n, flat % n


def _saturating_sum(products: torch.Tensor, acc_bits: int, product_bits: int) -> torch.Tensor:
    """k-ascending saturating sums of float64 integer products (last axis), as float64.

    ``model.arith.accumulate`` (exact, int64) wherever the accumulator and every product fit its
    63 bits; wider, the same add-then-clamp in float64 (within 2**-53 relative), because int64
    cannot hold them. ``python -m sim.dse`` refuses a deficit that leaves any point under 2
    bits, so ``acc_bits < 2`` reaches here only from a direct call (float64 clamp).
    """
    if 2 <= acc_bits <= MAX_EXACT_BITS and product_bits <= MAX_EXACT_BITS:
        return accumulate(products.to(torch.int64), acc_bits)[0].double()
    hi, lo = 2.0 ** (acc_bits - 1) - 1, -(2.0 ** (acc_bits - 1))
    acc = torch.zeros(products.shape[:-1], dtype=torch.float64)
    for col in products.unbind(-1):
        acc = (acc + col).clamp(lo, hi)
    return acc


def beat_ids(k: int, k_chunk: int, lanes: int) -> torch.Tensor:
    """Beat index of every k of one output on an ``lanes``-lane PE (docs/numerics.md §3.1: chunks of
    ``k_chunk`` in ascending k, ``lanes`` pairs per beat, a beat never spans two chunks)."""
    ids, beat = [], 0
    for length in chunk_lengths(k, k_chunk):
        ids.extend(beat + j // lanes for j in range(length))
        beat += -(-length // lanes)
    return torch.tensor(ids, dtype=torch.int64)


def gemm_quality(fmt: MLSFormat, tensors: dict[str, torch.Tensor], deficits=(0,), seed: int = 0,
                 gc: int = 1, lanes=(1,)) -> dict:
    """Quantization SNRs per role and the worst-pass GEMM output SNR per accumulator deficit, with
    channel grouping of channel block ``gc`` (``Grouping.channel(gc)``) for every tensor.

    ``snr_gemm@<d>`` saturates after every product (the scalar PE); for each lane count L > 1 in
    ``lanes``, ``snr_gemm@<d>@L<L>`` saturates after every beat of the MLS dot PE (chunks of the
    captured conv: kh*kw*gc forward, kh*kw backward-data, Ho*Wo backward-weight)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: extra threads only add contention
    try:
        return _gemm_quality(fmt, tensors, deficits, seed, Grouping.channel(gc), gc, tuple(lanes))
    finally:
        torch.set_num_threads(threads)


def _gemm_quality(fmt: MLSFormat, tensors: dict[str, torch.Tensor], deficits, seed: int, grouping, gc: int,
                  lanes: tuple[int, ...]) -> dict:
    q = {
        "activation": quantize(tensors["activation"], fmt, grouping, rounding="nearest"),
        "weight": quantize(tensors["weight"], fmt, grouping, rounding="nearest"),
        "error": quantize(tensors["error"], fmt, grouping, rounding="stochastic",
                          generator=torch.Generator().manual_seed(seed)),
    }
    out = {f"snr_{r}": _snr(tensors[r].double(), q[r].dequantize().double()) for r in q}
    ref = _gemm_operands(*(tensors[r].double() for r in ("activation", "weight", "error")))
    # The §3 integers, int = (2**-g * elem) * 2**L, formed in float64 from the exact FP32
    # group_scaled() values: exact for every format, also where they pass int64 (to_int()).
    unit_inv = 2.0 ** fmt.lsb_exponent
    ints = _gemm_operands(*(q[r].group_scaled().double() * unit_inv for r in ("activation", "weight", "error")))
    scales = {"forward": ("activation", "weight"), "backward-data": ("error", "weight"),
              "backward-weight": ("error", "activation")}
    unit = 2.0 ** -(2 * fmt.lsb_exponent)
    worst = {(d, 1): SNR_CAP for d in deficits}
    worst.update({(d, n): SNR_CAP for d in deficits for n in lanes if n > 1})
    kh, kw = tensors["weight"].shape[2:]
    chunks = {"forward": kh * kw * gc, "backward-data": kh * kw,
              "backward-weight": tensors["activation"].shape[2] * tensors["activation"].shape[3]}
    for i, (pass_, (a_ref, b_ref)) in enumerate(ref.items()):
        a_int, b_int = ints[pass_]
        rows, cols = _sample_index(a_ref.shape[0], b_ref.shape[1], seed + i)
        c_ref = (a_ref[rows] * b_ref[:, cols].T).sum(1)
        products = a_int[rows] * b_int[:, cols].T  # [S, K], k ascending
        prefix = products.cumsum(1)
        exact = prefix[:, -1]
        scale = float(q[scales[pass_][0]].scale) * float(q[scales[pass_][1]].scale) * unit
        k = a_int.shape[1]
        beats = {}
        for n in (n for n in lanes if n > 1):
            ids = beat_ids(k, chunks[pass_], n)
            sums = torch.zeros(products.shape[0], int(ids[-1]) + 1, dtype=torch.float64).index_add_(1, ids, products)
            beats[n] = (sums, sums.cumsum(1), fmt.acc_bits_exact(n))  # beat sums, prefix at beat ends
        for d in deficits:
            acc_bits = fmt.acc_bits_exact(k) - d
            hi, lo = 2.0 ** (acc_bits - 1) - 1, -(2.0 ** (acc_bits - 1))
            for n, (terms, pre, term_bits) in [(1, (products, prefix, fmt.product_bits()))] + list(beats.items()):
                value = exact.clone()
                over = ((pre > hi) | (pre < lo)).any(1)
                if bool(over.any()):  # saturating, sticky: replay the flagged outputs add by add
                    value[over] = _saturating_sum(terms[over], acc_bits, term_bits)
                worst[(d, n)] = min(worst[(d, n)], _snr(c_ref, value * scale))
    for (d, n), snr in worst.items():
        out[f"snr_gemm@{d}" + ("" if n == 1 else f"@L{n}")] = snr
    return out


# -- cost side and the sweep -------------------------------------------------------------------------
_STATE: dict = {}


def _init_worker(stats, tensors, spec) -> None:
    torch.set_num_threads(1)
    _STATE.update(stats=stats, tensors=tensors, spec=spec)


def evaluate_point(fmt: MLSFormat, deficit: int, array: str, stats: dict, quality: dict, lanes: int = 1,
                   gc: int = 1) -> dict:
    """One CSV row: cost of one (format, accumulator deficit, array, lanes, Gc) on every network.
    ``lanes = 1`` is the scalar MLS PE; more lanes the MLS dot PE. ``stats`` maps (network, array,
    lanes, gc) to workload sums and (network, array, "fp32") to the FP32 reference energy."""
    row = {"format": str(fmt), "E": fmt.exp_bits, "M": fmt.man_bits, "G": fmt.group_bits,
           "elem_bits": fmt.elem_bits, "acc_deficit": deficit, "array": array, "lanes": lanes, "gc": gc}
    nets = [key[0] for key in stats if len(key) == 4 and key[1:] == (array, lanes, gc)]
    dot = lanes if lanes > 1 else None
    for net in nets:
        st = stats[(net, array, lanes, gc)]
        acc = fmt.acc_bits_exact(st.k_max) - deficit
        design = Design(f"mls-{fmt}-acc{acc}", "mls", fmt, None, max(acc, 2), lanes=dot)
        e = workload_energy(st, design)
        ref = stats[(net, array, "fp32")]
        row[f"{net}_acc_bits"] = acc
        row[f"{net}_step_mJ"] = e["total"] * 1e-9
        row[f"{net}_compute_pJ_per_mac"] = e["compute"] / st.macs
        row[f"{net}_total_pJ_per_mac"] = e["total"] / st.macs
        row[f"{net}_gain_fp32_compute"] = ref["compute"] / e["compute"]
        row[f"{net}_gain_fp32_total"] = ref["total"] / e["total"]
        row[f"{net}_cycles"] = st.cycles
        row[f"{net}_utilization"] = st.utilization
        row[f"{net}_lane_utilization"] = st.lane_utilization
    design20 = Design("x", "mls", fmt, None, max(row[f"{nets[0]}_acc_bits"], 2), lanes=dot)
    row["pe_area_fa"] = pe_area(design20)
    row["pe_area_fa_per_mac"] = pe_area_per_mac(design20)
    rows, cols = ArrayConfig.parse(array).rows, ArrayConfig.parse(array).cols
    row["array_area_fa"] = row["pe_area_fa"] * rows * cols
    for key in ("snr_activation", "snr_weight", "snr_error"):
        row[key] = quality[key]
    row["snr_gemm"] = quality[f"snr_gemm@{deficit}" + ("" if lanes == 1 else f"@L{lanes}")]
    return row


def _format_task(task) -> list[dict]:
    fmt, gc = task
    spec, stats = _STATE["spec"], _STATE["stats"]
    quality = gemm_quality(fmt, _STATE["tensors"], spec.acc_deficits, gc=gc, lanes=spec.lanes)
    return [evaluate_point(fmt, d, a, stats, quality, n, gc) for d in spec.acc_deficits for a in spec.arrays
            for n in spec.lanes]


def network_stats(arrays, networks=NETWORKS, lanes=(1,), gcs=(1,)) -> dict:
    """Design-independent workload sums per (network, array, lanes, gc), plus the FP32 reference
    energy per (network, array, "fp32") and the same-lane FP8/INT8 dot baselines' workloads
    (all of K one chunk) per (network, array, lanes, "flat")."""
    stats = {}
    for net in networks:
        for gc in gcs:
            gemms = network_gemms(net, gc=gc)
            for array in arrays:
                base = ArrayConfig.parse(array)
                for n in lanes:
                    config = ArrayConfig(base.rows, base.cols, base.overlap_drain, base.dataflow, lanes=n)
                    stats[(net, array, n, gc)] = workload_stats(gemms, config)
                    if gc == gcs[0]:
                        stats[(net, array, n, "flat")] = workload_stats(ungrouped_gemms(gemms), config)
                if gc == gcs[0]:
                    stats[(net, array, "fp32")] = workload_energy(workload_stats(gemms, base), "fp32")
    return stats


def run_sweep(spec: SweepSpec, jobs: int = 0, progress: bool = True) -> tuple[list[dict], dict]:  # noqa: D401
    """Evaluate every point; returns (rows sorted by format/Gc/deficit/array/lanes, timings)."""
    from tqdm import tqdm

    from model.capture import load_tensors

    timings = {}
    t0 = time.perf_counter()
    stats = network_stats(spec.arrays, spec.networks, spec.lanes, spec.gcs)
    timings["workload_setup_s"] = time.perf_counter() - t0
    tensors = load_tensors()
    tasks = [(fmt, gc) for fmt in spec.formats() for gc in spec.gcs]
    jobs = jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    rows: list[dict] = []
    if jobs == 1:
        _init_worker(stats, tensors, spec)
        for task in tqdm(tasks, desc="formats x Gc", disable=not progress):
            rows.extend(_format_task(task))
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(stats, tensors, spec)) as pool:
            for chunk in tqdm(pool.imap_unordered(_format_task, tasks), total=len(tasks),
                              desc=f"formats x Gc ({jobs} procs)", disable=not progress):
                rows.extend(chunk)
    timings["sweep_s"] = time.perf_counter() - t0
    timings["points"] = len(rows)
    timings["jobs"] = jobs
    order = {a: i for i, a in enumerate(spec.arrays)}
    rows.sort(key=lambda r: (r["E"], r["M"], r["G"], r["gc"], r["acc_deficit"], order[r["array"]], r["lanes"]))
    return rows, timings


def time_single_evaluation(repeats: int = 20, networks=NETWORKS) -> float:
    """Median seconds of one whole-network cost evaluation (every network, one design)."""
    stats_cache = {}
    samples = []
    gemms = {net: network_gemms(net) for net in networks}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for net in networks:
            st = workload_stats(gemms[net], ArrayConfig(16, 16))
            stats_cache[net] = workload_energy(st, "mls-e2m1g3")
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def pareto_front(rows: list[dict], cost: str, benefit: str) -> list[dict]:
    """Rows not dominated in (lower cost, higher benefit), sorted by cost."""
    front, best = [], -math.inf
    for row in sorted(rows, key=lambda r: (r[cost], -r[benefit])):
        if row[benefit] > best:
            front.append(row)
            best = row[benefit]
    return front


def _plot(rows, front, x, y, xlabel, ylabel, title, path, logx=False, vlines=()) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    sc = ax.scatter([r[x] for r in rows], [r[y] for r in rows], c=[r["elem_bits"] for r in rows],
                    s=6, cmap="viridis", alpha=0.6)
    ax.plot([r[x] for r in front], [r[y] for r in front], "r.-", lw=1, label="Pareto front")
    for r in front[:: max(1, len(front) // 8)]:
        ax.annotate(_label(r),
                    (r[x], r[y]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    for i, (label, value) in enumerate(vlines):
        ax.axvline(value, color="0.4", ls="--", lw=0.8)
        ax.annotate(label, (value, 1 - 0.05 * (i + 1)), xycoords=("data", "axes fraction"), fontsize=6,
                    rotation=0, xytext=(2, 0), textcoords="offset points", color="0.3")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(sc, label="element bits (1+E+M)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _label(r: dict) -> str:
    """``e2m1g3`` [``-4b`` accumulator deficit] [`` L9`` lanes] [`` Gc4``]."""
    return (r["format"] + ("" if r["acc_deficit"] == 0 else f"-{r['acc_deficit']}b")
            + ("" if r.get("lanes", 1) == 1 else f" L{r['lanes']}") + ("" if r.get("gc", 1) == 1 else f" Gc{r['gc']}"))


#: The paper's formats (ResNet-20/CIFAR-10 and ResNet-18/ImageNet): their quality at Gc = 1 with
#: an exact accumulator is the floor a recommended configuration must reach.
PAPER_FORMATS = {"resnet20": "e2m1g3", "resnet18": "e2m4g3"}


def recommend(rows: list[dict], array: str, network: str, same_format: bool = False) -> tuple[dict, dict] | None:
    """``(recommended row, floor row)``: the lowest energy per training step (compute + SRAM) on
    ``array`` among the points whose worst-pass GEMM SNR reaches that of the network's paper
    format (``PAPER_FORMATS``) at Gc = 1, exact accumulator, one lane; ``same_format`` keeps only
    the paper format's own points (then only L, Gc and the accumulator are chosen). Ties go to the
    earlier row (fewer bits, smaller Gc). None if the sweep lacks that floor point or the network."""
    key = f"{network}_step_mJ"
    floor = next((r for r in rows if r["format"] == PAPER_FORMATS.get(network) and r["array"] == array
                  and r["acc_deficit"] == 0 and r["lanes"] == 1 and r["gc"] == 1 and key in r), None)
    if floor is None:
        return None
    ok = [r for r in rows if r["array"] == array and r["snr_gemm"] >= floor["snr_gemm"]
          and (not same_format or r["format"] == floor["format"])]
    return min(ok, key=lambda r: r[key]), floor


TRAIN_SEEDS = (0, 1)


def gc_training(formats, gcs, seeds=TRAIN_SEEDS, epochs: int = 3, train_subset: int | None = None) -> list[dict]:
    """A short digits training (``model.train``, CPU, one thread) per (format, Gc, seed): every
    conv's A, W and E in ``format`` with ``Grouping.channel(gc)``. Returns one row per run with the
    final test accuracy (%); seeded, so a rerun gives the same rows."""
    from model.train import TrainConfig, train

    threads = torch.get_num_threads()
    rows = []
    try:
        for fmt in formats:
            for gc in gcs:
                quant = f"a={fmt},w={fmt},e={fmt}" + "".join(f",{r}.grouping=channel:{gc}" for r in "awe")
                for seed in seeds:
                    cfg = TrainConfig(quant=quant, epochs=epochs, seed=seed, progress=False, threads=1,
                                      train_subset=train_subset)
                    result = train(cfg, log=lambda *_: None)
                    rows.append({"format": str(fmt), "gc": gc, "seed": seed, "epochs": epochs,
                                 "final_test_acc": result["final_test_acc"]})
    finally:
        torch.set_num_threads(threads)
    return rows


def _training_section(training: list[dict]) -> list[str]:
    if not training:
        return []
    gcs = sorted({r["gc"] for r in training})
    seeds = sorted({r["seed"] for r in training})
    epochs = training[0]["epochs"]
    out = [f"Digits training per channel block (`model.train`, digits CNN, {epochs} epochs, seeds "
           f"{', '.join(map(str, seeds))}; final test accuracy in %, mean and per seed; every conv's A, W and E "
           "in the format with channel grouping of block Gc):", ""]
    table = []
    for fmt in dict.fromkeys(r["format"] for r in training):
        cells = []
        for gc in gcs:
            accs = [r["final_test_acc"] for r in training if r["format"] == fmt and r["gc"] == gc]
            cells.append(f"{sum(accs) / len(accs):.2f} ({' / '.join(f'{a:.2f}' for a in accs)})")
        table.append([f"`{fmt}`"] + cells)
    out += markdown_table(["format"] + [f"Gc={g}" for g in gcs], table, tight_rule=True)
    return out + ["", "Digits saturates near 99% and its test set is small: a difference of one or two test "
                  "images between Gc values is seed noise, not a measured cost of the channel block.", ""]


def _step_plot(rows, front, network, baselines, path) -> None:
    """Energy per training step (compute + SRAM) against worst-pass GEMM SNR over every swept
    (E, M, G, Gc, L, accumulator width): colour = lanes, marker = Gc."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    x = f"{network}_step_mJ"
    lanes = sorted({r["lanes"] for r in rows})
    gcs = sorted({r["gc"] for r in rows})
    cmap = plt.get_cmap("viridis")
    markers = "o^sDvP*X"
    for i, n in enumerate(lanes):
        for j, gc in enumerate(gcs):
            sel = [r for r in rows if r["lanes"] == n and r["gc"] == gc]
            ax.scatter([r[x] for r in sel], [r["snr_gemm"] for r in sel], s=5, alpha=0.5,
                       color=cmap(i / max(1, len(lanes) - 1)), marker=markers[j % len(markers)],
                       label=f"L={n}, Gc={gc}")
    ax.plot([r[x] for r in front], [r["snr_gemm"] for r in front], "r.-", lw=1, label="Pareto front")
    for r in front[:: max(1, len(front) // 8)]:
        ax.annotate(_label(r), (r[x], r["snr_gemm"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    for i, (label, value) in enumerate(sorted(baselines.items(), key=lambda kv: kv[1])):
        ax.axvline(value, color="0.4", ls="--", lw=0.8)
        ax.annotate(label, (value, 1 - 0.05 * (i + 1)), xycoords=("data", "axes fraction"), fontsize=6,
                    xytext=(2, 0), textcoords="offset points", color="0.3")
    ax.set_xscale("log")
    ax.set_xlabel(f"{network} energy per training step, compute + SRAM (mJ)")
    ax.set_ylabel("worst-pass GEMM output SNR (dB)")
    ax.set_title("Energy per step vs quality over (E, M, G, Gc, L, accumulator width)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _csv_value(v):
    return f"{v:.6g}" if isinstance(v, float) else v


BASELINE_MARKS = ("fp8e4m3-fp16acc", "fp8e4m3-fp32acc", "int8-int32acc", "bf16-fp32acc")


def write_outputs(rows, out_dir: Path, array_for_plots: str, baselines: dict | None = None,
                  network: str = "resnet20", step_baselines: dict | None = None,
                  training: list[dict] | None = None) -> None:
    """CSV of every point, three Pareto plots and ``dse.md``; ``baselines`` maps design name to
    ResNet-20 pJ/MAC (compute + SRAM) on the plotted array, ``step_baselines`` design name to
    energy per training step (mJ, compute + SRAM), both drawn as reference lines.

    Every output is a function of the rows only (no wall times), so a rerun rewrites the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "dse.csv", [{k: _csv_value(v) for k, v in row.items()} for row in rows])
    sel = [r for r in rows if r["array"] == array_for_plots]
    front_snr = pareto_front(sel, f"{network}_total_pJ_per_mac", "snr_gemm")
    _plot(sel, front_snr, f"{network}_total_pJ_per_mac", "snr_gemm",
          f"{network} training energy, compute + SRAM (pJ/MAC)", "worst-pass GEMM output SNR (dB)",
          f"MLS design space on a {array_for_plots} array: energy vs quality (dashed: baselines)",
          out_dir / "dse_pareto_snr.png", vlines=sorted((baselines or {}).items(), key=lambda kv: kv[1]))
    exact = [r for r in sel if r["acc_deficit"] == 0]
    front_area = pareto_front([dict(r, neg_area=-r["pe_area_fa_per_mac"]) for r in exact],
                              f"{network}_total_pJ_per_mac", "neg_area")
    _plot(exact, front_area, "pe_area_fa_per_mac", f"{network}_total_pJ_per_mac",
          "PE area proxy per MAC per cycle (adder-bit equivalents / lanes)",
          f"{network} energy (pJ/MAC)", "Energy vs PE area (exact accumulators)", out_dir / "dse_pareto_area.png")
    front_step = pareto_front(sel, f"{network}_step_mJ", "snr_gemm")
    _step_plot(sel, front_step, network, step_baselines or {}, out_dir / "dse_pareto_step.png")
    lines = ["# Design-space sweep", "",
             f"Points: {len(rows)} ({len({r['format'] for r in rows})} formats x "
             f"{len({r['acc_deficit'] for r in rows})} accumulator widths x {len({r['array'] for r in rows})} arrays x "
             f"lanes L {sorted({r['lanes'] for r in rows})} x channel blocks Gc {sorted({r['gc'] for r in rows})}; "
             "L = 1 is the scalar MLS PE, L > 1 the MLS dot PE). "
             "Run times are printed by `python -m sim.dse`, not written here, so this report is reproducible.", "",]
    lines += _recommendation_section(rows, array_for_plots)
    lines += _gc_quality_section(rows, array_for_plots)
    lines += _training_section(training or [])
    lines += [f"Pareto front of energy per training step ({network}, compute + SRAM) against worst-pass GEMM "
              f"SNR over (E, M, G, Gc, L, accumulator width), {array_for_plots} array (`dse_pareto_step.png`; "
              "points above 0 dB):", ""]
    lines += markdown_table(
        ["format", "L", "Gc", "acc deficit (bits)", f"{network} mJ/step", "lane util.", "gain vs FP32", "GEMM SNR (dB)"],
        [[r["format"], r["lanes"], r["gc"], r["acc_deficit"], f"{r[f'{network}_step_mJ']:.3f}",
          f"{r[f'{network}_lane_utilization']:.3f}", f"{r[f'{network}_gain_fp32_total']:.2f}", f"{r['snr_gemm']:.1f}"]
         for r in front_step if r["snr_gemm"] > 0], tight_rule=True)
    lines += ["", f"Baselines on the same array ({network}, compute + SRAM, mJ per training step): " +
              ", ".join(f"`{k}` {v:.3f}" for k, v in (step_baselines or {}).items()) + " (the same-lane FP8/INT8 "
              "dot PEs pack all of K: no group exponents stop their beats).", "",
              f"Baselines on the same array ({network}, compute + SRAM, pJ/MAC): " +
             ", ".join(f"`{k}` {v:.3f}" for k, v in (baselines or {}).items()) + ". "
             "An MLS format with G = 0 has only the per-tensor scale, so `e4m3g0`/`e5m2g0` are the "
             "quality of per-tensor-scaled FP8 (without Inf/NaN codes).", "",
             f"Pareto front (energy vs worst-pass GEMM SNR, {array_for_plots} array; points above 0 dB):", ""]
    lines += markdown_table(
        ["format", "L", "Gc", "acc deficit (bits)", f"{network} acc bits", "pJ/MAC (compute+SRAM)", "gain vs FP32",
         "GEMM SNR (dB)"],
        [[r["format"], r["lanes"], r["gc"], r["acc_deficit"], r[f"{network}_acc_bits"],
          f"{r[f'{network}_total_pJ_per_mac']:.3f}", f"{r[f'{network}_gain_fp32_total']:.2f}", f"{r['snr_gemm']:.1f}"]
         for r in front_snr if r["snr_gemm"] > 0],
        tight_rule=True)
    lines += _accuracy_section([r for r in rows if r["lanes"] == 1 and r["gc"] == 1], array_for_plots, network)
    lines += ["", "Plots: `dse_pareto_step.png`, `dse_pareto_snr.png`, `dse_pareto_area.png`; every point: `dse.csv`.", ""]
    (out_dir / "dse.md").write_text("\n".join(lines))


def _recommendation_section(rows, array) -> list[str]:
    out = ["## Recommended configurations", "",
           "Rule: the lowest energy per training step (compute + SRAM) on the "
           f"{array} array among the swept points whose worst-pass GEMM SNR reaches that of the network's "
           "paper format at Gc = 1 with an exact accumulator on the scalar PE (ResNet-20: "
           f"`{PAPER_FORMATS['resnet20']}`, ResNet-18: `{PAPER_FORMATS['resnet18']}`). **Recommended** keeps "
           "the paper format (whose training accuracy is known) and picks L, Gc and the accumulator; "
           "*proxy optimum* searches every format and is a candidate only: the SNR proxy comes from one "
           "digits conv, and a format the paper did not train needs a training run before it is built.",
           "A narrow accumulator saturates after every product on the scalar PE (L = 1) and after every "
           "beat on the dot PE (L > 1), each replayed in that order on the captured GEMMs.", ""]
    table = []
    for net, same, label in ((n, s_, lab) for n in NETWORKS
                             for s_, lab in ((True, "**recommended**"), (False, "proxy optimum"))):
        found = recommend(rows, array, net, same_format=same)
        if found is None:
            continue
        best, floor = found
        table.append([net, label, f"`{best['format']}`", best["lanes"], best["gc"], best["acc_deficit"],
                      best[f"{net}_acc_bits"], f"{best[f'{net}_step_mJ']:.3f}", f"{best[f'{net}_lane_utilization']:.3f}",
                      f"{best[f'{net}_gain_fp32_total']:.2f}", f"{best['snr_gemm']:.1f}",
                      f"`{floor['format']}` {floor['snr_gemm']:.1f} dB, {floor[f'{net}_step_mJ']:.3f} mJ"])
    if not table:
        return out + ["(the sweep lacks the paper formats at Gc = 1, exact, L = 1: no recommendation)", ""]
    out += markdown_table(["network", "pick", "format", "L", "Gc", "acc deficit", "acc bits", "mJ/step", "lane util.",
                           "gain vs FP32 (+SRAM)", "GEMM SNR (dB)", "quality floor (paper format, scalar)"],
                          table, tight_rule=True)
    return out + [""]


def _gc_quality_section(rows, array) -> list[str]:
    """GEMM SNR per Gc (exact accumulator) for the paper formats: what a larger channel block costs."""
    gcs = sorted({r["gc"] for r in rows})
    if len(gcs) < 2:
        return []
    out = ["Quality per channel block Gc (worst-pass GEMM SNR in dB, exact accumulator; quantization SNR of the "
           "activation / weight / error in brackets):", ""]
    table = []
    for fmt in sorted({PAPER_FORMATS[n] for n in NETWORKS}):
        cells = []
        for gc in gcs:
            r = next((r for r in rows if r["format"] == fmt and r["gc"] == gc and r["acc_deficit"] == 0
                      and r["array"] == array), None)
            cells.append("-" if r is None else f"{r['snr_gemm']:.2f} ({r['snr_activation']:.1f} / "
                                                 f"{r['snr_weight']:.1f} / {r['snr_error']:.1f})")
        table.append([f"`{fmt}`"] + cells)
    out += markdown_table(["format"] + [f"Gc={g}" for g in gcs], table, tight_rule=True)
    return out + [""]


ACCURACY_CSV = Path(__file__).resolve().parent.parent / "reports" / "accuracy_digits.csv"


def _accuracy_section(rows, array, network, path: Path = ACCURACY_CSV) -> list[str]:
    """Check the quality proxy against measured training accuracy (``python -m model.sweep``'s
    ``reports/accuracy_digits.csv``) where both exist."""
    if not path.exists():
        return []
    acc: dict[str, list[float]] = {}
    for rec in read_csv(path):
        acc.setdefault(rec.get("format", ""), []).append(float(rec["final_test_acc"]))
    ours = {r["format"]: r for r in rows if r["array"] == array and r["acc_deficit"] == 0}
    both = sorted(f for f in acc if f in ours)
    if len(both) < 3:
        return []
    out = ["", f"Quality proxy against measured digits accuracy (`{path.name}`, mean over seeds; "
           f"exact accumulators, {array} array):", ""]
    out += markdown_table(
        ["format", "GEMM SNR (dB)", "test accuracy (%)", f"{network} pJ/MAC"],
        [[f, f"{ours[f]['snr_gemm']:.1f}", f"{sum(acc[f]) / len(acc[f]):.2f}", f"{ours[f][network + '_total_pJ_per_mac']:.3f}"]
         for f in sorted(both, key=lambda f: ours[f]["snr_gemm"])], tight_rule=True)
    # Ties (formats with equal SNR or accuracy) get average ranks.
    rho = spearmanr([ours[f]["snr_gemm"] for f in both], [sum(acc[f]) / len(acc[f]) for f in both]).statistic
    out += ["", f"Spearman rank correlation of SNR and accuracy over these {len(both)} formats: {rho:.2f} "
            "(digits saturates near 99%, so only the low-SNR end separates)."]
    return out


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values


def _array_list(text: str) -> tuple[str, ...]:
    arrays = tuple(a.strip() for a in text.split(","))
    for a in arrays:
        try:
            ArrayConfig.parse(a)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.dse", description=__doc__.splitlines()[0])
    default = SweepSpec()
    parser.add_argument("--exp-bits", type=_int_list, default=default.exp_bits, help="E values, e.g. 1,2,3")
    parser.add_argument("--man-bits", type=_int_list, default=default.man_bits, help="M values")
    parser.add_argument("--group-bits", type=_int_list, default=default.group_bits, help="G values")
    parser.add_argument("--acc-deficits", type=_int_list, default=default.acc_deficits,
                        help="accumulator bits below exact (0 = exact)")
    parser.add_argument("--arrays", type=_array_list, default=default.arrays, help="array sizes RxC")
    parser.add_argument("--lanes", type=_int_list, default=default.lanes,
                        help="lanes L per PE (1 = the scalar MLS PE), e.g. 1,9,16")
    parser.add_argument("--gc", type=_int_list, default=default.gcs, help="channel blocks Gc, e.g. 1,4")
    parser.add_argument("--train-epochs", type=int, default=3,
                        help="epochs of the digits training per (paper format, Gc, seed) reported in dse.md "
                             "(0 = none; default 3, about 4 s a run on one core)")
    parser.add_argument("--networks", default=",".join(default.networks),
                        help="comma-separated networks; the first one is plotted (default resnet20,resnet18)")
    parser.add_argument("--plot-array", default="16x16", help="array size of the Pareto plots")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        networks = tuple(n.strip() for n in args.networks.split(",") if n.strip())
        unknown = [n for n in networks if n not in NETWORKS]
        if unknown or not networks:
            raise ValueError(f"--networks {args.networks!r}: choose from {', '.join(NETWORKS)}")
        spec = SweepSpec(args.exp_bits, args.man_bits, args.group_bits, args.acc_deficits, args.arrays, networks,
                         args.lanes, args.gc)
        if any(not 1 <= n <= 1024 for n in spec.lanes):
            raise ValueError(f"--lanes values must be in [1, 1024], got {spec.lanes}")
        if any(g < 1 for g in spec.gcs):
            raise ValueError(f"--gc values must be at least 1, got {spec.gcs}")
        if len(set(spec.lanes)) != len(spec.lanes) or len(set(spec.gcs)) != len(spec.gcs):
            raise ValueError(f"--lanes {spec.lanes} / --gc {spec.gcs}: a value is listed twice")
        if any(n > 1 for n in spec.lanes) and any(ArrayConfig.parse(a).dataflow != "os" for a in spec.arrays):
            raise ValueError("lanes > 1 need output-stationary arrays (the dot PE has no weight-stationary model)")
        formats = spec.formats()
        if not formats:
            raise ValueError("the sweep has no format (every E+M is 0)")
        if any(d < 0 for d in spec.acc_deficits):
            raise ValueError(f"accumulator deficits must be >= 0, got {spec.acc_deficits}")
        # a deficit at or beyond the exact width leaves no accumulator to build (2 bits: sign + 1)
        for net in spec.networks:
            k_max = max(g.k for g in network_gemms(net))
            narrowest = min(formats, key=lambda f: f.acc_bits_exact(k_max))
            acc = narrowest.acc_bits_exact(k_max) - max(spec.acc_deficits)
            if acc < 2:
                raise ValueError(f"--acc-deficits {max(spec.acc_deficits)}: {narrowest} on {net} (K up to {k_max}, "
                                 f"exact width {narrowest.acc_bits_exact(k_max)}) would leave a {acc}-bit "
                                 "accumulator; at least 2 bits are needed")
        if args.plot_array not in spec.arrays:
            raise ValueError(f"--plot-array {args.plot_array!r} is not one of the swept arrays {spec.arrays}")
        if args.train_epochs < 0:
            raise ValueError(f"--train-epochs must be >= 0, got {args.train_epochs}")
        if args.jobs < 0:
            raise ValueError(f"--jobs must be >= 0, got {args.jobs}")
    except (ValueError, TypeError) as error:
        parser.exit(2, f"error: {error}\n")
    rows, timings = run_sweep(spec, args.jobs, not args.no_progress)
    single = time_single_evaluation(networks=spec.networks)
    net = spec.networks[0]
    st = workload_stats(network_gemms(net), ArrayConfig.parse(args.plot_array))
    baselines = {name: workload_energy(st, name)["total"] / st.macs for name in BASELINE_MARKS}
    steps = {name: workload_energy(st, name)["total"] * 1e-9 for name in ("fp32", "fp8e4m3-fp32acc", "int8-int32acc")}
    plot = ArrayConfig.parse(args.plot_array)
    for n in (n for n in spec.lanes if n > 1):
        flat = workload_stats(ungrouped_gemms(network_gemms(net)), ArrayConfig(plot.rows, plot.cols, lanes=n))
        for name in (f"fp8e4m3-dot{n}", f"int8-dot{n}"):
            steps[name] = workload_energy(flat, name)["total"] * 1e-9
    training, t0 = [], time.perf_counter()
    if args.train_epochs and len(spec.gcs) > 1:
        paper = [PAPER_FORMATS[n] for n in spec.networks if PAPER_FORMATS[n] in {str(f) for f in spec.formats()}]
        training = gc_training(list(dict.fromkeys(paper)), spec.gcs, epochs=args.train_epochs)
    write_outputs(rows, args.out, args.plot_array, baselines, net, steps, training)
    if training:
        print(f"{len(training)} digits training runs (paper formats x Gc x seeds) in {time.perf_counter() - t0:.1f} s")
    print(f"{timings['points']} points in {timings['sweep_s']:.1f} s on {timings['jobs']} processes "
          f"(+{timings['workload_setup_s']:.2f} s tracing and per-array workload sums); one whole-network "
          f"cost evaluation ({' + '.join(spec.networks)}: GEMM folds, cycles, traffic, energy) "
          f"{single * 1e3:.2f} ms; wrote {args.out}/dse.csv, dse.md, dse_pareto_step.png, dse_pareto_snr.png, "
          "dse_pareto_area.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
