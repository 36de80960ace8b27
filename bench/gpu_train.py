"""FP32 vs MLS ResNet-20 on CIFAR-10 on one CUDA GPU, side by side: ``python bench/gpu_train.py --help``.

One command trains ResNet-20 twice with the same seed and data, once in FP32 and once with every
conv GEMM input (A, W, E) in e2m1g3, and writes both final accuracies and step times to
``OUT/gpu_train.md`` and ``OUT/gpu_train.json`` (each run's own ``result.json`` and per-epoch CSV
sit in ``OUT/fp32/`` and ``OUT/e2m1g3/``)::

    python bench/gpu_train.py --data ~/data/cifar-10-batches-py --epochs 30 --out runs/gpu
    python bench/gpu_train.py --smoke          # no data needed: a tiny synthetic CIFAR folder, ~2 min

``--smoke`` writes a random-pixel folder in the CIFAR-10 pickle layout (6 x 256 images) and
trains 2 epochs of each, to check the whole path on a new machine; its accuracies mean nothing.
Without CUDA the script stops with a one-line error (exit 2): the CPU path is ``python -m
model.train``. Step time = training-loop time of an epoch / its steps (data augmentation on the
host included, evaluation excluded), the median over epochs after the first (which pays for
CUDA/cuDNN warm-up and, with ``--compile``, compilation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from model.data import DatasetError, write_synthetic_cifar10  # noqa: E402
from model.train import TrainConfig, train  # noqa: E402

RUNS = (("fp32", "fp32"), ("e2m1g3", "a=e2m1g3,w=e2m1g3,e=e2m1g3"))


def _step_ms(history: list[dict]) -> float:
    steps = [r["step_s"] for r in (history[1:] if len(history) > 1 else history)]
    return 1000.0 * statistics.median(steps)


def run_bench(data: str | Path, out: str | Path, *, epochs: int, batch_size: int, device: str, seed: int = 0,
              compile: bool = False, channels_last: bool = False, progress: bool = True,
              train_subset: int | None = None, overwrite: bool = False, log=print) -> dict:
    """Train the FP32 and the e2m1g3 ResNet-20 and write the side-by-side table; returns its rows."""
    out = Path(out)
    earlier = [p for p in (out / "gpu_train.json", out / "gpu_train.md", *(out / n for n, _ in RUNS)) if p.exists()]
    if earlier and not overwrite:
        raise ValueError(f"{out} already holds a benchmark ({', '.join(p.name for p in earlier)}); "
                         "pass --overwrite to replace it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, quant in RUNS:
        cfg = TrainConfig(dataset="cifar10", data=str(data), model="resnet20", quant=quant, epochs=epochs,
                          batch_size=batch_size, seed=seed, device=device, out=str(out / name), overwrite=overwrite,
                          log_csv=str(out / f"{name}.csv"), progress=progress, compile=compile,
                          channels_last=channels_last, train_subset=train_subset)
        log(f"== {name}: {quant}")
        result = train(cfg, log=log)
        rows.append({"run": name, "quant": result["quant_str"], "final_test_acc": result["final_test_acc"],
                     "best_test_acc": max(r["test_acc"] for r in result["history"]),
                     "step_ms": _step_ms(result["history"]), "steps_per_epoch": result["history"][-1]["steps"],
                     "epoch_s": statistics.median(r["epoch_s"] for r in result["history"]),
                     "wall_s": result["wall_s"]})
    base = rows[0]["step_ms"]
    for row in rows:
        row["step_vs_fp32"] = row["step_ms"] / base
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else device
    meta = {"device": gpu, "torch": torch.__version__, "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "compile": compile, "channels_last": channels_last, "data": str(data), "train_subset": train_subset}
    (out / "gpu_train.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# ResNet-20 on CIFAR-10: FP32 vs e2m1g3 ({gpu})", "",
             f"{epochs} epochs, global batch {batch_size}, seed {seed}, torch {torch.__version__}, "
             f"compile={compile}, channels_last={channels_last}, data `{data}`.", "",
             "| run | quant | final test acc | best test acc | step (ms) | vs FP32 | epoch (s) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | `{r['quant']}` | {r['final_test_acc']:.2f}% | {r['best_test_acc']:.2f}% | "
                     f"{r['step_ms']:.1f} | {r['step_vs_fp32']:.2f}x | {r['epoch_s']:.1f} |")
    (out / "gpu_train.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return {"meta": meta, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/gpu_train.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", metavar="PATH", help="CIFAR-10 folder (python-pickle layout; never downloaded)")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic CIFAR folder, 2 epochs: checks the path")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="a CUDA device (cuda, cuda:N)")
    p.add_argument("--compile", action="store_true", help="compile the quantizer (model.train --compile)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--out", default="runs/gpu_train", help="folder for gpu_train.md/.json and both runs")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    try:
        if not args.device.startswith("cuda"):
            raise ValueError(f"--device must be a CUDA device (cuda, cuda:N), got {args.device!r}")
        if not torch.cuda.is_available():
            raise ValueError("bench/gpu_train.py needs a CUDA GPU and torch.cuda.is_available() is False "
                             f"(torch {torch.__version__}); on the CPU use python -m model.train")
        if args.smoke == (args.data is not None):
            raise ValueError("give --data PATH (a CIFAR-10 folder) or --smoke, one of them")
        if args.smoke:
            with tempfile.TemporaryDirectory(prefix="gpu_train_smoke_") as tmp:
                folder = write_synthetic_cifar10(Path(tmp) / "cifar-10-batches-py", per_batch=256)
                run_bench(folder, args.out, epochs=2, batch_size=args.batch_size, device=args.device,
                          seed=args.seed, compile=args.compile, channels_last=args.channels_last,
                          progress=args.progress, overwrite=args.overwrite)
        else:
            run_bench(args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                      seed=args.seed, compile=args.compile, channels_last=args.channels_last,
                      progress=args.progress, overwrite=args.overwrite)
    except (ValueError, TypeError, DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
