# amaranth: UnusedElaboratable=no
"""The quantization unit's build entry point (no simulator needed); its host helpers: tests/test_quant_stream.py."""

import json
import subprocess
import sys

from hw.quant_unit.build import build_quant_unit
from hw.quant_unit.config import QuantUnitConfig
from hw.quant_unit.top import QuantUnit


def test_build_writes_verilog_and_manifest(tmp_path):
    cfg = QuantUnitConfig("e4m3g4", lanes=2, group_len=8, sr_bits=6)
    v_path, j_path = build_quant_unit(cfg, tmp_path)
    manifest = json.loads(j_path.read_text())
    unit = QuantUnit(cfg)
    assert manifest["format"] == "e4m3g4" and manifest["lanes"] == 2 and manifest["group_len"] == 8
    assert manifest["throughput_elements_per_cycle"] == unit.throughput == 2
    assert manifest["latency_cycles"]["convert_first_in_to_first_out"] == unit.latency == 8 // 2 + 1
    verilog_text = v_path.read_text()
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    assert widths["i__payload"] == 64 and widths["o__payload"] == 2 * 8 and widths["g__payload"] == 4
    for name, width in widths.items():
        decl = f"[{width - 1}:0] {name};" if width > 1 else f" {name};"
        assert decl in verilog_text, name


def test_build_cli_errors(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hw.quant_unit.build", "--lanes", "3", "--group-len", "8",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: group_len 8 must be a multiple of lanes 3"


def test_hw_build_target_quant_unit(tmp_path, capsys):
    from hw.build import main

    assert main(["--target", "quant_unit", "--format", "e3m2g4", "--lanes", "3", "--group-len", "12",
                 "--sr-bits", "5", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "quant_unit.json").read_text())
    unit = QuantUnit(QuantUnitConfig("e3m2g4", 3, 12, 5))
    assert (manifest["format"], manifest["lanes"], manifest["group_len"], manifest["sr_bits"]) == ("e3m2g4", 3, 12, 5)
    assert manifest["latency_cycles"]["convert_first_in_to_first_out"] == unit.latency == 5
    assert manifest["throughput_elements_per_cycle"] == unit.throughput == 3
    assert "module quant_unit(" in (tmp_path / "quant_unit.v").read_text()
    assert main(["--target", "quant_unit", "--lanes", "5", "--out", str(tmp_path)]) == 2
    assert "group_len 64 must be a multiple of lanes 5" in capsys.readouterr().err
