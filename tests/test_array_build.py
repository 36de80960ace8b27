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
    (["--lanes", "0"], "--lanes must be in [1, 1024], got 0"),
    (["--lanes", "1025"], "--lanes must be in [1, 1024], got 1025"),
    (["--target", "pe", "--lanes", "0"], "--lanes must be in [1, 1024], got 0"),
    (["--pe", "fp32", "--lanes", "4"], "--lanes must be 1 for pe='fp32' (no 4-lane dot-product PE of that kind), got 4"),
    (["--pe", "fp32", "--format-w", "e2m1g3"], "--format-w is for MLS PEs; pe='fp32' has fixed operand formats"),
    (["--format-w", "e2m1"], "format name 'e2m1' does not match"),
    (["--preset", "e2m1g3-l16", "--acc-bits", "1"], "acc_bits must be in [2, 256], got 1"),
])
def test_bad_parameters_one_line_error(args, message, tmp_path):
    res = _cli(*args, "--out", str(tmp_path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr


# -- lanes: the array of L-lane dot-product PEs ------------------------------------------------
def test_lanes_manifest(tmp_path):
    """--lanes L (and the e2m1g3-l<L> presets): lanes, tree width, latency and the beat-based
    cycle text in the manifest; the array's widths from the PE's."""
    from hw.array import ArrayTiming
    from hw.pe import MLSDotPE

    from hw.build import MAX_LANES

    assert MAX_LANES == MLSDotPE.MAX_LANES
    fmt = MLSFormat.parse("e2m1g3")
    for args in (["--lanes", "16"], ["--preset", "e2m1g3-l16"]):
        assert main([*args, "--rows", "2", "--cols", "3", "--max-k", "300", "--out", str(tmp_path), "--name", "d16"]) == 0
        m = json.loads((tmp_path / "d16.json").read_text())
        pe = MLSDotPE(fmt, fmt, 16, fmt.acc_bits_exact(300))
        assert (m["lanes"], m["pe"]["lanes"], m["pe"]["component"]) == (16, 16, "hw.pe.MLSDotPE")
        assert m["tree_bits"] == m["pe"]["tree_bits"] == pe.tree_bits and m["pe"]["tree_latency"] == pe.tree_latency
        assert m["pe"]["beat_bits"] == pe.beat_bits
        assert m["pe_latency"] == pe.latency == 2 + 2 and m["acc_bits"] == fmt.acc_bits_exact(300) == pe.acc_bits
        t = ArrayTiming(2, 3, pe.latency, 16)
        assert m["cycles"]["parameters"] == {"rows": 2, "cols": 3, "pe_latency": 4, "lanes": 16,
                                             "drain_cycles": t.drain_cycles}
        assert m["latency_last_input_to_first_output"] == t.drain_cycles - 1 and m["macs_per_cycle"] == 2 * 3 * 16
        assert m["cycles"]["tile_cycles"].startswith("beats + drain_cycles") and "ceil(chunk / lanes)" in m["cycles"]["tile_cycles"]
        ports = {p["name"]: p["width"] for p in m["ports"]}
        # one beat per row: 16 elements of 4 bits and one 3-bit g; plus last
        assert ports["a__payload"] == 2 * (16 * 4 + 3) + 1 and ports["w__payload"] == 3 * (16 * 4 + 3)
        assert m["payloads"]["a"]["data.1.elems.15.sign"] == [(16 * 4 + 3) + 15 * 4 + 3, 1]
        assert m["payloads"]["a"]["data.1.g"] == [(16 * 4 + 3) + 16 * 4, 3]
    # lanes = 1 is the scalar PE, recorded as such
    assert main(["--preset", "e2m1g3-l1", "--rows", "2", "--cols", "2", "--out", str(tmp_path), "--name", "d1"]) == 0
    m = json.loads((tmp_path / "d1.json").read_text())
    assert (m["lanes"], m["tree_bits"], m["pe"]["component"], m["pe_latency"]) == (1, None, "hw.pe.MLSPE", 2)


def test_lanes_presets_and_mixed_formats(tmp_path, capsys):
    from hw.presets import PRESETS

    assert [PRESETS[f"e2m1g3-l{lanes}"].lanes for lanes in (1, 4, 9, 16)] == [1, 4, 9, 16]
    assert main(["--list"]) == 0
    assert "e2m1g3-l9      e2m1g3 8x8 lanes=9 grouping=channel" in capsys.readouterr().out
    a, w = MLSFormat.parse("e2m1g3"), MLSFormat.parse("e3m2g4")
    assert main(["--format", "e2m1g3", "--format-w", "e3m2g4", "--lanes", "4", "--rows", "2", "--cols", "2",
                 "--max-k", "100", "--out", str(tmp_path), "--name", "mixed"]) == 0
    m = json.loads((tmp_path / "mixed.json").read_text())
    assert (m["format"]["name"], m["format_w"]["name"], m["lanes"]) == ("e2m1g3", "e3m2g4", 4)
    assert m["acc_bits"] == a.acc_bits_exact(100, w) == m["acc_bits_exact_for_max_k"] and m["acc_exact"]
    assert m["tree_bits"] == a.beat_sum_bits(4, w)
    ports = {p["name"]: p["width"] for p in m["ports"]}
    assert ports["w__payload"] == 2 * (4 * 6 + 4)
    # the dot PE alone
    assert main(["--target", "pe", "--lanes", "9", "--acc-bits", "30", "--out", str(tmp_path), "--name", "p9"]) == 0
    m = json.loads((tmp_path / "p9.json").read_text())
    assert (m["component"], m["lanes"], m["tree_bits"], m["beat_bits"], m["latency"]) == ("hw.pe.MLSDotPE", 9, 12, 26, 4)


# -- issue 15: --name and --out ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "a b", "x/y", "", "9lives", "mls-array"])
def test_bad_name_one_line_error_writes_nothing(name, tmp_path):
    """--name is a Verilog module name and a file name inside --out: a path ('../x' used to write
    outside --out) or a space (used to give a traceback) is refused with the allowed pattern."""
    out = tmp_path / "out"
    res = _cli("--name", name, "--rows", "1", "--cols", "1", "--out", str(out))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"got {name!r}" in res.stderr and "[A-Za-z_][A-Za-z0-9_]*" in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], "nothing is written"
    res = _cli("--target", "quant_unit", "--name", name, "--out", str(out))
    assert res.returncode == 2 and f"got {name!r}" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_out_is_a_file_one_line_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    for out in (afile, afile / "sub"):
        res = _cli("--rows", "1", "--cols", "1", "--out", str(out))
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert f"--out must be a directory, but {str(afile)!r} is a file" in res.stderr, res.stderr
    assert afile.read_text() == "keep me\n"


def test_baseline_dot_arrays(tmp_path, capsys):
    """--pe fp8-.../int8 with --lanes L (and the fp8-e4m3-l16 / int8-l16 presets): the same-lane
    dot-product baselines; FP32 has one lane."""
    assert main(["--preset", "int8-l16", "--rows", "2", "--cols", "2", "--max-k", "1000", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "int8_array.json").read_text())
    assert (m["pe"]["kind"], m["pe"]["component"], m["lanes"], m["pe_latency"], m["acc_exact"]) == \
        ("int8", "hw.baseline.INT8DotPE", 16, 4, True)
    ports = {p["name"]: p["width"] for p in m["ports"]}
    assert (ports["a__payload"], ports["w__payload"], ports["c__payload"]) == (2 * 16 * 8 + 1, 2 * 16 * 8, 2 * 32 + 2 + 1)
    assert main(["--pe", "fp8-e4m3-e5m2", "--lanes", "4", "--rows", "2", "--cols", "2", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "fp8_e4m3_e5m2_array.json").read_text())
    assert (m["pe"]["component"], m["pe"]["a_format"], m["pe"]["w_format"], m["lanes"]) == \
        ("hw.baseline.FP8DotPE", "e4m3", "e5m2", 4)
    assert m["pe"]["golden_model"] == "model.baseline_arith.fp8_dot_mac" and m["format"] is None
    assert main(["--list"]) == 0
    assert "fp8-e4m3-l16   pe=fp8-e4m3 8x8 lanes=16" in capsys.readouterr().out


def test_board_refuses_dot_arrays(tmp_path, capsys):
    """--board streams one element per operand: an array with lanes (or mixed formats) is refused
    with one line before any board step runs."""
    for extra in (["--lanes", "4"], ["--preset", "e2m1g3-l4"], ["--format-w", "e3m2g4"]):
        assert main([*extra, "--rows", "1", "--cols", "1", "--board", "ulx3s", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["python -m hw.build: error: --board builds scalar-PE arrays only (one format, lanes 1: the "
                       "board bridge streams one element per operand)"], err


# -- the default: the design-space sweep's recommendation ------------------------------------
def _dse_recommended(network: str) -> tuple[str, int, int]:
    """(format, L, Gc) of the **recommended** row of ``network`` in the committed reports/dse.md."""
    for line in (ROOT / "reports" / "dse.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == [network, "**recommended**"]:
            return cells[2].strip("`"), int(cells[3]), int(cells[4])
    raise AssertionError(f"no recommended row for {network} in reports/dse.md")


def test_default_array_is_the_dse_recommendation(tmp_path, capsys):
    """``python -m hw.build`` emits the DSE's ResNet-20 pick (format, lanes, channel block); the
    expectations come from the preset and the report, so a new recommendation that is not made
    the default fails here."""
    from model.grouping import Grouping

    from hw.presets import DEFAULT_ARRAY_PRESET, DEFAULT_PRESET, PRESETS

    preset = PRESETS[DEFAULT_ARRAY_PRESET]
    fmt_name, lanes, gc = _dse_recommended("resnet20")
    assert (preset.fmt, preset.lanes, Grouping.parse(preset.grouping)) == (fmt_name, lanes, Grouping.channel(gc))
    assert lanes > 1, "the recommendation is a dot-product array (else this test checks nothing new)"
    # --rows/--cols/--max-k only shrink the build; lanes, format and grouping are the default's
    assert main(["--rows", "2", "--cols", "2", "--max-k", "300", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "mls_array.json").read_text())
    fmt = MLSFormat.parse(preset.fmt)
    assert (m["format"]["name"], m["lanes"], m["grouping"], m["pe"]["component"]) == \
        (preset.fmt, preset.lanes, preset.grouping, "hw.pe.MLSDotPE")
    assert m["acc_bits"] == fmt.acc_bits_exact(300) == m["acc_bits_exact_for_max_k"] and m["acc_exact"]
    assert m["macs_per_cycle"] == 2 * 2 * preset.lanes
    assert (preset.rows, preset.cols) == (8, 8)
    # the scalar array stays one preset away, and is --board's default
    scalar = PRESETS[DEFAULT_PRESET]
    assert PRESETS["e2m1g3-l1"].lanes == scalar.lanes == 1 and PRESETS["e2m1g3-l1"].fmt == scalar.fmt == preset.fmt
    assert main(["--preset", "e2m1g3-l1", "--rows", "2", "--cols", "2", "--out", str(tmp_path), "--name", "s"]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["lanes"], s["pe"]["component"], s["format"]["name"]) == (1, "hw.pe.MLSPE", scalar.fmt)
    assert main(["--board", "ulx3s", "--steps", "files", "--rows", "1", "--cols", "1",
                 "--out", str(tmp_path / "board")]) == 0
    b = json.loads((tmp_path / "board" / "mls_array.json").read_text())
    assert (b["lanes"], b["format"]["name"], b["pe"]["component"]) == (scalar.lanes, scalar.fmt, "hw.pe.MLSPE")
    # a baseline --pe without --preset is the scalar baseline array, not a 9-lane one
    assert main(["--pe", "int8", "--rows", "2", "--cols", "2", "--out", str(tmp_path)]) == 0
    i = json.loads((tmp_path / "int8_array.json").read_text())
    assert (i["lanes"], i["pe"]["component"]) == (1, "hw.baseline.BaselinePE('int8')")
    capsys.readouterr()
    assert main(["--list"]) == 0
    marked = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  ") and "(default" in line]   # the preset lines, not the targets line
    assert marked == [DEFAULT_PRESET, DEFAULT_ARRAY_PRESET]
