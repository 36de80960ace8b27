"""ImageFolder data: tree errors, the Pillow transforms, determinism per (seed, epoch, index), sharding."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from model import imagefolder as imf
from model.data import DatasetError
from model.train import TrainConfig, main, train


@pytest.fixture()
def tree(tmp_path):
    return imf.write_synthetic_imagefolder(tmp_path / "tree", classes=("cat", "dog", "eel"), train_per_class=4,
                                           val_per_class=2, size=(40, 32))


def test_scan_lists_sorted_classes_and_labelled_samples(tree):
    (tree / "train" / "dog" / ".hidden.png").write_bytes(b"not an image, but hidden")
    (tree / "train" / "a").mkdir()
    (tree / "val" / "a").mkdir()
    (tree / "train" / "a" / "x.JPEG").write_bytes(b"")  # extensions match case-insensitively
    (tree / "val" / "a" / "y.jpg").write_bytes(b"")
    scanned = imf.scan_imagefolder(tree)
    assert scanned.classes == ("a", "cat", "dog", "eel")
    assert len(scanned.train) == 13 and len(scanned.val) == 7
    assert [label for _, label in scanned.train] == [0] + [1] * 4 + [2] * 4 + [3] * 4
    assert all(path.startswith(str(tree / "train" / scanned.classes[label])) for path, label in scanned.train)


def _break(tree, how):
    if how == "missing root":
        return tree / "nope", "nope"
    if how == "no val":
        shutil.rmtree(tree / "val")
        return tree, "val"
    if how == "no classes":
        (tree / "empty" / "train").mkdir(parents=True)
        (tree / "empty" / "val").mkdir()
        return tree / "empty", "no class folders"
    if how == "empty class":
        (tree / "train" / "fox").mkdir()
        (tree / "val" / "fox").mkdir()
        return tree, "fox"
    if how == "mismatch":
        (tree / "val" / "dog").rename(tree / "val" / "dingo")
        return tree, "only in train: dog; only in val: dingo"
    if how == "stray file":
        (tree / "train" / "cat" / "notes.txt").write_text("x")
        return tree, "notes.txt"
    if how == "loose file":
        (tree / "val" / "labels.csv").write_text("x")
        return tree, "labels.csv"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing root", "no val", "no classes", "empty class", "mismatch", "stray file",
                                 "loose file"])
def test_malformed_tree_is_one_line_naming_the_path(tree, how):
    root, needle = _break(tree, how)
    with pytest.raises(DatasetError) as info:
        imf.scan_imagefolder(root)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert str(tree) in message or how == "missing root" and str(root) in message


def test_cli_nonexistent_root_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "model.train", "--dataset", "imagefolder", "--data", "/nonexistent"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent" in lines[0] and "Traceback" not in proc.stderr


def test_unreadable_image_stops_training_with_one_line(tree, tmp_path, capsys):
    bad = tree / "train" / "dog" / "dog_1.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    argv = ["--dataset", "imagefolder", "--data", str(tree), "--model", "resnet20", "--image-size", "16",
            "--epochs", "1", "--batch-size", "12", "--workers", "1", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(bad) in err and "cannot read image" in err and "\n" not in err


def test_random_resized_crop_box_stays_inside_and_falls_back_to_the_centre():
    rng = np.random.default_rng(0)
    for width, height in [(32, 32), (40, 17), (5, 300), (224, 160)]:
        for _ in range(200):
            left, top, w, h = imf.random_resized_crop_box(width, height, rng)
            assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= width and top + h <= height
    # A 1000x10 strip fails every try (ratio range 3/4..4/3 at >= 8 % area cannot fit): the centre
    # crop with the ratio clamped to 4/3, as torchvision.
    assert imf.random_resized_crop_box(1000, 10, np.random.default_rng(1)) == (493, 0, 13, 10)
    assert imf.random_resized_crop_box(10, 1000, np.random.default_rng(1)) == (0, 493, 10, 13)


def test_val_transform_is_resize_then_centre_crop():
    rows, cols = np.meshgrid(np.arange(48), np.arange(36), indexing="ij")
    pixels = np.stack([rows * 5 % 256, cols * 7 % 256, (rows + cols) % 256], -1).astype(np.uint8)
    image = Image.fromarray(pixels)  # 36 wide, 48 high: the shorter side is already int(32 / 0.875) = 36
    out = imf.val_transform(image, 32)
    crop = pixels[8:40, 2:34]  # top round((48 - 32) / 2) = 8, left round((36 - 32) / 2) = 2
    expected = imf._to_tensor(Image.fromarray(crop))
    assert out.shape == (3, 32, 32) and torch.equal(out, expected)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tree):
    samples = imf.scan_imagefolder(tree).train
    a = imf.ImageFolderDataset(samples, 24, train=True, seed=7)
    b = imf.ImageFolderDataset(samples, 24, train=True, seed=7)
    c = imf.ImageFolderDataset(samples, 24, train=True, seed=8)
    x, label, error = a[(3, 5)]
    assert error == "" and label == samples[5][1] and x.shape == (3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(x, b[(3, 5)][0])  # same (seed, epoch, index): same pixels
    assert not torch.equal(x, a[(4, 5)][0])  # another epoch: another crop
    assert not torch.equal(x, c[(3, 5)][0])  # another seed: another crop
    val = imf.ImageFolderDataset(samples, 24, train=False)
    assert torch.equal(val[(0, 5)][0], val[(9, 5)][0])  # validation is not random


def test_loader_batches_do_not_depend_on_workers_or_rank(tree):
    scanned = imf.scan_imagefolder(tree)
    n = len(scanned.train)

    def epoch_batches(workers, rank, world):
        loader, sampler = imf.train_loader(scanned, 16, 4, seed=3, rank=rank, world_size=world, workers=workers)
        sampler.set_epoch(2)
        return [imf.check_batch(batch) for batch in loader]

    single = epoch_batches(0, 0, 1)
    assert all(torch.equal(x0, x1) and torch.equal(y0, y1)
               for (x0, y0), (x1, y1) in zip(single, epoch_batches(2, 0, 1)))
    # Two ranks: DistributedSampler's order is the same permutation, rank r takes every other
    # sample; each sample's pixels are those of the one-process run.
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=1, rank=0, seed=3)
    sampler.set_epoch(2)
    order = list(sampler)
    pixels = {i: x for i, x in zip(order, torch.cat([x for x, _ in single]))}
    for rank in (0, 1):
        shard = torch.cat([x for x, _ in epoch_batches(0, rank, 2)])
        assert len(shard) == n // 2
        assert all(torch.equal(x, pixels[i]) for x, i in zip(shard, order[rank::2]))


def test_val_shards_cover_every_sample_once():
    shards = [list(imf.ShardSampler(7, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(7)) and shards[0] == [0, 3, 6]


def test_imagefolder_training_writes_csv_log_and_result(tree, tmp_path):
    log = tmp_path / "log.csv"
    cfg = TrainConfig(dataset="imagefolder", data=str(tree), model="resnet20", image_size=16, epochs=2, batch_size=6,
                      workers=0, progress=False, out=str(tmp_path / "run"), log_csv=str(log), channels_last=True,
                      lr=0.05)
    result = train(cfg, log=lambda *_: None)
    assert result["finished"] and result["world_size"] == 1 and result["num_classes"] == 3
    assert result["image_size"] == 16 and result["train_images"] == 12 and result["test_images"] == 6
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["1", "2"] and int(rows[0]["steps"]) == 2
    assert [float(r["test_acc"]) for r in rows] == [h["test_acc"] for h in result["history"]]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["config"]["channels_last"] is True


@pytest.mark.parametrize("kwargs,message", [
    (dict(dataset="imagefolder"), "needs --data ROOT"),
    (dict(dataset="digits", image_size=32), "--image-size applies to --dataset imagefolder only"),
    (dict(dataset="cifar10", data="x", workers=2), "--workers applies to --dataset imagefolder only"),
    (dict(dataset="imagefolder", data="x", image_size=4), "image_size must be in [8, 4096], got 4"),
])
def test_imagefolder_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**kwargs)
    assert message in str(info.value)
