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

Batches come from ``Split.batches(epoch, ...)``: the order and augmentation of an epoch depend
only on (seed, epoch), so a resumed run sees exactly the data of an uninterrupted one.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DATASETS", "CIFAR10_FILES", "DatasetError", "Split", "load_dataset", "load_digits",
           "load_cifar10", "safe_load_pickle"]

DATASETS = ("digits", "cifar10")
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

    def batches(self, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0, drop_last: bool = False):
        """Yield ``(images, labels)``; order and augmentation are a function of (seed, epoch)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        n = len(self)
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            x, y = self.images[idx], self.labels[idx]
            if self.augment:
                x = _crop_flip(x, gen)
            yield x, y


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
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
