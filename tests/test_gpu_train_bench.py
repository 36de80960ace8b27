"""bench/gpu_train.py: one-line refusal without CUDA; the FP32-vs-e2m1g3 table (run here on the CPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_train.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("gpu_train_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_stops_with_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, so this holds on GPU machines too
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and "Traceback" not in proc.stderr


def test_bench_writes_both_runs_side_by_side(tmp_path):
    from model.data import load_cifar10, write_synthetic_cifar10

    folder = write_synthetic_cifar10(tmp_path / "cifar", per_batch=32, seed=1)
    train, test = load_cifar10(folder)  # the smoke folder is a valid CIFAR-10 layout
    assert len(train) == 160 and len(test) == 32 and train.images.shape[1:] == (3, 32, 32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = _bench_module().run_bench(folder, tmp_path / "out", epochs=2, batch_size=32, device="cpu",
                                          train_subset=64, progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    rows = table["rows"]
    assert [r["run"] for r in rows] == ["fp32", "e2m1g3"] and rows[0]["step_vs_fp32"] == 1.0
    assert rows[1]["quant"].startswith("a=e2m1g3/nearest,w=e2m1g3/nearest,e=e2m1g3/stochastic")
    assert all(r["steps_per_epoch"] == 2 and r["step_ms"] > 0 for r in rows)
    saved = json.loads((tmp_path / "out" / "gpu_train.json").read_text())
    assert saved["rows"] == rows and saved["meta"]["epochs"] == 2
    md = (tmp_path / "out" / "gpu_train.md").read_text()
    assert "| fp32 | `fp32` |" in md and "| e2m1g3 |" in md
    for name in ("fp32", "e2m1g3"):
        assert json.loads((tmp_path / "out" / name / "result.json").read_text())["finished"]
        assert (tmp_path / "out" / f"{name}.csv").read_text().count("\n") == 3
    with pytest.raises(ValueError, match="already holds a benchmark .*pass --overwrite"):
        _bench_module().run_bench(folder, tmp_path / "out", epochs=1, batch_size=32, device="cpu")
