"""Accuracy sweep over MLS formats: ``python -m model.sweep --help``.

Trains the same model with the same seed(s) and data once per format (every conv GEMM input,
A, W and E, in that format; roundings and first/last-layer policy as in ``model.train``) and
writes ``<out>/accuracy_<dataset>.md``, ``.csv`` and ``.png``: final test accuracy against the
element width, with the FP32 run as the reference line.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .config import QuantConfig
from .data import DATASETS, DatasetError
from .formats import MLSFormat
from .train import TrainConfig, train

__all__ = ["DEFAULT_FORMATS", "run_sweep", "write_report", "main"]

DEFAULT_FORMATS = ("fp32", "e5m2g3", "e4m3g3", "e3m3g3", "e2m3g3", "e2m1g3", "e1m1g3", "e2m1g0", "e4m3g0")


def _quant_for(fmt: str, policy: str) -> str:
    if fmt == "fp32":
        return "fp32"
    MLSFormat.parse(fmt)  # validate early, before any training
    return f"a={fmt},w={fmt},e={fmt}" + (f",{policy}" if policy else "")


def run_sweep(formats, seeds, base: TrainConfig, policy: str = "", log=print) -> list[dict]:
    """Train once per (format, seed); returns one row per run."""
    from tqdm import tqdm

    rows = []
    runs = [(f, s) for f in formats for s in seeds]
    for fmt, seed in tqdm(runs, desc="sweep", file=sys.stderr, disable=not base.progress):
        cfg = TrainConfig(**{**base.__dict__, "quant": _quant_for(fmt, policy), "seed": seed, "progress": False,
                             "out": None, "resume": False})
        result = train(cfg, log=lambda *_: None)
        final = result["final_test_acc"]
        best = max(r["test_acc"] for r in result["history"])
        elem_bits = 32 if fmt == "fp32" else MLSFormat.parse(fmt).elem_bits
        group_bits = 0 if fmt == "fp32" else MLSFormat.parse(fmt).group_bits
        rows.append({"format": fmt, "seed": seed, "elem_bits": elem_bits, "group_bits": group_bits,
                     "final_test_acc": final, "best_test_acc": best, "final_test_loss": result["final_test_loss"],
                     "final_train_loss": result["history"][-1]["train_loss"], "wall_s": result["wall_s"],
                     "quant": result["quant_str"]})
        log(f"{fmt:>8s} seed {seed}: final test acc {final:6.2f}% (best {best:6.2f}%) in {result['wall_s']:.0f} s")
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    out = []
    for fmt in dict.fromkeys(r["format"] for r in rows):
        runs = [r for r in rows if r["format"] == fmt]
        accs = [r["final_test_acc"] for r in runs]
        out.append({"format": fmt, "elem_bits": runs[0]["elem_bits"], "group_bits": runs[0]["group_bits"],
                    "mean": statistics.fmean(accs), "min": min(accs), "max": max(accs), "accs": accs,
                    "wall_s": sum(r["wall_s"] for r in runs)})
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_report(rows: list[dict], out: Path, dataset: str, command: str, base: TrainConfig, policy: str,
                 total_s: float) -> list[Path]:
    """Write the CSV (one row per run), Markdown (summary table) and PNG (accuracy vs bits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"accuracy_{dataset}"
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = _summary(rows)
    ref = next((s for s in summary if s["format"] == "fp32"), None)
    quant_example = QuantConfig.parse(_quant_for("e2m1g3", policy))
    lines = [
        f"# Accuracy vs MLS format: {dataset}",
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
        f"Model `{base.model_name}`, {base.epochs} epochs, batch {base.batch_size}, SGD (Nesterov, momentum "
        f"{base.momentum}, weight decay {base.weight_decay}), peak lr {base.lr} with one-epoch warm-up and cosine decay; "
        f"seeds {sorted({r['seed'] for r in rows})}; code at commit `{_git_commit()}`; total {total_s / 60:.1f} min on CPU.",
        "",
        "Every conv quantizes all its GEMM inputs (forward A, W; backward-data E, W; backward-weight E, A) in the "
        "listed format, channel-wise groups, nearest rounding for A/W and stochastic for E (8 random bits); "
        f"policy: `{quant_example}`. `g0` formats have no group exponent (tensor scale only). "
        "Batch norm, activations, loss, optimizer and master weights are FP32. Accuracy is on the fixed "
        "test split (359 images for digits), after the last epoch.",
        "",
        "| format | bits/element | G | final test acc (mean) | per seed | vs FP32 |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for s in summary:
        delta = "" if ref is None or s is ref else f"{s['mean'] - ref['mean']:+.2f}"
        per_seed = ", ".join(f"{a:.2f}" for a in s["accs"])
        bits = "32" if s["format"] == "fp32" else str(s["elem_bits"])
        lines.append(f"| {s['format']} | {bits} | {s['group_bits']} | {s['mean']:.2f}% | {per_seed} | {delta} |")
    lines += ["", f"![accuracy vs bits]({stem.with_suffix('.png').name})", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summary:
        if s["format"] == "fp32":
            continue
        marker = "s" if s["group_bits"] == 0 else "o"
        x = s["elem_bits"] + (0.15 if s["group_bits"] == 0 else 0.0)  # keep g0 beside its g>0 twin
        ax.errorbar(x, s["mean"], yerr=[[s["mean"] - s["min"]], [s["max"] - s["mean"]]],
                    fmt=marker, capsize=3, color="tab:orange" if s["group_bits"] == 0 else "tab:blue")
        ax.annotate(s["format"], (x, s["mean"]), textcoords="offset points", xytext=(6, -3), fontsize=8)
    if ref is not None:
        ax.axhline(ref["mean"], color="k", linestyle="--", linewidth=1, label=f"FP32 {ref['mean']:.2f}%")
        ax.legend(loc="best")
    ax.set_xlabel("bits per element (1 + E + M)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"{dataset}: MLS training accuracy vs element width (circles: G>0, squares: G=0)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return [stem.with_suffix(ext) for ext in (".md", ".csv", ".png")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = TrainConfig()
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data", metavar="PATH", help="CIFAR-10 folder (python-pickle layout) or ImageFolder ROOT")
    p.add_argument("--model", help="default: digits_cnn for digits, resnet20 for cifar10, resnet18 for imagefolder")
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS), help="comma-separated; 'fp32' is the baseline")
    p.add_argument("--policy", default="", help="extra quant items for every MLS run, e.g. 'first=fp32,last=mls'")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int)
    p.add_argument("--train-subset", type=int, metavar="N", help="train on the first N images only (smoke runs)")
    p.add_argument("--out", default="reports", help="report folder")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    command = "python -m model.sweep " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        if not formats:
            raise ValueError("--formats is empty")
        for fmt in formats:
            _quant_for(fmt, args.policy)
            QuantConfig.parse(_quant_for(fmt, args.policy))
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
        if not seeds:
            raise ValueError("--seeds is empty")
        base = TrainConfig(dataset=args.dataset, data=args.data, model=args.model, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, device=args.device, threads=args.threads,
                           progress=args.progress, train_subset=args.train_subset)
        t0 = time.perf_counter()
        rows = run_sweep(formats, seeds, base, args.policy)
        paths = write_report(rows, Path(args.out), args.dataset, command, base, args.policy, time.perf_counter() - t0)
    except (ValueError, TypeError, DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
