# amaranth: UnusedElaboratable=no
"""The engine board design without a toolchain run: the manifest a host drives it from, the
ECP5 PLL the engine's board build runs from (``--clock-mhz``), and the CLI's option checks.
The simulated GEMMs through the bridge are tb/test_fpga_engine.py."""

from __future__ import annotations

import argparse
import json

import pytest

from hw.engine import EngineConfig, command_layout, flags_layout
from hw.engine.build import layout_fields
from hw.fpga.designs import add_design_arguments, design_from_args, make_design
from hw.fpga.engine_adapter import config_from_json, config_to_json
from hw.fpga.engine_host import EngineHost
from hw.fpga.top import ecp5_pll_config


class _NoPort:
    """A serial port that must not be used."""

    def write(self, data):
        raise AssertionError("no byte may be sent")

    def read(self, n):
        raise AssertionError("no byte may be read")


def test_ecp5_pll_config():
    assert ecp5_pll_config(25e6, 15e6) == {"CLKI_DIV": 5, "CLKFB_DIV": 3, "CLKOP_DIV": 40, "f_out_hz": 15e6,
                                           "f_vco_hz": 600e6}
    assert ecp5_pll_config(25e6, 12.5e6)["CLKOP_DIV"] == 48
    with pytest.raises(ValueError, match=r"no ECP5 PLL setting gives 13.1234 MHz from 25 MHz within 0.1% "
                                         r"\(nearest: 12.5000 MHz\)"):
        ecp5_pll_config(25e6, 13.1234e6)
    with pytest.raises(ValueError, match="between 3.125 and 400 MHz, not 1 MHz"):
        ecp5_pll_config(25e6, 1e6)


def test_config_json_round_trip():
    cfg = EngineConfig("e2m1g3", "e3m3g3", rows=2, cols=3, lanes=3, group_len=9, quant_lanes=3, a_depth=12,
                       w_depth=12, psum_depth=8, split_k_max=90)
    assert config_from_json(json.loads(json.dumps(config_to_json(cfg)))) == cfg
    with pytest.raises(ValueError, match=r"fields \['bogus'\] this checkout's EngineConfig does not know"):
        config_from_json({**config_to_json(cfg), "bogus": 1})


def test_engine_board_manifest_and_pll(tmp_path):
    pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")
    from hw.fpga.build import build_for_board

    factory, design = make_design("engine", fmt="e2m1g3", rows=2, cols=2, engine={"a_depth": 36, "w_depth": 36})
    result, path = build_for_board(factory(), "ulx3s", tmp_path, steps="files", design=design, in_depth=32,
                                   out_depth=16, clock_mhz=15)
    m = json.loads(path.read_text())
    cfg = config_from_json(m["design"]["config"])
    assert cfg == EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, group_len=9, a_depth=36, w_depth=36)
    assert m["design"]["design"] == "engine"
    assert m["design"]["command"]["layout"] == layout_fields(command_layout(cfg))
    assert m["design"]["command"]["flags"] == layout_fields(flags_layout())
    assert m["clock_hz"] == 15e6 and m["uart_divisor"] == round(15e6 / 115200)
    assert m["pll"]["CLKOP_DIV"] == 40 and m["pll"]["board_clock_hz"] == 25e6
    assert [p["name"] for p in m["bridge"]["ports"]] == ["a", "w", "c", "cmd", "start", "inv", "seed", "scale_a",
                                                         "scale_w", "busy", "done", "amax", "flags"]
    lpf = (tmp_path / "top.lpf").read_text()
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf   # nextpnr derives the PLL output's
    il = (tmp_path / "top.il").read_text()
    assert "EHXPLLL" in il and "parameter \\CLKOP_DIV 40" in il and "parameter \\CLKI_DIV 5" in il
    host = EngineHost.from_manifest(_NoPort(), m)
    assert host.config == cfg and host.in_depth == 32 and host.out_depth == 16
    dut = factory()
    dut._MustUse__silence = True   # refused before it is elaborated
    with pytest.raises(ValueError, match="--clock-mhz needs an ECP5 board"):
        build_for_board(dut, "icebreaker", tmp_path / "i", steps="files", clock_mhz=6)


def test_engine_cli_options():
    parser = argparse.ArgumentParser()
    add_design_arguments(parser)
    _, design = design_from_args(parser.parse_args(["--design", "engine", "--rows", "4", "--cols", "4", "--group-len",
                                                    "8", "--a-depth", "64", "--w-depth", "64", "--psum-depth", "16"]))
    assert design["config"]["rows"] == 4 and design["config"]["group_len"] == 8
    assert design["config"]["psum_depth"] == 16 and design["limits"]["max_k"] == 64
    with pytest.raises(ValueError, match="--lanes is an option of --design engine, not 'mls'"):
        design_from_args(parser.parse_args(["--design", "mls", "--lanes", "9"]))
    with pytest.raises(ValueError, match="--k-max is not an engine option"):
        design_from_args(parser.parse_args(["--design", "engine", "--k-max", "64"]))
    with pytest.raises(ValueError, match="group_len"):
        design_from_args(parser.parse_args(["--design", "engine", "--group-len", "9", "--quant-lanes", "2"]))
