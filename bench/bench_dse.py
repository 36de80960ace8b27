"""Benchmark of the cost model and the DSE sweep (not a test): ``python bench/bench_dse.py``.

Prints, with ratios against baselines measured in the same run:
1. one whole-network evaluation (ResNet-20 + ResNet-18: GEMM folds, cycles, traffic, energy)
   against re-tracing the networks from ``model.resnet`` (the baseline every evaluation would
   pay without the workload cache);
2. a DSE sweep on all cores against the same sweep in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from sim import dse
from sim.cycles import ArrayConfig
from sim.energy import workload_energy, workload_stats
from sim.workloads import NETWORKS, trace_layers, training_gemms


def _median_time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="sweep the default ~5,000 points (about a minute)")
    args = parser.parse_args()
    from model import resnet

    gemms = {net: training_gemms(trace_layers(getattr(resnet, b)(), shape), batch)
             for net, (b, shape, batch) in NETWORKS.items()}

    def evaluate():
        for g in gemms.values():
            workload_energy(workload_stats(g, ArrayConfig(16, 16)), "mls-e2m1g3")

    def trace():
        for b, shape, _ in NETWORKS.values():
            trace_layers(getattr(resnet, b)(), shape)

    t_eval = _median_time(evaluate, 20)
    t_trace = _median_time(trace, 3)
    print(f"whole-network evaluation: {t_eval * 1e3:.2f} ms; tracing both networks: {t_trace * 1e3:.0f} ms "
          f"(evaluation is {t_trace / t_eval:.0f}x faster than one trace)")

    spec = dse.SweepSpec() if args.full else dse.SweepSpec(exp_bits=(1, 2, 3), man_bits=(1, 2, 3, 4))
    _, serial = dse.run_sweep(spec, jobs=1, progress=False)
    jobs = os.cpu_count() or 1
    _, parallel = dse.run_sweep(spec, jobs=jobs, progress=False)
    print(f"sweep of {serial['points']} points: 1 process {serial['sweep_s']:.1f} s, {jobs} processes "
          f"{parallel['sweep_s']:.1f} s (speed-up {serial['sweep_s'] / parallel['sweep_s']:.2f}x); "
          f"{parallel['sweep_s'] / parallel['points'] * 1e3:.2f} ms per point")


if __name__ == "__main__":
    main()
