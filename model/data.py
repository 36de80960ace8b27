"""Datasets for the training framework; nothing is ever downloaded.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, shipped with
  sklearn). A fixed split (seed 0) gives 1,437 training and 360 test images, standardized with
  the training mean and std. No augmentation (the images are tiny and centred).
- ``cifar10``: the standard python-pickle layout (``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` from ``cifar-10-python.tar.gz``) in a local folder. The pickles are untrusted
  input, so they are read with a restricted unpickler that can only rebuild plain numpy arrays,
  lists, dicts and strings: a pickle naming any other callable is refused before it runs.
  Training augmentation is the standard random 32x32 crop of the 4-pixel zero-padded image plus
  a random horizontal flip; both sets are normalized with the usual per-channel mean/std.

- ``imagefolder``: a local ImageFolder tree (``train/`` and ``val/`` class folders of JPEG/PNG),
  streamed by a ``DataLoader``; see ``model.imagefolder``.

Batches come from ``Split.batches(epoch, ...)``: the order and augmentation of an epoch depend
only on (seed, epoch), so a resumed run sees exactly the data of an uninterrupted one. Under
data-parallel training every rank builds the same global batch and keeps its rank-strided part
(``rank=``, ``world_size=``), so each step trains on the same samples, augmented the same way, as
a one-process run.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DATASETS", "IN_MEMORY_DATASETS", "CIFAR10_FILES", "DatasetError", "Split", "load_dataset",
           "load_digits", "load_cifar10", "safe_load_pickle", "write_synthetic_cifar10"]

DATASETS = ("digits", "cifar10", "imagefolder")
IN_MEMORY_DATASETS = ("digits", "cifar10")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class DatasetError(ValueError):
    """A dataset is missing or malformed (the message is one line for the CLI)."""


@dataclass
class Split:
    """One split held in memory: images [N, C, H, W] float32, labels [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor
    augment: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def shard(self, rank: int, world_size: int) -> Split:
        """Samples rank, rank + world_size, ... (an evaluation share; all ranks together hold each once)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size - 1}], got {rank}")
        if world_size == 1:
            return self
        return Split(self.images[rank::world_size], self.labels[rank::world_size], self.augment)

    def batches(self, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0, drop_last: bool = False,
                rank: int = 0, world_size: int = 1):
        """Yield ``(images, labels)``; order and augmentation are a function of (seed, epoch).

        ``batch_size`` is the global batch. With ``world_size`` > 1 this rank gets positions
        ``rank, rank + world_size, ...`` of each global batch (built and augmented as in a
        one-process run); a last global batch with fewer samples than ranks is dropped, so that
        no rank steps with an empty shard.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size - 1}], got {rank}")
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        n = len(self)
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            if world_size > 1 and len(idx) < world_size:
                return
            x, y = self.images[idx], self.labels[idx]
            if self.augment:
                x = _crop_flip(x, gen)
            if world_size > 1:
                x, y = x[rank::world_size], y[rank::world_size]
            yield x, y

    def steps(self, batch_size: int, world_size: int = 1, drop_last: bool = False) -> list[int]:
        """Global batch sizes of one epoch of ``batches`` (the same on every rank)."""
        n = len(self)
        stop = n - n % batch_size if drop_last else n
        sizes = [min(batch_size, stop - start) for start in range(0, stop, batch_size)]
        return [s for s in sizes if world_size == 1 or s >= world_size]


def _crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded image (same size) and random horizontal flip, per image."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])  # [n, h]
    cols = (dx[:, None] + torch.arange(w)[None, :])  # [n, w]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2).contiguous()


# -- digits ------------------------------------------------------------------------------------
def load_digits(test_fraction: float = 0.2) -> tuple[Split, Split]:
    """scikit-learn's bundled digits: (train, test), standardized, shape [N, 1, 8, 8]."""
    from sklearn.datasets import load_digits as sk_load_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = sk_load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None]  # values 0..16
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = int(round(len(labels) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean = images[train_idx].mean()
    std = images[train_idx].std()
    images = (images - mean) / std
    return Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])


# -- CIFAR-10 ----------------------------------------------------------------------------------
class _RestrictedUnpickler(pickle.Unpickler):
    """Only the globals a numpy-array pickle needs; everything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 spell bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from an untrusted pickle")


def safe_load_pickle(data: bytes, what: str = "pickle"):
    """Unpickle untrusted bytes with the restricted unpickler (latin1/bytes keys as in CIFAR)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        if str(error).startswith("refusing"):
            raise DatasetError(f"{what}: {error}") from None
        raise DatasetError(f"{what}: not a valid pickle ({error})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise DatasetError(f"{what}: not a valid pickle ({type(error).__name__}: {error})") from None


def _find_cifar_dir(root: Path) -> Path:
    for candidate in (root, root / "cifar-10-batches-py"):
        if all((candidate / name).is_file() for name in CIFAR10_FILES):
            return candidate
    missing = [name for name in CIFAR10_FILES if not (root / name).is_file()]
    partial = f"; missing {', '.join(missing)}" if len(missing) < len(CIFAR10_FILES) else ""
    raise DatasetError(
        f"CIFAR-10 not found in {str(root)!r}: expected files {', '.join(CIFAR10_FILES)} "
        f"(python-pickle layout of cifar-10-batches-py/, nothing is downloaded){partial}"
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_load_pickle(path.read_bytes(), str(path))
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict, got {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape [N, 3072]")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer) \
            or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: 'labels' must be {data.shape[0]} integers in [0, 9]")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(root: str | Path) -> tuple[Split, Split]:
    """CIFAR-10 from a local folder (see the module doc); (train with augmentation, test)."""
    folder = _find_cifar_dir(Path(root))
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_FILES[:-1]]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_cifar_batch(folder / "test_batch")
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(x).float() / 255.0 - mean) / std

    return (Split(to_tensor(train_x), torch.from_numpy(train_y), augment=True),
            Split(to_tensor(test_x), torch.from_numpy(test_y)))


def write_synthetic_cifar10(folder: str | Path, per_batch: int = 64, seed: int = 0) -> Path:
    """Write a CIFAR-10-layout folder of random images (smoke tests of the pipeline, not data).

    Each of the six pickles holds ``per_batch`` uint8 images of shape 3x32x32 and labels 0..9, in
    the dict-of-bytes-keys form of ``cifar-10-batches-py``; ``load_cifar10`` reads it back.
    """
    if per_batch < 1:
        raise ValueError(f"per_batch must be >= 1, got {per_batch}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in CIFAR10_FILES:
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        obj = {b"batch_label": name.encode(), b"labels": labels,
               b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
               b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    return folder


def load_dataset(name: str, data: str | Path | None = None) -> tuple[Split, Split, int, int]:
    """(train, test, num_classes, in_channels) of a dataset by name."""
    if name == "digits":
        train, test = load_digits()
        return train, test, 10, 1
    if name == "cifar10":
        if data is None:
            raise DatasetError(f"cifar10 needs --data PATH, a folder with {', '.join(CIFAR10_FILES)}")
        train, test = load_cifar10(data)
        return train, test, 10, 3
    if name == "imagefolder":
        raise DatasetError("imagefolder is streamed, not held in memory: use model.imagefolder.scan_imagefolder")
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
