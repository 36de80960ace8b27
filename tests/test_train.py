"""python -m model.train: result file, resume == uninterrupted, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from model.train import TrainConfig, main, train

SMALL = dict(dataset="digits", quant="a=e2m1g3,w=e2m1g3,e=e2m1g3", epochs=2, batch_size=32, train_subset=128,
             seed=3, progress=False, lr=0.05)


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(TrainConfig(**SMALL, out=str(tmp_path / "full")), log=lambda *_: None)
    part = train(TrainConfig(**SMALL, out=str(tmp_path / "part"), stop_after=1), log=lambda *_: None)
    assert not part["finished"] and part["epochs_done"] == 1
    lines = []
    resumed = train(TrainConfig(**SMALL, out=str(tmp_path / "part"), resume=True), log=lines.append)
    assert any("resumed from" in line and "at epoch 1/2" in line for line in lines)
    assert resumed["finished"] and resumed["final_test_acc"] == full["final_test_acc"]
    strip = lambda h: [{k: v for k, v in r.items() if k != "epoch_s"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(full["history"])  # same losses to the last bit
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["model"]
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
