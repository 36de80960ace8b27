"""``python -m hw.build`` without a simulator: options, manifests, --list/--help and one-line errors
(the Verilator lint of its output: tb/test_array_lint.py)."""

import json
import pathlib
import subprocess
import sys

import pytest

from hw.build import main
from model.formats import MLSFormat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hw.build", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_pe_target_and_options(tmp_path):
    assert main(["--target", "pe", "--format", "e3m3g3", "--max-k", "1000", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "mls_pe.json").read_text())
    assert manifest["acc_bits"] == MLSFormat.parse("e3m3g3").acc_bits_exact(1000)
    assert manifest["latency"] == 2
    assert main(["--preset", "e3m3g3", "--rows", "2", "--cols", "3", "--acc-bits", "20", "--name", "arr",
                 "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "arr.json").read_text())
    assert (manifest["rows"], manifest["cols"], manifest["acc_bits"], manifest["acc_exact"]) == (2, 3, 20, False)
    assert manifest["format"]["name"] == "e3m3g3"


def test_list_and_help(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("e2m1g3", "e3m3g3", "mx-e2m1", "block:32", "quant_unit", "fp32-8x8 ", "pe=fp32", "int8-8x8 ",
                 "fp8-e4m3-8x8 "):
        assert name in out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--max-k" in out and "--pe KIND" in out and "fp8-e4m3-e5m2" in out


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "rows must be in [1, 64], got 0"),
    (["--format", "e9m1g3"], "exp_bits must be in [0, 5], got 9"),
    (["--format", "fp4"], "does not match"),
    (["--acc-bits", "1"], "acc_bits must be in [2, 256], got 1"),
    (["--max-k", "0"], "--max-k must be at least 1, got 0"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--pe", "bf16"], "--pe must be one of mls, fp32, fp8-e4m3, fp8-e5m2, fp8-e4m3-e5m2, fp8-e5m2-e4m3, int8, got 'bf16'"),
    (["--pe", "fp32", "--format", "e2m1g3"], "--format is for MLS PEs; pe='fp32' has fixed operand formats"),
    (["--preset", "int8-8x8", "--acc-bits", "24"], "--acc-bits is for MLS PEs; pe='int8' has a fixed 32-bit accumulator"),
    (["--preset", "fp32-8x8", "--pe", "mls"], "preset 'fp32-8x8' has no MLS format (pe='fp32'); give --format"),
    (["--preset", "fp32-8x8", "--cols", "65"], "cols must be in [1, 64], got 65"),
])
def test_bad_parameters_one_line_error(args, message, tmp_path):
    res = _cli(*args, "--out", str(tmp_path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
