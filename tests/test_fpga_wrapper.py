# amaranth: UnusedElaboratable=no
"""The board wrapper's Python side, without a simulator: the bridge's port table, the host
encoders, tile packing, and board designs that elaborate (no toolchain run). The Amaranth-simulator
runs (and the components' constructor errors) are tb/test_fpga_bridge.py, tb/test_fpga_array.py and
tb/test_fpga_baseline.py."""

from __future__ import annotations

import json

import pytest
from amaranth import Fragment

from hw.array import SystolicArray
from hw.fpga.bridge import port_table
from hw.fpga.demo import DotDemo
from hw.fpga.designs import make_design
from hw.fpga.host import encode_pulse, encode_write
from hw.fpga.protocol import PortKind
from hw.layout_pack import pack, unpack


def _demo(*args):
    """A DotDemo only inspected, not simulated: elaborate it so Amaranth does not warn it unused."""
    demo = DotDemo(*args)
    Fragment.get(demo, None)
    return demo


def test_port_table_from_signature():
    ports = port_table(_demo())
    assert [(p.name, p.kind, p.width) for p in ports] == [
        ("i", PortKind.IN_STREAM, 16), ("clear", PortKind.IN_REG, 1),
        ("o", PortKind.OUT_STREAM, 24), ("count", PortKind.OUT_REG, 16)]
    assert [p.index for p in ports] == [0, 1, 2, 3]


def test_host_encoder_errors():
    ports = {q.name: q for q in port_table(_demo())}
    with pytest.raises(ValueError, match=r"^value 65536 does not fit port 'i' of 16 bits"):
        encode_write(ports["i"], 1 << 16)
    with pytest.raises(ValueError, match=r"^port 'o' is out_stream; this command needs in_stream or in_reg$"):
        encode_write(ports["o"], 0)
    with pytest.raises(ValueError, match=r"^port 'i' is in_stream; this command needs in_reg$"):
        encode_pulse(ports["i"], 0)


def test_pack_roundtrip_and_errors():
    array = SystolicArray("e2m1g3", 2, 2, max_k=16)
    layout = array.signature.members["c"].signature.members["payload"].shape
    value = {"data": [-5, 7], "overflow": 2, "last": 1}
    assert unpack(layout, pack(layout, value)) == value
    with pytest.raises(ValueError, match=r"does not fit signed\(\d+\)"):
        pack(layout, {"data": [1 << 60, 0]})
    with pytest.raises(ValueError, match=r"^no field\(s\) \['bogus'\]"):
        pack(layout, {"bogus": 1})


def test_fp32_board_design_elaborates(tmp_path):
    pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")
    from hw.fpga.build import build_for_board

    factory, design = make_design("fp32", rows=2, cols=2)
    assert (design["design"], design["pe"], design["format"], design["acc_bits"]) == ("fp32", "fp32", "fp32", 32)
    result, manifest_path = build_for_board(factory(), "ulx3s", tmp_path, steps="files", design=design)
    m = json.loads(manifest_path.read_text())
    assert m["design"]["pe"] == "fp32" and result.luts is None
    ports = {p["name"]: p for p in m["bridge"]["ports"]}
    assert [p["name"] for p in m["bridge"]["ports"]] == ["a", "w", "c"]
    assert (ports["a"]["width"], ports["w"]["width"], ports["c"]["width"]) == (2 * 32 + 1, 2 * 32, 2 * 32 + 2 + 1)
    rtlil = (tmp_path / "top.il").read_text()
    assert "pe_1_1" in rtlil and "pe_1_1.add" in rtlil   # the FP32 adder of PE(1, 1)


def test_hw_build_board_passes_the_pe(tmp_path):
    pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")
    from hw.build import main

    assert main(["--preset", "fp32-8x8", "--rows", "2", "--cols", "2", "--board", "ulx3s", "--steps", "files",
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "board.json").read_text())
    assert (m["design"]["design"], m["design"]["pe"], m["design"]["acc_bits"]) == ("fp32", "fp32", 32)


def test_unknown_array_design():
    with pytest.raises(ValueError, match=r"^unknown design 'bf16'; known: demo, mls, fp32, fp8-e4m3, fp8-e5m2, int8, engine$"):
        make_design("bf16")
