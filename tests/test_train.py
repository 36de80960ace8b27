"""python -m model.train: result file, resume == uninterrupted, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from model.train import TrainConfig, main, train

SMALL = dict(dataset="digits", quant="a=e2m1g3,w=e2m1g3,e=e2m1g3", epochs=2, batch_size=32, train_subset=128,
             seed=3, progress=False, lr=0.05, threads=1)
TIMES = ("epoch_s", "train_s", "step_s")


def strip_times(history):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in history]


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(TrainConfig(**SMALL, out=str(tmp_path / "full")), log=lambda *_: None)
    part = train(TrainConfig(**SMALL, out=str(tmp_path / "part"), stop_after=1), log=lambda *_: None)
    assert not part["finished"] and part["epochs_done"] == 1
    lines = []
    resumed = train(TrainConfig(**SMALL, out=str(tmp_path / "part"), resume=True), log=lines.append)
    assert any("resumed from" in line and "at epoch 1/2" in line for line in lines)
    assert resumed["finished"] and resumed["final_test_acc"] == full["final_test_acc"]
    assert strip_times(resumed["history"]) == strip_times(full["history"])  # same losses to the last bit
    # the project's own checkpoints load with weights_only=True (tensors and plain values only)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    result = json.loads((tmp_path / "full" / "result.json").read_text())
    assert result["seed"] == 3 and len(result["history"]) == 2 and result["versions"]["torch"] == torch.__version__
    assert result["quant"]["e"]["rounding"] == "stochastic" and result["mls_layers"] == ["convs.0", "convs.1", "convs.2", "convs.3"]
    assert set(result["history"][0]) >= {"train_loss", "train_acc", "test_loss", "test_acc"}


def test_resume_refuses_other_settings(tmp_path):
    train(TrainConfig(**{**SMALL, "epochs": 1, "train_subset": 32}, out=str(tmp_path)), log=lambda *_: None)
    with pytest.raises(ValueError, match=r"written with different settings \(epochs, seed\)"):
        train(TrainConfig(**{**SMALL, "epochs": 2, "seed": 4, "train_subset": 32}, out=str(tmp_path), resume=True), log=lambda *_: None)


def test_missing_cifar_exits_nonzero_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "model.train", "--dataset", "cifar10", "--data", "/nonexistent"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "data_batch_1" in lines[0] and "test_batch" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv,message", [
    (["--quant", "e2m1g3,x"], "quant item"),
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--lr", "-1"], "lr must be a positive finite number"),
    (["--resume"], "resume needs an output directory"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--dataset", "--data", "--model", "--quant", "--epochs", "--batch-size", "--lr", "--seed",
                   "--device", "--resume"):
        assert option in out


def test_quant_toml_option(tmp_path, capsys):
    assert main(["--quant-toml", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read TOML quant config" in capsys.readouterr().err
    toml = tmp_path / "q.toml"
    toml.write_text('[quant]\na = "e2m1g3"\nw = "e2m1g3"\ne = "fp32"\n')
    assert TrainConfig(quant_toml=str(toml)).quant_config().e.fmt is None


def test_sweep_writes_the_report(tmp_path):
    import csv

    from model.sweep import main as sweep_main

    assert sweep_main(["--formats", "fp32,e2m1g3", "--epochs", "1", "--out", str(tmp_path), "--no-progress",
                       "--batch-size", "64", "--train-subset", "64"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy_digits.csv")))
    assert [r["format"] for r in rows] == ["fp32", "e2m1g3"] and rows[1]["elem_bits"] == "4"
    md = (tmp_path / "accuracy_digits.md").read_text()
    assert "python -m model.sweep --formats fp32,e2m1g3" in md and "| e2m1g3 | 4 | 3 |" in md
    assert (tmp_path / "accuracy_digits.png").read_bytes()[:4] == b"\x89PNG"
    assert sweep_main(["--formats", "e9m1g1", "--out", str(tmp_path)]) == 2


# -- bad inputs of issue 15 -------------------------------------------------------------------
class _Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_resume_refuses_a_code_running_checkpoint_without_running_it(tmp_path, capsys):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    for name, payload in (("zip", {"version": 2, "config": _Payload(marker)}), ("pickle", None)):
        path = run / "checkpoint.pt"
        if payload is not None:
            torch.save(payload, path)  # torch's own zip format with a code-running object inside
        else:
            import pickle

            path.write_bytes(pickle.dumps(_Payload(marker)))  # a bare pickle (the legacy torch.load format)
        assert main(["--out", str(run), "--resume", "--epochs", "1", "--no-progress"]) == 2, name
        err = _one_error_line(capsys)
        assert str(path) in err and ("refused" in err or "not a checkpoint" in err), err
        assert not marker.exists(), name


def test_truncated_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    train(TrainConfig(**{**SMALL, "epochs": 1, "train_subset": 32}, out=str(tmp_path)), log=lambda *_: None)
    path = tmp_path / "checkpoint.pt"
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 0):
        path.write_bytes(data[:cut])
        assert main(["--out", str(tmp_path), "--resume", "--epochs", "1", "--train-subset", "32", "--batch-size", "32",
                     "--seed", "3", "--lr", "0.05", "--threads", "1", "--no-progress"]) == 2
        assert str(path) in _one_error_line(capsys)


def test_resume_with_other_thread_count_is_refused(tmp_path):
    train(TrainConfig(**{**SMALL, "epochs": 2, "train_subset": 32}, out=str(tmp_path), stop_after=1),
          log=lambda *_: None)
    with pytest.raises(ValueError, match=r"written with 1 torch thread\(s\) per process, this run has 2; "
                                         r"pass --threads 1"):
        train(TrainConfig(**{**SMALL, "epochs": 2, "train_subset": 32, "threads": 2}, out=str(tmp_path),
                          resume=True), log=lambda *_: None)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["threads"] == 1


def test_out_with_a_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    small = {**SMALL, "epochs": 1, "train_subset": 32}
    first = train(TrainConfig(**small, out=str(tmp_path)), log=lambda *_: None)
    before = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "result.json").read_text()
    argv = ["--out", str(tmp_path), "--epochs", "1", "--train-subset", "32", "--no-progress", "--seed", "4"]
    assert main(argv) == 2
    err = _one_error_line(capsys)
    assert "already holds a run (checkpoint.pt, result.json)" in err and "--resume" in err and "--overwrite" in err
    assert ((tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "result.json").read_text()) == before
    assert main(argv + ["--overwrite", "--threads", "1"]) == 0
    assert json.loads((tmp_path / "result.json").read_text())["seed"] == 4 != first["seed"]
    assert main(argv + ["--overwrite", "--resume"]) == 2 and "give one of them" in _one_error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert main(["--out", str(tmp_path / "file"), "--epochs", "1"]) == 2
    assert "is a file, not a directory" in _one_error_line(capsys)


def test_quant_toml_of_the_wrong_type_is_one_line(tmp_path, capsys):
    toml = tmp_path / "q.toml"
    toml.write_text("quant = 5\n")
    assert main(["--quant-toml", str(toml)]) == 2
    assert "TOML key 'quant' must be a table ([quant]), got int 5" in _one_error_line(capsys)
    toml.write_text('[quant]\na = "e2m1g3"\nw = "e2m1g3"\n[quant.e]\nformat = "e2m1g3"\ngrouping = 5\n')
    assert main(["--quant-toml", str(toml)]) == 2
    assert "TOML quant role 'e' key 'grouping' must be a string, got int 5" in _one_error_line(capsys)


def test_data_with_digits_is_an_error(capsys):
    assert main(["--dataset", "digits", "--data", "/some/folder"]) == 2
    assert "--data '/some/folder' is not used by --dataset digits" in _one_error_line(capsys)


def test_world_size_must_divide_the_global_batch(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="--batch-size 64 \\(the global batch\\) must be divisible by the 3 processes"):
        train(TrainConfig(**{**SMALL, "batch_size": 64}), log=lambda *_: None)


def test_channels_last_operands_stay_channels_last_with_the_same_bits():
    from model.layers import quantize_model

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False))
    quantize_model(conv, "e2m1g3")
    x = torch.randn(2, 3, 6, 6)
    seen = []
    import model.layers as layers

    real = layers.fake_quantize
    layers.fake_quantize = lambda t, *a, **k: seen.append(t.is_contiguous()) or real(t, *a, **k)
    try:
        torch.manual_seed(0)
        y = conv(x)
        conv_cl = conv.to(memory_format=torch.channels_last)
        torch.manual_seed(0)
        y_cl = conv_cl(x.contiguous(memory_format=torch.channels_last))
    finally:
        layers.fake_quantize = real
    assert seen == [True, True, False, False]  # the second pass quantized NHWC tensors
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    xq = layers._q(x.contiguous(memory_format=torch.channels_last), conv[0].quant.a, conv[0].quant.a.grouping)
    assert xq.is_contiguous(memory_format=torch.channels_last) and not xq.is_contiguous()
    assert torch.equal(xq, layers._q(x, conv[0].quant.a, conv[0].quant.a.grouping))
    assert y.shape == y_cl.shape
