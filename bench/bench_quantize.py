"""Micro-benchmark: quantize a 4096x4096 FP32 tensor to e2m1g3, against torch.round in the same run.

``quantize`` gives the integer fields (what the hardware streams); ``fake_quantize`` gives the
same values as ``quantize(...).dequantize()`` bit for bit, the path training uses.

    python bench/bench_quantize.py [--size 4096] [--format e2m1g3] [--repeat 3]

Prints elements/s for each case and its ratio to a plain ``torch.round`` of the same tensor.
Not a test: numbers depend on the machine; only the ratios measured in one run are comparable.
"""

import argparse
import time

import torch

from model.fake_quantize import fake_quantize
from model.grouping import Grouping
from model.quantize import quantize


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="square tensor side (default 4096)")
    parser.add_argument("--format", default="e2m1g3", help="MLS format (default e2m1g3)")
    parser.add_argument("--group-size", type=int, default=32, help="MX-style block along the last axis (default 32)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    x = torch.randn(args.size, args.size, generator=torch.Generator().manual_seed(0))
    n = x.numel()
    grouping = Grouping.blocks(args.group_size)
    generator = torch.Generator().manual_seed(1)
    cases = {
        "torch.round (baseline)": lambda: torch.round(x),
        f"quantize {args.format} nearest": lambda: quantize(x, args.format, grouping, "nearest"),
        f"quantize {args.format} stochastic": lambda: quantize(x, args.format, grouping, "stochastic", generator=generator),
        f"fake_quantize {args.format} nearest": lambda: fake_quantize(x, args.format, grouping, "nearest"),
        f"fake_quantize {args.format} stochastic": lambda: fake_quantize(x, args.format, grouping, "stochastic", generator=generator),
    }
    print(f"{args.size}x{args.size} FP32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    baseline = None
    for name, fn in cases.items():
        seconds = best_time(fn, args.repeat)
        rate = n / seconds
        baseline = baseline or rate
        print(f"{name:<36} {rate / 1e6:10.1f} Melem/s   {baseline / rate:6.1f}x the time of torch.round")


if __name__ == "__main__":
    main()
