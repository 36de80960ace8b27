"""Capture real training tensors once for the DSE quality proxy (``python -m model.capture``).

Trains the project's digits CNN (``model.resnet.digits_cnn``) in plain FP32 on scikit-learn's
bundled 8x8 digits for a few seeded epochs, then records, for one mini-batch of the last epoch,
the three GEMM operands of one convolution (``convs.1``, 32 -> 32 channels, 3x3, 8x8 maps):

- ``activation``: its input, [B, 32, 8, 8]
- ``weight``:     its weight, [32, 32, 3, 3]
- ``error``:      the loss gradient at its output, [B, 32, 8, 8]

and stores them as FP32 in ``sim/data/digits_tensors.npz`` (< 1 MB, committed), so the DSE never
trains. Re-running reproduces the file on the same torch build (single thread, fixed seed).

The training is numerics and lives in ``model/``; the file stays with its consumers, the cost
model and DSE in ``sim/`` (and the activity simulation of ``hw/activity.py``), whose reports name it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .resnet import digits_cnn

DATA_FILE = Path(__file__).resolve().parent.parent / "sim" / "data" / "digits_tensors.npz"
LAYER = "convs.1"
ROLES = ("activation", "weight", "error")

__all__ = ["DATA_FILE", "LAYER", "ROLES", "capture", "load_tensors"]


def capture(epochs: int = 4, batch: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Train and return the captured FP32 tensors (see the module docstring)."""
    from sklearn.datasets import load_digits  # only needed to re-capture

    if epochs < 1 or batch < 1:
        raise ValueError(f"epochs and batch must be positive, got epochs={epochs}, batch={batch}")
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    model = digits_cnn()
    layer = dict(model.named_modules())[LAYER]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    grabbed: dict[str, torch.Tensor] = {}

    def fwd_hook(module, inputs, output):
        grabbed["activation"] = inputs[0].detach().clone()
        output.register_hook(lambda g: grabbed.__setitem__("error", g.detach().clone()))

    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - batch + 1, batch):
            idx = order[start:start + batch]
            last = epoch == epochs - 1 and start + 2 * batch > len(x)
            handle = layer.register_forward_hook(fwd_hook) if last else None
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            if handle is not None:
                handle.remove()
                grabbed["weight"] = layer.weight.detach().clone()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    out = {role: grabbed[role].numpy().astype(np.float32) for role in ROLES}
    out["train_accuracy"] = np.array(accuracy, dtype=np.float32)
    return out


def load_tensors(path: str | Path = DATA_FILE) -> dict[str, torch.Tensor]:
    """The captured tensors as FP32 torch tensors, keyed by role."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m model.capture` to create it")
    with np.load(path) as data:
        return {role: torch.from_numpy(data[role].copy()) for role in ROLES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.capture", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_FILE)
    args = parser.parse_args(argv)
    try:
        tensors = capture(args.epochs, args.batch, args.seed)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **tensors)
    shapes = ", ".join(f"{r} {tuple(tensors[r].shape)}" for r in ROLES)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {shapes}; "
          f"train accuracy {float(tensors['train_accuracy']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
