"""Train a CNN with every conv GEMM input in MLS: ``python -m model.train --help``.

The default (no arguments) trains the small digits CNN on scikit-learn's bundled digits with
``a=e2m1g3,w=e2m1g3,e=e2m1g3`` on the CPU in a few minutes. ``--quant fp32`` with the same
``--seed`` is the baseline for every accuracy claim.

Checkpoints are written at the end of every epoch (model, optimizer, schedule, history and the
torch RNG state that stochastic rounding draws from); ``--resume`` continues from one and ends
bit-identical to an uninterrupted run: the data order and augmentation of an epoch depend only
on (seed, epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import QuantConfig
from .data import DATASETS, DatasetError, Split, load_dataset
from .layers import quantize_model
from .fake_quantize import use_compiled_fake_quantize
from .resnet import MODELS, build_model

__all__ = ["TrainConfig", "train", "main"]

DEFAULT_QUANT = "a=e2m1g3,w=e2m1g3,e=e2m1g3"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"
    data: str | None = None
    model: str | None = None  # default: digits_cnn for digits, resnet20 for cifar10
    quant: str = DEFAULT_QUANT
    quant_toml: str | None = None
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    out: str | None = None  # directory for result.json and checkpoint.pt
    resume: bool = False
    stop_after: int | None = None  # stop after this many epochs *in this run* (simulates an interruption)
    progress: bool = True
    threads: int | None = None
    train_subset: int | None = None  # use only the first N training images (smoke tests)
    compile: bool = False  # fuse fake_quantize with torch.compile (same bits; pays off on big tensors)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model is not None and self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"train_subset must be >= 1, got {self.train_subset}")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f"stop_after must be >= 1, got {self.stop_after}")
        if self.resume and self.out is None:
            raise ValueError("resume needs an output directory (--out) holding checkpoint.pt")

    @property
    def model_name(self) -> str:
        return self.model or ("digits_cnn" if self.dataset == "digits" else "resnet20")

    def quant_config(self) -> QuantConfig:
        if self.quant_toml is not None:
            return QuantConfig.from_toml(Path(self.quant_toml))
        return QuantConfig.parse(self.quant)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


def _versions() -> dict[str, str]:
    import sklearn

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "platform": platform.platform()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, split, batch_size: int, device: torch.device) -> tuple[float, float]:
    """(mean loss, accuracy %) of the model (in eval mode; MLS layers still quantize)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in split.batches(batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(split), 100.0 * correct / len(split)


def _lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Cosine decay over all steps, after a one-epoch linear warm-up."""
    t = epoch * steps_per_epoch + step
    total = cfg.epochs * steps_per_epoch
    warm = min(steps_per_epoch, total // 4)
    if t < warm:
        return cfg.lr * (t + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (t - warm) / max(1, total - warm)))


def train(cfg: TrainConfig, log=print) -> dict:
    """Run (or resume) a training; returns the result dict also written to ``out/result.json``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_compiled_fake_quantize(cfg.compile)
    device = _device(cfg.device)
    quant = cfg.quant_config()
    train_split, test_split, num_classes, in_channels = load_dataset(cfg.dataset, cfg.data)
    if cfg.train_subset is not None:
        train_split = Split(train_split.images[:cfg.train_subset], train_split.labels[:cfg.train_subset],
                            train_split.augment)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_name, num_classes, in_channels)
    swapped = quantize_model(model, quant)
    model.to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    history: list[dict] = []
    start_epoch, wall_before = 0, 0.0
    out = Path(cfg.out) if cfg.out else None
    ckpt_path = out / "checkpoint.pt" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{ckpt_path}: checkpoint version {ckpt.get('version')} != {CHECKPOINT_VERSION}")
        volatile = ("resume", "stop_after", "progress", "out", "threads", "compile", "device")
        saved = {k: v for k, v in ckpt["config"].items() if k not in volatile}
        now = {k: v for k, v in asdict(cfg).items() if k in saved}
        if saved != now:
            diff = sorted(k for k in saved if saved[k] != now.get(k))
            raise ValueError(f"{ckpt_path} was written with different settings ({', '.join(diff)}); "
                             "resume with the same arguments or use a new --out")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        history, start_epoch, wall_before = ckpt["history"], ckpt["epoch"], ckpt["wall_s"]
        log(f"resumed from {ckpt_path} at epoch {start_epoch}/{cfg.epochs}")
    elif cfg.resume:
        log(f"no checkpoint at {ckpt_path}; starting from scratch")
    log(f"model {cfg.model_name} on {cfg.dataset} ({len(train_split)} train / {len(test_split)} test), "
        f"quant {quant}, {len(swapped)} MLS layers, device {device}, seed {cfg.seed}")

    steps_per_epoch = math.ceil(len(train_split) / cfg.batch_size)
    t_start = time.perf_counter()
    epochs_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_run >= cfg.stop_after:
            log(f"stopping after {epochs_run} epoch(s) as asked (--stop-after); resume with --resume")
            break
        t_epoch = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        batches = train_split.batches(cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch)
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       file=sys.stderr, dynamic_ncols=True)
        for step, (x, y) in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(cfg, epoch, step, steps_per_epoch)
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        if bar is not None:
            bar.close()
        test_loss, test_acc = evaluate(model, test_split, 256, device)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen,
                  "test_loss": test_loss, "test_acc": test_acc, "lr": optimizer.param_groups[0]["lr"],
                  "epoch_s": time.perf_counter() - t_epoch}
        history.append(record)
        epochs_run += 1
        log(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {record['train_loss']:.4f} acc {record['train_acc']:6.2f}%  "
            f"test loss {test_loss:.4f} acc {test_acc:6.2f}%  ({record['epoch_s']:.1f} s)")
        if ckpt_path:
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"version": CHECKPOINT_VERSION, "config": asdict(cfg), "epoch": epoch + 1,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng_cpu": torch.get_rng_state(),
                        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        "history": history, "wall_s": wall_before + time.perf_counter() - t_start}, tmp)
            os.replace(tmp, ckpt_path)
    finished = len(history) == cfg.epochs
    result = {
        "config": asdict(cfg), "quant": quant.to_dict(), "quant_str": str(quant), "model": cfg.model_name,
        "mls_layers": swapped, "seed": cfg.seed, "finished": finished, "epochs_done": len(history),
        "history": history, "final_test_acc": history[-1]["test_acc"] if history else None,
        "final_test_loss": history[-1]["test_loss"] if history else None,
        "wall_s": wall_before + time.perf_counter() - t_start, "versions": _versions(),
    }
    if out:
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    if finished:
        log(f"final test accuracy: {result['final_test_acc']:.2f}% ({cfg.model_name}, {cfg.dataset}, quant {quant}, "
            f"seed {cfg.seed}, {result['wall_s']:.0f} s)")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = TrainConfig()
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--data", metavar="PATH", help="CIFAR-10 folder (python-pickle layout); never downloaded")
    p.add_argument("--model", choices=sorted(MODELS), help="default: digits_cnn for digits, resnet20 for cifar10")
    p.add_argument("--quant", default=d.quant,
                   help="'fp32', one format ('e2m1g3') or 'a=..,w=..,e=..' (see docs/training.md)")
    p.add_argument("--quant-toml", metavar="FILE", help="quantization config as TOML (overrides --quant)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (SGD, Nesterov, cosine)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu, cuda, cuda:N or auto")
    p.add_argument("--out", metavar="DIR", help="write result.json and checkpoint.pt here")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs in this run (resume later)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--compile", action="store_true",
                   help="fuse the quantizer with torch.compile (bit-identical; compiles for seconds first)")
    p.add_argument("--train-subset", type=int, metavar="N", help="train on the first N images only (smoke runs)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = TrainConfig(**vars(args))
        train(cfg)
    except (ValueError, TypeError, DatasetError, FloatingPointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
