"""Train a CNN with every conv GEMM input in MLS: ``python -m model.train --help``.

The default (no arguments) trains the small digits CNN on scikit-learn's bundled digits with
``a=e2m1g3,w=e2m1g3,e=e2m1g3`` on the CPU in a few minutes. ``--quant fp32`` with the same
``--seed`` is the baseline for every accuracy claim.

Checkpoints are written at the end of every epoch (model, optimizer, schedule, history and the
torch RNG states that stochastic rounding draws from); ``--resume`` continues from one and ends
bit-identical to an uninterrupted run: the data order and augmentation of an epoch depend only
on (seed, epoch). Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain
values only, so a crafted file cannot run code.

Data-parallel: ``torchrun --nproc-per-node N -m model.train ...`` trains with
DistributedDataParallel (gloo on the CPU, NCCL on CUDA; see ``model.distributed``).
``--batch-size`` is the global batch, split evenly over the ranks. Rank 0 alone prints and writes
files; a 1-process torchrun run ends bit-identical to a plain run.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import QuantConfig
from .data import DATASETS, DatasetError, Split, load_dataset
from .distributed import DistContext, launched_by_torchrun, replicated_generator, seed_rank_stream
from .layers import quantize_model
from .fake_quantize import use_compiled_fake_quantize
from .resnet import MODELS, build_model

__all__ = ["TrainConfig", "CheckpointError", "train", "load_checkpoint", "main", "CHECKPOINT_VERSION"]

DEFAULT_QUANT = "a=e2m1g3,w=e2m1g3,e=e2m1g3"
CHECKPOINT_VERSION = 2
DEFAULT_IMAGE_SIZE = 224
EVAL_BATCH = 256
#: Settings that may change between a run and its resume without changing a bit of the result
#: (threads are checked on their own: they change the CPU kernels' summation order).
VOLATILE = ("resume", "stop_after", "progress", "out", "threads", "compile", "device", "workers", "log_csv",
            "overwrite")
RUN_FILES = ("checkpoint.pt", "result.json")
CSV_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_s", "train_s", "steps",
              "step_s")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (one line, naming the file)."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"
    data: str | None = None
    model: str | None = None  # default: digits_cnn for digits, resnet20 for cifar10, resnet18 for imagefolder
    quant: str = DEFAULT_QUANT
    quant_toml: str | None = None
    epochs: int = 15
    batch_size: int = 64  # the global batch (split over the ranks under torchrun)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    out: str | None = None  # directory for result.json and checkpoint.pt
    resume: bool = False
    overwrite: bool = False  # replace the run already in `out`
    stop_after: int | None = None  # stop after this many epochs *in this run* (simulates an interruption)
    progress: bool = True
    threads: int | None = None
    train_subset: int | None = None  # use only the first N training images (smoke tests)
    compile: bool = False  # fuse fake_quantize with torch.compile (same bits; pays off on big tensors)
    image_size: int | None = None  # imagefolder only: default 224
    workers: int | None = None  # imagefolder only: DataLoader worker processes per rank (default min(4, CPUs))
    channels_last: bool = False  # NHWC memory format for the model and its inputs (CUDA speed)
    log_csv: str | None = None  # per-epoch loss, accuracy and time as CSV

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
        for name in ("train_subset", "stop_after", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.resume and self.out is None:
            raise ValueError("resume needs an output directory (--out) holding checkpoint.pt")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one of them")
        if self.dataset == "digits" and self.data is not None:
            raise ValueError(f"--data {self.data!r} is not used by --dataset digits (scikit-learn's bundled digits); "
                             "drop --data or pick --dataset cifar10/imagefolder")
        if self.dataset == "imagefolder" and self.data is None:
            raise ValueError("--dataset imagefolder needs --data ROOT, a folder with train/<class>/ and val/<class>/")
        if self.dataset != "imagefolder":
            for name, flag in (("image_size", "--image-size"), ("workers", "--workers")):
                if getattr(self, name) is not None:
                    raise ValueError(f"{flag} applies to --dataset imagefolder only, not {self.dataset!r}")
        if self.image_size is not None and not 8 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be in [8, 4096], got {self.image_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    @property
    def model_name(self) -> str:
        return self.model or {"digits": "digits_cnn", "cifar10": "resnet20", "imagefolder": "resnet18"}[self.dataset]

    @property
    def resolved_image_size(self) -> int | None:
        if self.dataset != "imagefolder":
            return None
        return self.image_size or DEFAULT_IMAGE_SIZE

    @property
    def resolved_workers(self) -> int:
        return self.workers if self.workers is not None else min(4, os.cpu_count() or 1)

    def quant_config(self) -> QuantConfig:
        if self.quant_toml is not None:
            return QuantConfig.from_toml(Path(self.quant_toml))
        return QuantConfig.parse(self.quant)


def _device(name: str, local_rank: int, world_size: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and launched_by_torchrun():
        if device.index is not None and world_size > 1:
            raise ValueError(f"under torchrun use --device cuda (rank r takes cuda:LOCAL_RANK), not {name!r}")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def _versions(dataset: str) -> dict[str, str]:
    import sklearn

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "sklearn": sklearn.__version__, "platform": platform.platform()}
    if dataset == "imagefolder":
        import PIL

        out["pillow"] = PIL.__version__
    return out


@torch.no_grad()
def _eval_sums(model: torch.nn.Module, batches, device: torch.device, channels_last: bool) -> list[float]:
    """[loss sum, correct, count] of this process's share (model in eval mode; MLS layers quantize)."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in batches:
        x, y = _to_device(x, y, device, channels_last)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        count += len(y)
    return [loss_sum, float(correct), float(count)]


def evaluate(model: torch.nn.Module, split: Split, batch_size: int, device: torch.device) -> tuple[float, float]:
    """(mean loss, accuracy %) of the model on an in-memory split (in eval mode; MLS layers still quantize)."""
    loss_sum, correct, count = _eval_sums(model, split.batches(batch_size, shuffle=False), device, False)
    return loss_sum / count, 100.0 * correct / count


def _to_device(x, y, device, channels_last: bool):
    non_blocking = device.type == "cuda"
    x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Cosine decay over all steps, after a one-epoch linear warm-up."""
    t = epoch * steps_per_epoch + step
    total = cfg.epochs * steps_per_epoch
    warm = min(steps_per_epoch, total // 4)
    if t < warm:
        return cfg.lr * (t + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (t - warm) / max(1, total - warm)))


# -- run folder and checkpoints ---------------------------------------------------------------
def _check_out(cfg: TrainConfig) -> None:
    """Refuse to write over another run (deterministic, so every rank agrees before anyone writes)."""
    if cfg.out is not None:
        out = Path(cfg.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {str(out)!r} is a file, not a directory")
        existing = [name for name in RUN_FILES if (out / name).exists()]
        if existing and not (cfg.resume or cfg.overwrite):
            raise ValueError(f"{out} already holds a run ({', '.join(existing)}); continue it with --resume, "
                             "replace it with --overwrite, or choose a new --out")
    if cfg.log_csv is not None:
        log = Path(cfg.log_csv)
        if log.is_dir():
            raise ValueError(f"--log-csv {str(log)!r} is a directory, not a file")
        if log.exists() and not (cfg.resume or cfg.overwrite):
            raise ValueError(f"--log-csv {str(log)!r} already exists; use --resume, --overwrite or another file")


def _first_line(error: BaseException) -> str:
    """The informative line of a (possibly multi-line) torch/pickle error message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines[1:]:  # weights-only refusals put the reason after a long first line
        if "unsupported" in line.lower() or "global" in line.lower():
            return line.replace("WeightsUnpickler error: ", "")
    return lines[0] if lines else type(error).__name__


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; any problem is one ``CheckpointError`` line."""
    import pickle

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint ({error.strerror})") from None
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(f"{path}: not a checkpoint written by model.train (not a torch zip file; "
                              "truncated or foreign?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: refused: holds objects other than tensors and plain values, not loaded "
                              f"({_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 -- torch raises RuntimeError/EOFError/... on damaged archives
        raise CheckpointError(f"{path}: damaged checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a model.train checkpoint (a {type(ckpt).__name__}, not a dict)")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r} != {CHECKPOINT_VERSION} "
                              "(written by another version of model.train); start a new --out")
    expected = {"config": dict, "epoch": int, "world_size": int, "threads": int, "model": dict, "optimizer": dict,
                "rng_cpu": list, "rng_replicated": torch.Tensor, "history": list, "wall_s": float}
    for key, kind in expected.items():
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path}: malformed checkpoint ('{key}' missing or not a {kind.__name__})")
    return ckpt


def _restore(ckpt: dict, path: Path, cfg: TrainConfig, ctx: DistContext, model, optimizer, wgen, device):
    saved = {k: v for k, v in ckpt["config"].items() if k not in VOLATILE}
    now = {k: v for k, v in asdict(cfg).items() if k in saved}
    if saved != now:
        diff = sorted(k for k in saved if saved[k] != now.get(k))
        raise ValueError(f"{path} was written with different settings ({', '.join(diff)}); "
                         "resume with the same arguments or use a new --out")
    if ckpt["world_size"] != ctx.world_size:
        raise ValueError(f"{path} was written by {ckpt['world_size']} process(es), this run has {ctx.world_size}; "
                         f"resume with torchrun --nproc-per-node {ckpt['world_size']} (a run is reproducible "
                         "for a fixed world size)")
    threads = torch.get_num_threads()
    if ckpt["threads"] != threads:
        raise ValueError(f"{path} was written with {ckpt['threads']} torch thread(s) per process, this run has "
                         f"{threads}; pass --threads {ckpt['threads']} (the thread count changes the CPU kernels' "
                         "summation order, so the resumed run would not be bit-identical)")
    if len(ckpt["rng_cpu"]) != ctx.world_size:
        raise CheckpointError(f"{path}: malformed checkpoint ({len(ckpt['rng_cpu'])} RNG states for "
                              f"{ctx.world_size} ranks)")
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"][ctx.rank])
        wgen.set_state(ckpt["rng_replicated"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"][ctx.rank], device)
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as error:
        raise CheckpointError(f"{path}: does not fit this model ({_first_line(error)})") from None
    return ckpt["history"], ckpt["epoch"], ckpt["wall_s"]


def _write_csv(path: Path, history: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


# -- data -------------------------------------------------------------------------------------
class _InMemoryData:
    """digits / CIFAR-10 tensors: every rank builds each global batch and keeps its strided part."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext):
        self.train, self.test, self.num_classes, self.in_channels = load_dataset(cfg.dataset, cfg.data)
        if cfg.train_subset is not None:
            self.train = Split(self.train.images[:cfg.train_subset], self.train.labels[:cfg.train_subset],
                               self.train.augment)
        self.cfg, self.ctx = cfg, ctx
        self.sizes = self.train.steps(cfg.batch_size, ctx.world_size)
        if not self.sizes:
            raise ValueError(f"{len(self.train)} training images are fewer than the {ctx.world_size} ranks")
        self.n_train, self.n_test = len(self.train), len(self.test)

    @property
    def steps(self) -> int:
        return len(self.sizes)

    def train_batches(self, epoch: int):
        """(x, y, loss factor): the factor makes a shard's mean loss its share of the global mean."""
        ctx = self.ctx
        batches = self.train.batches(self.cfg.batch_size, shuffle=True, seed=self.cfg.seed, epoch=epoch,
                                     rank=ctx.rank, world_size=ctx.world_size)
        for (x, y), size in zip(batches, self.sizes):
            yield x, y, len(y) * ctx.world_size / size

    def eval_batches(self):
        return self.test.shard(self.ctx.rank, self.ctx.world_size).batches(EVAL_BATCH, shuffle=False)


class _ImageFolderData:
    """An ImageFolder tree streamed by DataLoaders (DistributedSampler shards the training set)."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, device: torch.device):
        from . import imagefolder

        self.tree = imagefolder.scan_imagefolder(cfg.data)
        train = self.tree.train[:cfg.train_subset] if cfg.train_subset is not None else self.tree.train
        self.tree = imagefolder.ImageFolderTree(self.tree.root, self.tree.classes, train, self.tree.val)
        self.num_classes, self.in_channels = len(self.tree.classes), 3
        self.n_train, self.n_test = len(self.tree.train), len(self.tree.val)
        if self.n_train < ctx.world_size:
            raise ValueError(f"{self.n_train} training images are fewer than the {ctx.world_size} ranks")
        size, workers, pin = cfg.resolved_image_size, cfg.resolved_workers, device.type == "cuda"
        per_rank = cfg.batch_size // ctx.world_size
        self.loader, self.sampler = imagefolder.train_loader(self.tree, size, per_rank, seed=cfg.seed, rank=ctx.rank,
                                                             world_size=ctx.world_size, workers=workers,
                                                             pin_memory=pin)
        self.val = imagefolder.val_loader(self.tree, size, EVAL_BATCH, rank=ctx.rank, world_size=ctx.world_size,
                                          workers=workers, pin_memory=pin)
        self._check = imagefolder.check_batch

    @property
    def steps(self) -> int:
        return len(self.loader)

    def train_batches(self, epoch: int):
        # DistributedSampler pads every rank's shard to the same length, so shards are equal
        # and each rank's mean loss is already its share of the global mean (factor 1).
        self.sampler.set_epoch(epoch)
        for batch in self.loader:
            x, y = self._check(batch)
            yield x, y, 1.0

    def eval_batches(self):
        return (self._check(batch) for batch in self.val)


# -- training ---------------------------------------------------------------------------------
def train(cfg: TrainConfig, log=print) -> dict:
    """Run (or resume) a training; returns the result dict also written to ``out/result.json``.

    Under torchrun every rank calls this; rank 0 alone logs and writes files.
    """
    rank, world, local = DistContext.environment() if launched_by_torchrun() else (0, 1, 0)
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} (the global batch) must be divisible by the "
                         f"{world} processes")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_compiled_fake_quantize(cfg.compile)
    device = _device(cfg.device, local, world)
    quant = cfg.quant_config()
    _check_out(cfg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ctx = DistContext.from_environment(device.type)
    try:
        return _train(cfg, ctx, device, quant, log if ctx.is_main else (lambda *_: None))
    finally:
        ctx.close()


def _train(cfg: TrainConfig, ctx: DistContext, device: torch.device, quant: QuantConfig, log) -> dict:
    data = _ImageFolderData(cfg, ctx, device) if cfg.dataset == "imagefolder" else _InMemoryData(cfg, ctx)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_name, data.num_classes, data.in_channels)
    wgen = replicated_generator(cfg.seed, device)
    swapped = quantize_model(model, quant, weight_generator=wgen)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
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
    csv_path = Path(cfg.log_csv) if cfg.log_csv else None
    if ctx.is_main:
        if out:
            out.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite:
            for path in [out / name for name in RUN_FILES] if out else []:
                path.unlink(missing_ok=True)
            if csv_path:
                csv_path.unlink(missing_ok=True)
    ctx.barrier()  # nobody looks for a checkpoint while rank 0 may still be removing one
    if cfg.resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        history, start_epoch, wall_before = _restore(ckpt, ckpt_path, cfg, ctx, model, optimizer, wgen, device)
        log(f"resumed from {ckpt_path} at epoch {start_epoch}/{cfg.epochs}")
    else:
        if cfg.resume:
            log(f"no checkpoint at {ckpt_path}; starting from scratch")
        seed_rank_stream(cfg.seed, ctx.rank)
    net = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    threads = torch.get_num_threads()
    per_rank = cfg.batch_size // ctx.world_size
    log(f"model {cfg.model_name} on {cfg.dataset} ({data.n_train} train / {data.n_test} test, "
        f"{data.num_classes} classes), quant {quant}, {len(swapped)} MLS layers, device {device}, seed {cfg.seed}, "
        f"{ctx.world_size} process(es) x batch {per_rank}" + (f" ({ctx.backend})" if ctx.distributed else ""))

    steps_per_epoch = data.steps
    t_start = time.perf_counter()
    epochs_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_run >= cfg.stop_after:
            log(f"stopping after {epochs_run} epoch(s) as asked (--stop-after); resume with --resume")
            break
        t_epoch = time.perf_counter()
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = None
        if cfg.progress and ctx.is_main:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       file=sys.stderr, dynamic_ncols=True)
        try:
            for step, (x, y, factor) in enumerate(data.train_batches(epoch)):
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(cfg, epoch, step, steps_per_epoch)
                x, y = _to_device(x, y, device, cfg.channels_last)
                logits = net(x)
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}, step {step}")
                optimizer.zero_grad(set_to_none=True)
                (loss if factor == 1.0 else loss * factor).backward()
                optimizer.step()
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        except (DatasetError, FloatingPointError) as error:
            error.rank_local = True  # raised by this rank alone: main() prints it on any rank
            raise
        finally:
            if bar is not None:
                bar.close()
        train_s = time.perf_counter() - t_epoch
        ctx.broadcast_buffers(model)  # evaluate every shard with rank 0's batch-norm statistics
        replicated_state = wgen.get_state()
        try:
            sums = _eval_sums(model, data.eval_batches(), device, cfg.channels_last)
        except DatasetError as error:
            error.rank_local = True
            raise
        # Ranks may hold different numbers of evaluation batches; rewinding the replicated stream
        # keeps their weight bits in step for the next epoch.
        wgen.set_state(replicated_state)
        test_loss_sum, test_correct, test_count = ctx.sum(sums)
        if ctx.distributed:
            loss_sum, correct, seen = ctx.sum([loss_sum, float(correct), float(seen)])
        test_loss, test_acc = test_loss_sum / test_count, 100.0 * test_correct / test_count
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen,
                  "test_loss": test_loss, "test_acc": test_acc, "lr": optimizer.param_groups[0]["lr"],
                  "epoch_s": time.perf_counter() - t_epoch, "train_s": train_s, "steps": steps_per_epoch,
                  "step_s": train_s / steps_per_epoch}
        history.append(record)
        epochs_run += 1
        log(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {record['train_loss']:.4f} acc {record['train_acc']:6.2f}%  "
            f"test loss {test_loss:.4f} acc {test_acc:6.2f}%  ({record['epoch_s']:.1f} s)")
        rng_cpu = ctx.gather(torch.get_rng_state())
        rng_cuda = ctx.gather(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None
        if ckpt_path and ctx.is_main:
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"version": CHECKPOINT_VERSION, "config": asdict(cfg), "epoch": epoch + 1,
                        "world_size": ctx.world_size, "threads": threads,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng_cpu": rng_cpu, "rng_cuda": rng_cuda, "rng_replicated": wgen.get_state(),
                        "history": history, "wall_s": wall_before + time.perf_counter() - t_start}, tmp)
            os.replace(tmp, ckpt_path)
        if csv_path and ctx.is_main:
            _write_csv(csv_path, history)
    finished = len(history) == cfg.epochs
    result = {
        "config": asdict(cfg), "quant": quant.to_dict(), "quant_str": str(quant), "model": cfg.model_name,
        "mls_layers": swapped, "seed": cfg.seed, "finished": finished, "epochs_done": len(history),
        "world_size": ctx.world_size, "backend": ctx.backend, "global_batch_size": cfg.batch_size,
        "rank_batch_size": per_rank, "threads": threads, "image_size": cfg.resolved_image_size,
        "num_classes": data.num_classes, "train_images": data.n_train, "test_images": data.n_test,
        "history": history, "final_test_acc": history[-1]["test_acc"] if history else None,
        "final_test_loss": history[-1]["test_loss"] if history else None,
        "wall_s": wall_before + time.perf_counter() - t_start, "versions": _versions(cfg.dataset),
    }
    if out and ctx.is_main:
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    if finished:
        log(f"final test accuracy: {result['final_test_acc']:.2f}% ({cfg.model_name}, {cfg.dataset}, quant {quant}, "
            f"seed {cfg.seed}, {ctx.world_size} process(es), {result['wall_s']:.0f} s)")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n\n")[0],
                                epilog="Data-parallel: torchrun --nproc-per-node N -m model.train ... "
                                       "(--batch-size is the global batch).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = TrainConfig()
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--data", metavar="PATH",
                   help="cifar10: folder of the python-pickle batches; imagefolder: ROOT with train/<class>/ and "
                        "val/<class>/ JPEG/PNG folders; never downloaded")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="default: digits_cnn for digits, resnet20 for cifar10, resnet18 for imagefolder")
    p.add_argument("--quant", default=d.quant,
                   help="'fp32', one format ('e2m1g3') or 'a=..,w=..,e=..' (see docs/training.md)")
    p.add_argument("--quant-toml", metavar="FILE", help="quantization config as TOML (overrides --quant)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="global batch (under torchrun split evenly over the processes)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (SGD, Nesterov, cosine)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu, cuda, cuda:N or auto (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--out", metavar="DIR", help="write result.json and checkpoint.pt here")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (and --log-csv)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs in this run (resume later)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (recorded; a resume must match)")
    p.add_argument("--compile", action="store_true",
                   help="fuse the quantizer with torch.compile (bit-identical; compiles for seconds first)")
    p.add_argument("--train-subset", type=int, metavar="N", help="train on the first N images only (smoke runs)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help=f"imagefolder: crop size (default {DEFAULT_IMAGE_SIZE})")
    p.add_argument("--workers", type=int, metavar="N",
                   help="imagefolder: DataLoader worker processes per rank (default min(4, CPUs))")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and inputs")
    p.add_argument("--log-csv", metavar="FILE", help="per-epoch loss, accuracy and time as CSV")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK", "0") if launched_by_torchrun() else "0"
    try:
        cfg = TrainConfig(**vars(args))
        train(cfg)
    except (ValueError, TypeError, DatasetError, FloatingPointError, OSError) as error:
        # Under torchrun every rank meets the same setting errors: rank 0 reports those; an
        # error of one rank's own data or numbers is reported by that rank.
        if rank == "0":
            print(f"error: {error}", file=sys.stderr)
        elif getattr(error, "rank_local", False):
            print(f"rank {rank}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
