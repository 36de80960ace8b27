"""FPGA report writer (sim/fpga_report.py) and host client: fast, no toolchain."""

from __future__ import annotations

import csv

import pytest

from hw.fpga.bridge import port_table
from hw.fpga.demo import DotDemo
from hw.fpga.host import BoardClient
from hw.fpga.protocol import Op
from hw.fpga.configs import COLUMNS, Config
from sim.fpga_report import _parse_size, main, write_report


def _row(fmt, r, c, luts, fmax, fits=True, design="mls"):
    row = dict.fromkeys(COLUMNS)
    row.update(board="ulx3s", design=design, format=fmt, rows=r, cols=c, pes=r * c, acc_bits=43, dsp_map="yes",
               luts=luts, luts_avail=83640,
               lut_pct=round(100 * luts / 83640, 1), ffs=10, dsps=0, brams=0, lutram=0, fmax_mhz=fmax,
               clock_mhz=25.0, fits=fits, routed=fits, note="")
    return row


def test_report_tables_and_ratios(tmp_path):
    configs = [Config("ulx3s", "mls", "e1m1g3", 4, 4, "formats"), Config("ulx3s", "mls", "e2m1g3", 4, 4, "formats"),
               Config("ulx3s", "fp32", "fp32", 4, 4, "formats"), Config("ulx3s", "mls", "e2m1g3", 8, 8, "sweep"),
               Config("ulx3s", "mls", "e2m1g3", 32, 32, "fit")]
    rows = [_row("e1m1g3", 4, 4, 1000, 100.0), _row("e2m1g3", 4, 4, 2000, 80.0), _row("FP32 PE", 4, 4, 8000, 20.0, design="fp32"),
            _row("e2m1g3", 8, 8, 7000, 70.0), _row("e2m1g3", 32, 32, 90000, None, fits=False)]
    write_report(rows, configs, tmp_path, command="python -m sim.fpga_report", missing=["x: y"],
                 meta={"tools": "t", "fit_note": "probed 32x32", "formats_note": "why FP32 is slow"})
    md = (tmp_path / "fpga.md").read_text()
    assert "| e1m1g3 | 4×4 | 43 | yes | 1000 | 1.2 | 10 | 0 | 0 | 0 | 100 | 0.125 | 5 |" in md   # ratios vs the FP32 PE
    assert "LUTs / FP32 PE" in md
    assert "Against the FP32-PE array" in md and "e1m1g3 0.12× the LUTs, 1.00× the FFs, 0 DSPs" in md
    assert "Fails timing at the board clock (routed with `--timing-allow-fail`): FP32 PE 4×4, Fmax 20 MHz < 25 MHz." in md
    assert "**Largest e2m1g3 array that fits, multipliers in DSP blocks (Yosys default): 8×8** (8.4% of the LUTs, 0 DSPs, Fmax 70.0 MHz); does not fit: 32×32." in md
    assert "probed 32x32" in md and "why FP32 is slow" in md
    assert "- x: y" in md
    with open(tmp_path / "fpga.csv") as f:
        got = list(csv.DictReader(f))
    assert [g["role"] for g in got] == ["formats"] * 3 + ["sweep", "fit"] and got[-1]["fits"] == "False"
    assert (tmp_path / "fpga.png").stat().st_size > 1000


def test_report_cli_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--sweep", "4by4"])
    assert exc.value.code == 2 and "array size must look like 4x4, not '4by4'" in capsys.readouterr().err
    assert _parse_size("2x3") == (2, 3)


class _FakeTransport:
    """Records what the client sends and answers from a queue (the device side is tested in RTL)."""

    def __init__(self, replies):
        self.sent, self.replies = bytearray(), bytearray(replies)

    def write(self, data):
        self.sent += data

    def read(self, n):
        out, self.replies = bytes(self.replies[:n]), self.replies[n:]
        return out


def test_board_client_framing():
    demo = DotDemo()
    demo._MustUse__silence = True   # only its signature is read
    ports = [p.to_json() for p in port_table(demo)]
    t = _FakeTransport(b"MLS\x04" + b"\x34\x12\x00" + b"\x05\x00" + bytes(range(13)))
    dev = BoardClient(t, ports)
    assert dev.identify() == 4
    dev.write("i", 0xBEEF)
    dev.pulse("clear")
    dev.go()
    assert dev.read("o") == 0x1234
    assert dev.level("o") == 5
    c = dev.counters()
    assert (c.cycles, c.first_in, c.last_out) == (0x03020100, 0x07060504, 0x0B0A0908)
    assert c.flags == frozenset({"bad_port", "uart_overrun"}) and c.span == 0x0B0A0908 - 0x07060504 + 1   # flag byte 12
    assert bytes(t.sent) == b"I" + b"W\x00\xef\xbe" + b"P\x01\x01" + b"G" + b"R\x02" + b"L\x02" + b"C"
    assert Op.COUNTERS == ord("C")
    with pytest.raises(TimeoutError, match=r"^expected 3 reply bytes, got 0$"):
        dev.read("o")
    with pytest.raises(ValueError, match=r"^no port 'x'; ports: i, clear, o, count$"):
        dev.read("x")
    with pytest.raises(IOError, match=r"not an MLS board bridge"):
        BoardClient(_FakeTransport(b"XYZ\x01"), ports).identify()
