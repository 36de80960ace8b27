"""FPGA report writer (sim/fpga_report.py) and host client: fast, no toolchain."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest

from hw.fpga.bridge import port_table
from hw.fpga.demo import DotDemo
from hw.fpga.host import BoardClient
from hw.fpga.protocol import Op
from hw.fpga.configs import COLUMNS, Config
from sim import fpga_report
from sim.fpga_report import _parse_size, main, write_report

ROOT = Path(__file__).resolve().parent.parent


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


def test_committed_report_regenerates_from_cached_builds(tmp_path, monkeypatch):
    """reports/fpga.{md,csv} are what the command at the top of reports/fpga.md writes, run with
    --cached-only on the cached builds: each build's board.json is rebuilt here from its fpga.csv
    row (no place and route), so the report code and the cache keys must still reproduce them."""
    committed = ROOT / "reports"
    md = (committed / "fpga.md").read_text()
    for rec in csv.DictReader(open(committed / "fpga.csv", newline="")):
        def num(key, kind=int):
            return None if rec[key] == "" else kind(rec[key])

        cfg = Config(rec["board"], rec["design"], rec["format"].split(" ")[0] if rec["design"] == "mls" else rec["design"],
                     int(rec["rows"]), int(rec["cols"]), rec["role"], dsp=rec["dsp_map"] == "yes",
                     steps=fpga_report._row_steps(rec),
                     lanes=int(rec.get("lanes") or 1))
        result = {k: num(k) for k in ("luts", "luts_avail", "ffs", "dsps", "dsps_avail", "brams", "lutram")}
        result.update(fmax_mhz=num("fmax_mhz", float), fits={"True": True, "False": False, "": None}[rec["fits"]],
                      seconds={"pnr": num("pnr_s", float)})
        manifest = {"clock_hz": float(rec["clock_mhz"]) * 1e6, "design": {"acc_bits": num("acc_bits")}, "result": result}
        (tmp_path / "build" / "fpga_report" / cfg.key).mkdir(parents=True, exist_ok=True)   # one build, two roles
        (tmp_path / "build" / "fpga_report" / cfg.key / "board.json").write_text(json.dumps(manifest))
    command = shlex.split(re.search(r"Regenerate: `(.*?)`\. Flow:", md, re.S).group(1))
    assert command[:3] == ["python", "-m", "sim.fpga_report"]
    tools = re.search(r" Tools: (.*?)\.\n", md).group(1)   # the versions of that run, not the installed ones
    monkeypatch.setattr(fpga_report, "_tools", lambda: tools)
    monkeypatch.chdir(tmp_path)
    assert main(command[3:] + ["--cached-only"]) == 0
    assert (tmp_path / "reports" / "fpga.md").read_text() == md
    assert (tmp_path / "reports" / "fpga.csv").read_bytes() == (committed / "fpga.csv").read_bytes()


def test_dot_row_per_mac_and_fit_estimate(tmp_path):
    """The dot-product arrays sit beside the scalar e2m1g3 and FP32 arrays of the same R×C, per
    MAC per cycle (R×C×L MACs a cycle), with the largest fit measured and estimated per lane count
    and DSP mapping."""
    dot = Config("ulx3s", "mls", "e2m1g3", 4, 4, "dot", lanes=9)
    assert dot.key == "ulx3s-e2m1g3-4x4-l9" and dot.label == "e2m1g3 dot L=9" and dot.macs_per_cycle == 144
    small = Config("ulx3s", "mls", "e2m1g3", 2, 2, "dot", lanes=9)
    nodsp = Config("ulx3s", "mls", "e2m1g3", 4, 4, "dot", lanes=9, dsp=False, steps="pack")
    assert nodsp.key == "ulx3s-e2m1g3-4x4-l9-nodsp-pack"
    configs = [Config("ulx3s", "mls", "e2m1g3", 4, 4, "formats"), Config("ulx3s", "fp32", "fp32", 4, 4, "formats"),
               Config("ulx3s", "mls", "e2m1g3", 2, 2, "sweep"), small, dot, nodsp]
    rows = [_row("e2m1g3", 4, 4, 2000, 80.0), _row("FP32 PE", 4, 4, 8000, 20.0, design="fp32"),
            _row("e2m1g3", 2, 2, 900, 90.0),
            {**_row("e2m1g3 dot L=9", 2, 2, 4400, 60.0), "lanes": 9, "dsps": 36, "dsps_avail": 156, "pnr_s": 12.5},
            {**_row("e2m1g3 dot L=9", 4, 4, 14400, 50.0), "lanes": 9, "dsps": 144, "dsps_avail": 156, "pnr_s": 99.0},
            {**_row("e2m1g3 dot L=9", 4, 4, 14000, None), "lanes": 9, "dsp_map": "no", "routed": False,
             "dsps_avail": 156}]
    write_report(rows, configs, tmp_path, command="python -m sim.fpga_report", missing=[],
                 meta={"tools": "t", "fit_note": "", "formats_note": "", "dot_note": "why it is slow"})
    md = (tmp_path / "fpga.md").read_text()
    assert "## e2m1g3 dot-product array on the ULX3S (ECP5-85F)" in md
    dot_md = md[md.index("## e2m1g3 dot-product array"):]
    assert "| e2m1g3 dot L=9 | 4×4 | 9 | yes | 144 | 14400 | 17.2 | 10 | 144 | 0 | 50 | 100 | 0.1 | 1 | 7.2 | yes | 99 |" in dot_md
    assert "| e2m1g3 dot L=9 | 2×2 | 9 | yes | 36 | 4400 | 5.3 | 10 | 36 | 0 | 60 | 122.2 | 0.3 | 1 | 2.16 | yes | 12.5 |" in dot_md
    assert "| e2m1g3 dot L=9 | 4×4 | 9 | no | 144 | 14000 | 16.7 | 10 | 0 | 0 | – | 97.2 | 0.1 | 0 | – | **no** | – |" in dot_md
    # the scalar rows of the same sizes, smallest first; FP32 only where it was built
    assert "| e2m1g3 | 2×2 | 1 | yes | 4 | 900 | 1.1 | 10 | 0 | 0 | 90 | 225 | 2.5 | 0 | 0.36 | yes | – |" in dot_md
    assert "| e2m1g3 | 4×4 | 1 | yes | 16 | 2000 | 2.4 | 10 | 0 | 0 | 80 | 125 | 0.6 | 0 | 1.28 | yes | – |" in dot_md
    assert "| FP32 PE | 4×4 | 1 | yes | 16 | 8000 | 9.6 | 10 | 0 | 0 | 20 | 500 | 0.6 | 0 | 0.32 | yes | – |" in dot_md
    assert dot_md.count("| FP32 PE |") == 1
    assert "Not placed and routed: e2m1g3 dot L=9 4×4 (`-nodsp`) (packed only" in dot_md and "why it is slow" in dot_md
    # DSP-mapped: two sizes give the slope (14400 - 4400) / 12 = 833 LUTs per PE, 1067 fixed
    assert ("- **Largest e2m1g3 dot L=9 array, multipliers in DSP blocks**: measured: 4×4 fits (144 MACs/cycle, "
            "17.2% of the LUTs, 144 of 156 DSPs, placed and routed, Fmax 50 MHz); estimate: 833 LUTs per PE between "
            "the 2×2 and 4×4 builds, 1067 fixed, 9 DSPs per PE: the 156 DSPs bound it at 17 PEs (153 MACs/cycle), "
            "the 83640 LUTs alone would allow about 99.") in dot_md   # (83640 - 1067) // 833.3
    # in LUTs: one size, LUTs per PE with the bridge
    assert ("- **Largest e2m1g3 dot L=9 array, multipliers in LUTs (`-nodsp`)**: measured: 4×4 fits (144 MACs/cycle, "
            "16.7% of the LUTs, 0 of 156 DSPs, packed, not routed); estimate: 875 LUTs per PE from the 4×4 build "
            "(bridge included), no DSPs: the 83640 LUTs bound it at about 95 PEs (855 MACs/cycle) at 100%") in dot_md
    with pytest.raises(ValueError, match="lanes > 1 is the MLS dot-product array only"):
        Config("ulx3s", "fp32", "fp32", 4, 4, "dot", lanes=9)
    with pytest.raises(ValueError, match="lanes must be an int >= 1, got 0"):
        Config("ulx3s", "mls", "e2m1g3", 4, 4, "dot", lanes=0)


def test_dot_option_list(tmp_path, monkeypatch):
    """--dot takes a comma list of R×C:L[:pack][:nodsp]: each one a dot configuration (checked
    with --cached-only, which builds nothing and lists them as not built)."""
    monkeypatch.chdir(tmp_path)
    assert main(["--formats", "", "--sweep", "", "--board2", "", "--dot", "2x2:9,4x4:9:nodsp:pack,3x3:4:pack",
                 "--cached-only", "--size", "1x1"]) == 0
    md = (tmp_path / "reports" / "fpga.md").read_text()
    for key in ("ulx3s-e2m1g3-2x2-l9", "ulx3s-e2m1g3-4x4-l9-nodsp-pack", "ulx3s-e2m1g3-3x3-l4-pack"):
        assert f"- {key}: not built" in md


def test_report_cli_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--sweep", "4by4"])
    assert exc.value.code == 2 and "array size must look like 4x4, not '4by4'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--dot", "4x4"])
    assert exc.value.code == 2 and ("--dot must look like 4x4:9, 4x4:9:pack or 4x4:9:nodsp (R×C and lanes >= 1), "
                                    "not '4x4'") in capsys.readouterr().err
    for bad in ("2x2:9,4x4:9:fast", "4x4:9:pack:pack", "4x4:0"):
        with pytest.raises(SystemExit) as exc:
            main(["--dot", bad])
        assert exc.value.code == 2 and f"not {bad.split(',')[-1]!r}" in capsys.readouterr().err
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


def test_energy_report_reads_fpga_luts_per_mac(tmp_path):
    """sim.report's dot four-ways FPGA column: LUTs per MAC per cycle by Design name, from the rows
    of fpga.csv (FP32-PE array, scalar MLS arrays of the formats table, dot arrays)."""
    from sim.report import _read_fpga

    configs = [Config("ulx3s", "mls", "e2m1g3", 4, 4, "formats"), Config("ulx3s", "fp32", "fp32", 4, 4, "formats"),
               Config("ulx3s", "mls", "e2m1g3", 8, 8, "sweep"), Config("ulx3s", "mls", "e2m1g3", 4, 4, "dot", lanes=9)]
    rows = [_row("e2m1g3", 4, 4, 2000, 80.0), _row("FP32 PE", 4, 4, 8000, 20.0, design="fp32"),
            _row("e2m1g3", 8, 8, 7000, 70.0), {**_row("e2m1g3 dot L=9", 4, 4, 14400, 50.0), "lanes": 9}]
    write_report(rows, configs, tmp_path, command="python -m sim.fpga_report", missing=[],
                 meta={"tools": "t", "fit_note": "", "formats_note": ""})
    got = _read_fpga(tmp_path / "fpga.csv")
    assert got == {"mls-e2m1g3": 125.0, "fp32": 500.0, "mls-e2m1g3-l9": 100.0}   # the sweep row is not read
    assert _read_fpga(tmp_path / "missing.csv") == {}


def test_energy_report_takes_the_largest_routed_dot_array(tmp_path):
    """Several rows of one dot design: the largest array that fits and was routed counts, the one
    without DSP blocks at equal size; a packed-only or non-fitting larger array does not."""
    import csv

    from sim.report import _read_fpga

    fields = ["role", "board", "design", "format", "rows", "cols", "lanes", "dsp_map", "luts", "fits", "routed"]
    rows = [("2", "2", "yes", "4000", "True", "True"), ("4", "4", "yes", "16200", "True", "True"),
            ("4", "4", "no", "16000", "True", "True"), ("9", "9", "no", "76000", "True", "False"),
            ("9", "10", "no", "84000", "False", "False")]
    with open(tmp_path / "fpga.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r, c, dsp, luts, fits, routed in rows:
            w.writerow(["dot", "ulx3s", "mls", "e2m1g3 dot L=9", r, c, "9", dsp, luts, fits, routed])
    assert _read_fpga(tmp_path / "fpga.csv") == {"mls-e2m1g3-l9": 16000 / 144}
