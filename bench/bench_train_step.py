"""Benchmark: one training step of a ResNet-20 basic block, FP32 vs MLS (not a test).

    python bench/bench_train_step.py [--quant e2m1g3] [--batch 32] [--reps 10] [--device cpu] [--compile]

For each block width (16->16 and 64->64 channels, 32x32 input, batch 32) it times
forward + backward + SGD step of the FP32 block and of the same block after
``quantize_model`` (both convs in MLS: A, W, E quantized), in the same process and interleaved,
and prints the MLS/FP32 time ratio (median of the repetitions).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.layers import quantize_model  # noqa: E402
from model.fake_quantize import use_compiled_fake_quantize  # noqa: E402
from model.resnet import BasicBlock  # noqa: E402


def _step(block, opt, x, target, device):
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(block(x), target)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(channels: int, quant: str, batch: int, reps: int, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    fp32 = BasicBlock(channels, channels).to(device)
    mls = copy.deepcopy(fp32)
    quantize_model(mls, quant)
    x = torch.randn(batch, channels, 32, 32, device=device)
    target = torch.randn(batch, channels, 32, 32, device=device)
    opts = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for name, m in (("fp32", fp32), ("mls", mls))}
    times = {"fp32": [], "mls": []}
    for name, m in (("fp32", fp32), ("mls", mls)):  # warm-up
        for _ in range(2):
            _step(m, opts[name], x, target, device)
    for _ in range(reps):  # interleaved, so load changes hit both alike
        for name, m in (("fp32", fp32), ("mls", mls)):
            t0 = time.perf_counter()
            _step(m, opts[name], x, target, device)
            times[name].append(time.perf_counter() - t0)
    return statistics.median(times["fp32"]), statistics.median(times["mls"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quant", default="e2m1g3")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--compile", action="store_true",
                   help="fuse fake_quantize with torch.compile (model.fake_quantize.use_compiled_fake_quantize)")
    args = p.parse_args()
    if args.compile:
        use_compiled_fake_quantize(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"ResNet-20 basic block train step (fwd+bwd+SGD), batch {args.batch}, 32x32, quant {args.quant}, "
          f"device {device}, {torch.get_num_threads()} threads, median of {args.reps}, "
          f"fake_quantize {'compiled' if args.compile else 'eager'}")
    for channels in (16, 64):
        t_fp32, t_mls = bench(channels, args.quant, args.batch, args.reps, device)
        print(f"  {channels:2d}->{channels:2d} channels: FP32 {t_fp32 * 1e3:8.1f} ms   MLS {t_mls * 1e3:8.1f} ms   "
              f"ratio {t_mls / t_fp32:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
