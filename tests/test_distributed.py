"""Data-parallel training under torchrun (gloo, CPU): rank streams, rank-0 outputs, resume, 1-rank identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model.distributed import DistContext, rank_seed, replicated_generator, replicated_seed, seed_rank_stream
from model.fake_quantize import fake_quantize
from model.formats import MLSFormat
from model.grouping import Grouping
from model.imagefolder import write_synthetic_imagefolder
from model.layers import MLSConv2d, quantize_model
from model.train import TrainConfig, build_parser, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
W_STOCHASTIC = "a=e2m1g3,w=e2m1g3/stochastic,e=e2m1g3"
TIMES = ("epoch_s", "train_s", "step_s")


def _torchrun(nproc: int, args: list[str], tmp_path: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # --standalone: a rendezvous on a free local port; own session, so a timeout ends every rank
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"torchrun timed out after {timeout} s: {stdout[-2000:]}{stderr[-2000:]}") from None
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _strip(history):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in history]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- streams (in process) ----------------------------------------------------------------------
def test_rank_and_replicated_seeds():
    seeds = {rank_seed(5, r) for r in range(1, 65)} | {replicated_seed(5), 5}
    assert len(seeds) == 66 and all(0 <= s < 1 << 63 for s in seeds)
    assert rank_seed(5, 1) == rank_seed(5, 1) != rank_seed(6, 1)
    with pytest.raises(ValueError, match="rank 0 keeps the seed's stream"):
        rank_seed(5, 0)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    seed_rank_stream(5, 0)  # rank 0 continues the plain run's stream
    assert torch.equal(torch.get_rng_state(), before)
    seed_rank_stream(5, 1)
    assert not torch.equal(torch.get_rng_state(), before)
    g0, g1 = replicated_generator(5, torch.device("cpu")), replicated_generator(5, torch.device("cpu"))
    assert torch.equal(g0.get_state(), g1.get_state())
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\], got 2"):
        DistContext(2, 2)


def test_weights_draw_from_the_replicated_generator_and_data_from_the_global_one():
    fmt = MLSFormat.parse("e2m1g3")
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False)
    model = torch.nn.Sequential(conv)
    gen = torch.Generator().manual_seed(11)
    quantize_model(model, W_STOCHASTIC, weight_generator=gen)
    layer = model[0]
    assert isinstance(layer, MLSConv2d) and layer.weight_generator is gen
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    grad = torch.randn(2, 6, 5, 5)
    torch.manual_seed(3)
    out = layer(x)
    out.backward(grad)
    gen_state, global_state = gen.get_state(), torch.get_rng_state()
    # Replay: W (forward, stochastic) takes its bits from a copy of the generator; A is nearest;
    # E's stochastic bits come from the global generator.
    replay = torch.Generator().manual_seed(11)
    wq = fake_quantize(conv.weight.detach(), fmt, Grouping.channel(), "stochastic", generator=replay)
    xq = fake_quantize(x.detach(), fmt, Grouping.channel(), "nearest")
    assert torch.equal(out, F.conv2d(xq, wq, None, 1, 1))
    assert torch.equal(replay.get_state(), gen_state)  # W drew exactly once from it
    torch.manual_seed(3)
    fake_quantize(grad, fmt, Grouping.channel(), "stochastic")  # E: one draw of its size
    assert torch.equal(torch.get_rng_state(), global_state)


# -- torchrun runs ---------------------------------------------------------------------------
def test_two_rank_imagefolder_resnet18_writes_rank0_outputs_only(tmp_path):
    tree = write_synthetic_imagefolder(tmp_path / "tree", train_per_class=4, val_per_class=2)
    out, log = tmp_path / "r", tmp_path / "log.csv"
    proc = _torchrun(2, ["-m", "model.train", "--dataset", "imagefolder", "--data", str(tree), "--model", "resnet18",
                         "--image-size", "32", "--epochs", "1", "--out", str(out), "--batch-size", "6",
                         "--workers", "1", "--log-csv", str(log), "--threads", "1"], tmp_path)
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["backend"] == "gloo" and result["rank_batch_size"] == 3
    assert result["finished"] and result["model"] == "resnet18" and result["num_classes"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "result.json"]
    assert load_checkpoint(out / "checkpoint.pt")["world_size"] == 2
    assert log.read_text().count("\n") == 2  # header and one epoch, written once
    # rank 0 alone prints: one epoch line, one final line
    assert proc.stdout.count("epoch   1/1") == 1 and proc.stdout.count("final test accuracy") == 1, proc.stdout


_SCRIPT = textwrap.dedent('''
    """Run under torchrun --nproc-per-node 2: (1) record every stochastic quantization of a weight
    on each rank during a short training, (2) a 2-epoch run, (3) the same run stopped after one
    epoch and (4) resumed. One process group serves all four (model.train leaves a caller's group open)."""
    import json, sys
    import torch, torch.distributed as dist
    from model import layers
    from model.train import main

    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    records, real = [], layers.fake_quantize

    def recording(t, fmt, grouping, rounding, **kw):
        result = real(t, fmt, grouping, rounding, **kw)
        if rounding == "stochastic":
            records.append([list(t.shape), result.flatten().view(torch.int32).tolist()])
        return result

    layers.fake_quantize = recording
    common = ["--quant", "a=e2m1g3,w=e2m1g3/stochastic,e=e2m1g3", "--train-subset", "64", "--batch-size", "16",
              "--seed", "5", "--lr", "0.05", "--threads", "1", "--no-progress"]
    assert main(common + ["--epochs", "1"]) == 0
    layers.fake_quantize = real
    gathered = [None, None]
    dist.all_gather_object(gathered, records)
    if rank == 0:
        json.dump(gathered, open(out + "/records.json", "w"))
    assert main(common + ["--epochs", "2", "--out", out + "/full"]) == 0
    assert main(common + ["--epochs", "2", "--out", out + "/part", "--stop-after", "1"]) == 0
    assert main(common + ["--epochs", "2", "--out", out + "/part", "--resume"]) == 0
    dist.destroy_process_group()
''')


def test_two_ranks_share_weight_bits_have_own_streams_and_resume_bit_identically(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(_SCRIPT)
    proc = _torchrun(2, [str(script), str(tmp_path)], tmp_path)
    assert proc.stdout.count("resumed from") == 1  # rank 0 alone logs
    rank0, rank1 = json.loads((tmp_path / "records.json").read_text())
    weight_shapes = [[32, 1, 3, 3], [32, 32, 3, 3], [64, 32, 3, 3], [64, 64, 3, 3]]
    w0 = [bits for shape, bits in rank0 if shape in weight_shapes]
    w1 = [bits for shape, bits in rank1 if shape in weight_shapes]
    # (64 images / global batch 16 = 4 steps + 1 evaluation batch) x 4 convs
    assert len(w0) == len(w1) == 20 and w0 == w1  # replicated tensors: the same bits on every rank
    e0 = [bits for shape, bits in rank0 if shape not in weight_shapes]
    e1 = [bits for shape, bits in rank1 if shape not in weight_shapes]
    assert len(e0) == len(e1) > 0 and e0 != e1  # each rank's errors (its own shard and stream)
    full, part = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert full["world_size"] == part["world_size"] == 2 and part["epoch"] == 2
    assert _same_weights(full["model"], part["model"])
    assert _strip(full["history"]) == _strip(part["history"])
    assert all(torch.equal(a, b) for a, b in zip(full["rng_cpu"], part["rng_cpu"]))
    assert not torch.equal(full["rng_cpu"][0], full["rng_cpu"][1])  # rank-seeded streams
    # one process cannot resume a 2-process run
    cfg = TrainConfig(quant=W_STOCHASTIC, train_subset=64, batch_size=16, seed=5, lr=0.05, threads=1, epochs=2,
                      progress=False, out=str(tmp_path / "part"), resume=True)
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 1; resume with torchrun "
                                         r"--nproc-per-node 2"):
        train(cfg, log=lambda *_: None)


_ONE_RANK = textwrap.dedent('''
    """torchrun --nproc-per-node 1: model.train's main once per argument list (one process group)."""
    import json, sys
    import torch.distributed as dist
    from model.train import main

    dist.init_process_group("gloo")
    for argv in json.loads(sys.argv[1]):
        assert main(argv) == 0
    dist.destroy_process_group()
''')


def test_one_rank_torchrun_ends_bit_identical_to_the_plain_run(tmp_path):
    tree = write_synthetic_imagefolder(tmp_path / "tree", train_per_class=5, val_per_class=2, size=(36, 30))
    runs = {
        "digits": ["--quant", W_STOCHASTIC, "--train-subset", "96", "--batch-size", "32", "--epochs", "2",
                   "--seed", "2", "--lr", "0.05"],
        "imagefolder": ["--dataset", "imagefolder", "--data", str(tree), "--model", "resnet20", "--image-size", "16",
                        "--batch-size", "4", "--epochs", "2", "--seed", "2", "--lr", "0.05"],
    }
    for name in runs:
        runs[name] += ["--threads", "1", "--no-progress"]
    script = tmp_path / "one_rank.py"
    script.write_text(_ONE_RANK)
    argvs = [args + ["--out", str(tmp_path / f"{name}_ddp")] + (["--workers", "1"] if name == "imagefolder" else [])
             for name, args in runs.items()]
    _torchrun(1, [str(script), json.dumps(argvs)], tmp_path)
    for name, common in runs.items():
        plain = vars(build_parser().parse_args(common + ["--out", str(tmp_path / f"{name}_plain")]
                                               + (["--workers", "0"] if name == "imagefolder" else [])))
        train(TrainConfig(**plain), log=lambda *_: None)
        a = load_checkpoint(tmp_path / f"{name}_ddp" / "checkpoint.pt")
        b = load_checkpoint(tmp_path / f"{name}_plain" / "checkpoint.pt")
        assert a["world_size"] == b["world_size"] == 1
        assert _same_weights(a["model"], b["model"]), name
        assert _strip(a["history"]) == _strip(b["history"]), name
        assert torch.equal(a["rng_cpu"][0], b["rng_cpu"][0]) and torch.equal(a["rng_replicated"], b["rng_replicated"])
        result = json.loads((tmp_path / f"{name}_ddp" / "result.json").read_text())
        assert result["backend"] == "gloo" and json.loads((tmp_path / f"{name}_plain" / "result.json").read_text())[
            "backend"] is None
