"""The quantization unit's build entry point and host helpers (no simulator needed)."""

import gc
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from hw.quant_unit.build import build_quant_unit
from hw.quant_unit.config import QuantUnitConfig
from hw.quant_unit.host import (assemble_packed, from_words, host_scale, reference_amax, reference_convert,
                                stream_group_len, to_words)
from hw.quant_unit.top import QuantUnit
from model.lfsr import lfsr_random_bits
from model.quantize import quantize


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
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
    del unit
    gc.collect()  # the unelaborated instance warns when collected: inside this test's filter


def test_build_cli_errors(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hw.quant_unit.build", "--lanes", "3", "--group-len", "8",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: group_len 8 must be a multiple of lanes 3"


@pytest.mark.parametrize("shape, grouping, expected", [
    ((2, 4, 3, 3), "channel", 9), ((2, 4, 3, 3), "channel:2", 18), ((5, 32), "block:8", 8),
    ((2, 3, 4), "tensor", 24),
])
def test_stream_group_len(shape, grouping, expected):
    assert stream_group_len(shape, grouping) == expected


def test_stream_group_len_errors():
    with pytest.raises(ValueError, match=r"axis 1 of length 30 is not a multiple of the group block 8"):
        stream_group_len((4, 30), "block:8")
    with pytest.raises(ValueError, match=r"strided groups"):
        stream_group_len((32, 4), "block:8@0")


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_reference_convert_is_quantize(rounding):
    # the golden convert pass with the host's inv and the unit's LFSR bits is model.quantize, byte for byte
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 4, 4, generator=gen) * torch.exp2(torch.randint(-30, 5, (1, 6, 1, 1), generator=gen).float())
    x[0, 1] = 0
    lanes, gl = 4, stream_group_len(x.shape, "channel")
    scale, inv, _ = host_scale(reference_amax(x), "e2m1g3")
    bits = lfsr_random_bits(x.numel(), lanes, 11) if rounding == "stochastic" else None
    codes, g = reference_convert(x, inv, "e2m1g3", gl, rounding, bits)
    golden = quantize(x, "e2m1g3", "channel", rounding, None if bits is None else bits.reshape(x.shape))
    assert torch.equal(g, golden.group_exp.reshape(-1)) and int(g[1]) == 7
    packed = assemble_packed(scale, g.tolist(), to_words(codes, 4, lanes), "e2m1g3", lanes, x.numel())
    assert packed == golden.pack()


def test_words_roundtrip():
    values = np.arange(12) % 16
    words = to_words(values, 4, 3)
    assert words[0] == 0 | 1 << 4 | 2 << 8
    assert from_words(words, 4, 3) == values.tolist()
    with pytest.raises(ValueError, match=r"10 values do not fill whole words of 4 lanes"):
        to_words(range(10), 4, 4)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
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
    del unit
    gc.collect()
