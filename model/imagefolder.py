"""ImageNet-style data from a local ImageFolder tree, streamed by a ``DataLoader`` (docs/training.md).

Layout (nothing is downloaded)::

    ROOT/train/<class>/<image>.jpg|.jpeg|.png     one folder per class
    ROOT/val/<class>/<image>.jpg|.jpeg|.png       the same class folders

Class names are the folder names, sorted; labels are their indices. Hidden entries (names
starting with ``.``) are skipped; any other file that is not a JPEG/PNG image, a loose file next
to the class folders, an empty class folder, no class at all, or train and val with different
classes is an error naming the path (``DatasetError``, one line). Images are decoded with Pillow
when they are read; one that cannot be decoded stops training with an error naming its file.

Why Pillow and not torchvision: ``torchvision==0.28.0`` (the release that matches torch 2.13.0)
installs from PyPI but does not import next to the CPU build of torch used here ("operator
torchvision::nms does not exist"), so the loader and the two standard ResNet transforms are
written here on Pillow (``pip install -e .[imagefolder]``):

- train: ``random_resized_crop`` (area 8-100 % of the image, aspect ratio 3/4-4/3, ten tries, then
  the centre crop, as torchvision's ``RandomResizedCrop``) resized bilinearly to
  ``size x size``, then a horizontal flip with probability 1/2;
- val: the shorter side resized to ``int(size / 0.875)`` (256 for 224), then the centre
  ``size x size`` crop.

Both end in ``float32 [3, size, size]`` normalized with the ImageNet mean and std.

Determinism: the random crop and flip of one image come from a generator seeded with
``(seed, epoch, index)`` alone, not from the worker or the rank that happens to load it, so a
resumed run, any ``--workers`` and any world size see the same pixels for the same sample. The
epoch's order comes from ``DistributedSampler(seed=seed)`` with ``set_epoch(epoch)``, which also
shards it by rank (rank r takes every world-size-th sample of the shuffled order, padded to equal
length as the sampler does); validation is split the same way without padding.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "ImageFolderTree", "scan_imagefolder",
           "random_resized_crop_box", "train_transform", "val_transform", "ImageFolderDataset",
           "EpochSampler", "ShardSampler", "train_loader", "val_loader", "check_batch",
           "write_synthetic_imagefolder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LAYOUT = "ROOT/train/<class>/*.jpg|png and ROOT/val/<class>/*.jpg|png"


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("--dataset imagefolder needs Pillow: pip install -e '.[imagefolder]'") from None
    return Image


@dataclass(frozen=True)
class ImageFolderTree:
    """The scanned tree: sorted class names and (path, label) samples of each split."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]


def _class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DatasetError(f"ImageFolder split {str(split_dir)!r} is not a directory "
                           f"(expected {_LAYOUT}; nothing is downloaded)")
    classes = []
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise DatasetError(f"{entry.path}: not a class folder (only class folders may sit in {split_dir})")
        classes.append(entry.name)
    if not classes:
        raise DatasetError(f"{split_dir}: no class folders (expected {split_dir}/<class>/<image>.jpg|.png)")
    return classes


def _images(class_dir: Path) -> list[str]:
    files = []
    for entry in sorted(os.scandir(class_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_file() or not entry.name.lower().endswith(IMAGE_EXTENSIONS):
            raise DatasetError(f"{entry.path}: not a .jpg/.jpeg/.png image file (class folders hold images only)")
        files.append(entry.path)
    if not files:
        raise DatasetError(f"{class_dir}: class folder holds no .jpg/.jpeg/.png images")
    return files


def scan_imagefolder(root: str | Path) -> ImageFolderTree:
    """List a tree (file names only; images are decoded when read). Errors name the path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"ImageFolder root {str(root)!r} is not a directory (expected {_LAYOUT}; "
                           "nothing is downloaded)")
    train_classes = _class_folders(root / "train")
    val_classes = _class_folders(root / "val")
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise DatasetError(f"{root / 'train'} and {root / 'val'} have different classes: "
                           f"only in train: {', '.join(only_train) or '-'}; only in val: {', '.join(only_val) or '-'}")
    splits = []
    for split in ("train", "val"):
        splits.append(tuple((path, label) for label, name in enumerate(train_classes)
                            for path in _images(root / split / name)))
    return ImageFolderTree(root, tuple(train_classes), *splits)


# -- transforms (Pillow) ----------------------------------------------------------------------
def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height) of torchvision's RandomResizedCrop sampling."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height  # fallback: the centre crop with the ratio clamped into range
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _to_tensor(image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)  # [H, W, 3]
    x = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def train_transform(image, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Random-resized crop to size x size (bilinear), random horizontal flip, normalize."""
    Image = _pil()
    left, top, w, h = random_resized_crop_box(image.width, image.height, rng)
    out = image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _to_tensor(out)


def val_transform(image, size: int) -> torch.Tensor:
    """Shorter side to int(size / 0.875), centre size x size crop, normalize."""
    Image = _pil()
    short = int(size / 0.875)
    w, h = image.width, image.height
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    out = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return _to_tensor(out.crop((left, top, left + size, top + size)))


def _seed_entropy(seed: int, epoch: int, index: int) -> tuple[int, ...]:
    seed %= 1 << 64
    return (seed & 0xFFFFFFFF, seed >> 32, epoch, index)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Samples of one split. Indexed by ``(epoch, index)`` (see ``EpochSampler``) or a plain index.

    An item is ``(image [3, size, size], label, error)``; ``error`` is ``""`` or the one-line
    reason the file could not be read (the image is then zeros), which ``check_batch`` raises in
    the training process: an exception inside a worker would reach it as a multi-line traceback.
    """

    def __init__(self, samples, size: int, train: bool, seed: int = 0):
        if size < 8:
            raise ValueError(f"image size must be >= 8, got {size}")
        self.samples = tuple(samples)
        self.size, self.train, self.seed = size, train, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path, label = self.samples[index]
        Image = _pil()
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except Exception as error:  # noqa: BLE001 -- Pillow raises OSError, SyntaxError, ValueError, ...
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            return torch.zeros(3, self.size, self.size), label, f"{path}: cannot read image ({reason})"
        if self.train:
            rng = np.random.default_rng(_seed_entropy(self.seed, epoch, index))
            return train_transform(image, self.size, rng), label, ""
        return val_transform(image, self.size), label, ""


def check_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a collated batch, or the first unreadable file's ``DatasetError``."""
    images, labels, errors = batch
    for error in errors:
        if error:
            raise DatasetError(error)
    return images, labels


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` from a ``DistributedSampler``, so items know their epoch in any worker."""

    def __init__(self, n: int, rank: int, world_size: int, seed: int, shuffle: bool = True):
        self.inner = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank,
                                                         shuffle=shuffle, seed=seed, drop_last=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class ShardSampler(torch.utils.data.Sampler):
    """Indices rank, rank + world, ... in order: every sample once over all ranks (no padding)."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = range(rank, n, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader(dataset, sampler, batch_size: int, workers: int, pin_memory: bool):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                       pin_memory=pin_memory, drop_last=False,
                                       persistent_workers=False)


def train_loader(tree: ImageFolderTree, size: int, batch_size: int, *, seed: int, rank: int = 0,
                 world_size: int = 1, workers: int = 0, pin_memory: bool = False):
    """(DataLoader, EpochSampler) of this rank's shard of the training split; call ``set_epoch``."""
    sampler = EpochSampler(len(tree.train), rank, world_size, seed)
    dataset = ImageFolderDataset(tree.train, size, train=True, seed=seed)
    return _loader(dataset, sampler, batch_size, workers, pin_memory), sampler


def val_loader(tree: ImageFolderTree, size: int, batch_size: int, *, rank: int = 0, world_size: int = 1,
               workers: int = 0, pin_memory: bool = False):
    """DataLoader of this rank's share of the validation split (in order, no padding)."""
    dataset = ImageFolderDataset(tree.val, size, train=False)
    return _loader(dataset, ShardSampler(len(tree.val), rank, world_size), batch_size, workers, pin_memory)


def write_synthetic_imagefolder(root: str | Path, classes=("a", "b", "c"), train_per_class: int = 4,
                                val_per_class: int = 2, size: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """Write a tiny tree of random-noise PNGs in the ImageFolder layout (pipeline smoke tests, not data).

    Each class gets its own mean colour, so a model can learn something from it.
    """
    Image = _pil()
    root = Path(root)
    rng = np.random.default_rng(seed)
    width, height = size
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            base = np.array([(60 * label) % 256, (120 + 50 * label) % 256, (200 - 70 * label) % 256])
            for i in range(count):
                noise = rng.integers(-50, 51, (height, width, 3))
                pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root
