"""Datasets: digits split, CIFAR-10 pickle layout, restricted unpickler, augmentation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from model.data import (CIFAR10_FILES, DatasetError, Split, load_cifar10, load_dataset, load_digits,
                        safe_load_pickle)


def test_digits_split_is_fixed_and_standardized():
    train, test = load_digits()
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.float32
    assert abs(float(train.images.mean())) < 1e-4 and abs(float(train.images.std()) - 1) < 1e-3
    assert set(train.labels.tolist()) == set(range(10))
    again, _ = load_digits()
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    # train and test are disjoint images of the bundled set
    flat_train = {tuple(r) for r in train.images.flatten(1).tolist()}
    assert sum(tuple(r) in flat_train for r in test.images.flatten(1).tolist()) < 5  # a few true duplicates only


def _write_cifar(folder, n=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR10_FILES:
        obj = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
               b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10_loads_the_pickle_layout(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        train, test = load_cifar10(root)
        assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
        assert train.augment and not test.augment
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="bytes")
    pixel = raw[b"data"][0].reshape(3, 32, 32)[1, 2, 3] / 255.0
    assert abs(float(test.images[0, 1, 2, 3]) - (pixel - 0.4822) / 0.2435) < 1e-5
    assert test.labels.tolist() == raw[b"labels"]


def test_cifar10_missing_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR-10 not found in '.*': expected files data_batch_1, .*test_batch"):
        load_dataset("cifar10", tmp_path / "nope")
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match=r"missing data_batch_3$"):
        load_cifar10(tmp_path)
    with pytest.raises(DatasetError, match=r"cifar10 needs --data PATH"):
        load_dataset("cifar10")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": [0]})
    with pytest.raises(DatasetError, match=r"refusing to load global (posix|os|nt)\.system"):
        safe_load_pickle(payload)
    assert not marker.exists()
    # ... also inside the dataset folder, in place of a batch
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(payload)
    with pytest.raises(DatasetError, match=r"data_batch_2: refusing to load global"):
        load_cifar10(tmp_path)
    assert not marker.exists()
    for evil in (pickle.dumps(print), b"cbuiltins\neval\n(S'1'\ntR."):
        with pytest.raises(DatasetError, match=r"refusing to load global builtins\.(print|eval)"):
            safe_load_pickle(evil)


@pytest.mark.parametrize("obj,message", [
    ([1, 2], r"expected a dict, got list"),
    ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, r"'data' must be a uint8 array of shape \[N, 3072\]"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}, r"'labels' must be 2 integers in \[0, 9\]"),
])
def test_cifar10_bad_content(tmp_path, obj, message):
    _write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DatasetError, match=message):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"not a valid pickle"):
        load_cifar10(tmp_path)


def test_batches_depend_only_on_seed_and_epoch():
    images = torch.arange(10 * 3 * 4 * 4, dtype=torch.float32).reshape(10, 3, 4, 4)
    split = Split(images, torch.arange(10), augment=True)
    a = list(split.batches(4, shuffle=True, seed=1, epoch=2))
    b = list(split.batches(4, shuffle=True, seed=1, epoch=2))
    c = list(split.batches(4, shuffle=True, seed=1, epoch=3))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(a, c))
    assert [len(y) for _, y in a] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in a]).tolist()) == list(range(10))


def test_crop_flip_is_a_shifted_window_of_the_padded_image():
    images = torch.randn(64, 3, 8, 8)
    split = Split(images, torch.arange(64), augment=True)
    (x, y), = list(split.batches(64, shuffle=False, seed=0, epoch=0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flips = 0
    for i in range(64):
        found = None
        for dy in range(9):
            for dx in range(9):
                window = padded[i, :, dy:dy + 8, dx:dx + 8]
                if torch.equal(x[i], window):
                    found = "plain"
                elif torch.equal(x[i], window.flip(2)):
                    found = "flip"
        assert found is not None
        flips += found == "flip"
    assert 10 < flips < 54  # about half are flipped


def test_global_batches_are_sharded_by_rank_with_the_one_process_augmentation():
    rng = np.random.default_rng(4)
    split = Split(torch.from_numpy(rng.standard_normal((23, 3, 6, 6)).astype(np.float32)),
                  torch.arange(23), augment=True)
    single = list(split.batches(8, shuffle=True, seed=2, epoch=1))
    assert split.steps(8) == [8, 8, 7] == [len(y) for _, y in single]
    for world in (2, 3):
        shards = [list(split.batches(8, shuffle=True, seed=2, epoch=1, rank=r, world_size=world))
                  for r in range(world)]
        assert split.steps(8, world) == [8, 8, 7]
        for step, (x, y) in enumerate(single):
            for r in range(world):
                xr, yr = shards[r][step]
                assert torch.equal(xr, x[r::world]) and torch.equal(yr, y[r::world])
    # a last global batch with fewer samples than ranks is dropped (no rank steps on nothing)
    assert split.steps(11, 2) == [11, 11, 1][:2] and split.steps(11, 1) == [11, 11, 1]
    assert len(list(split.batches(11, shuffle=True, rank=1, world_size=2))) == 2
    shards = [split.shard(r, 3) for r in range(3)]
    assert sorted(torch.cat([s.labels for s in shards]).tolist()) == list(range(23)) and split.shard(0, 1) is split
