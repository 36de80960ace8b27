# amaranth: UnusedElaboratable=no
"""The engine's synthesized area by part (sim/engine_area.py, reports/engine_area.csv) and its
energy per GEMM and per training step (sim.engine.engine_energy / step_energy)."""


import pathlib
import re

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.engine import EngineConfig
from hw.engine.build import engine_manifest
from hw.engine.engine import Engine
from hw.synth import SynthError
from sim import energy as E
from sim.engine import (AREA_CSV, ENERGY_PARTS, EngineCycles, area_by_part, area_config, engine_energy, main,
                        read_area_csv, render_report, step_energy)
from sim.engine_area import ENGINE_PARTS, engine_part, synthesize_with_macros
from sim.workloads import network_gemms

ROOT = pathlib.Path(__file__).resolve().parent.parent


class _TwoMemories(wiring.Component):
    """A synchronous-read memory (a macro) and an asynchronous-read one (must become flip-flops)."""

    addr: In(4)
    data: In(8)
    we: In(1)
    o_sync: Out(8)
    o_async: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = Memory(shape=8, depth=16, init=[])
        m.submodules.regs = regs = Memory(shape=8, depth=16, init=[])
        for mem, out, domain, offset in ((buf, self.o_sync, "sync", 0), (regs, self.o_async, "comb", 1)):
            w, r = mem.write_port(), mem.read_port(domain=domain)
            m.d.comb += [w.addr.eq(self.addr), w.data.eq(self.data + offset), w.en.eq(self.we),
                         r.addr.eq(self.addr), out.eq(r.data)]
        return m


def test_flow_keeps_named_memories_as_macros(tmp_path):
    area = synthesize_with_macros(_TwoMemories(), "two_mems", [("", "buf")], build_dir=tmp_path, nice=0)
    assert [(m.module, m.name, m.width, m.depth, m.bits) for m in area.macros] == [("two_mems", "buf", 8, 16, 128)]
    # the asynchronous memory is logic: its 16 x 8 bits are flip-flops; the macro adds none
    assert area.flip_flops == 16 * 8
    assert area.transistors > 16 * 8 * 16
    again = synthesize_with_macros(_TwoMemories(), "two_mems", [("", "buf")], build_dir=tmp_path, nice=0)
    assert again.cached and again.modules == area.modules and again.macros == area.macros
    with pytest.raises(SynthError, match=r"expected the memory macros \[\('two_mems', 'nope'\)\]"):
        synthesize_with_macros(_TwoMemories(), "two_mems", [("", "nope")], build_dir=tmp_path, nice=0)
    with pytest.raises(ValueError, match=r"^macros must name at least one memory$"):
        synthesize_with_macros(_TwoMemories(), "two_mems", [], build_dir=tmp_path)


def test_engine_part_names():
    assert engine_part("mls_engine") == "sequencer and control"
    assert engine_part("mls_engine.load_a") == "buffer fill logic"
    assert engine_part("mls_engine.load_w.quant.convert.mul0") == "quantization units"
    assert engine_part("mls_engine.array.pe_1_2.acc") == "array"
    assert engine_part("mls_engine.convert.scale_mul") == "output converter"
    assert engine_part("mls_engine.psum") == "partial sums"
    with pytest.raises(ValueError, match=r"^module 'other.x' is not inside 'mls_engine'$"):
        engine_part("other.x")
    with pytest.raises(ValueError, match=r"no engine part for 'dsp'"):
        engine_part("mls_engine.dsp")


def test_committed_area_csv_parts_sum_and_buffer_bits():
    cfg = area_config()
    rows = read_area_csv(AREA_CSV, cfg)
    logic = [r for r in rows if r["kind"] == "logic"]
    sram = [r for r in rows if r["kind"] == "sram"]
    parts = area_by_part(rows)
    assert set(parts) == set(ENGINE_PARTS) and all(p["transistors"] > 0 for p in parts.values())
    for key in ("cells", "transistors", "flip_flops"):
        assert sum(p[key] for p in parts.values()) == sum(r[key] for r in logic)
    assert sum(p["modules"] for p in parts.values()) == len(logic)
    assert all(r["part"] == engine_part(r["module"]) for r in logic)
    # the SRAM macros are exactly the operand buffers and the partial-sum buffer of the engine's
    # manifest, bit for bit
    manifest = engine_manifest(Engine(cfg), "mls_engine")
    buffers = [r for r in sram if r["part"] == "operand buffers"]
    assert sum(r["bits"] for r in buffers) == manifest["buffers"]["a"]["bits"] + manifest["buffers"]["w"]["bits"]
    assert [r["bits"] for r in sram if r["part"] == "partial-sum buffer"] == [manifest["partial_sums"]["bits"]]
    assert sorted((r["module"], r["memory"]) for r in sram) == [
        ("mls_engine.load_a", "codes"), ("mls_engine.load_a", "groups"),
        ("mls_engine.load_w", "codes"), ("mls_engine.load_w", "groups"), ("mls_engine.psum", "mem")]
    # the array's PEs are all there: R x C of them, each with its four sub-modules
    pes = {r["module"].split(".")[2] for r in logic if r["module"].startswith("mls_engine.array.pe_")}
    assert len(pes) == cfg.rows * cfg.cols


def test_report_tables_sum():
    md, _ = render_report()
    section = md[md.index("## Area (synthesized)"):md.index("## Energy per")]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| part |")]
    parts = [line for line in table if line.split("|")[1].strip() in ENGINE_PARTS]
    total = next(line for line in table if line.startswith("| logic total"))
    for column in (2, 3, 4, 5):   # modules, cells, transistors, flip-flops
        assert sum(int(p.split("|")[column]) for p in parts) == int(total.split("|")[column])
    for name in ("scalar 8x8 L=1 q=1", "dot 8x8 L=9 q=9"):
        body = md[md.index(f"### {name}"):]
        rows = re.findall(r"^\| (\w+) \| ([0-9.]+) \|", body, re.M)[:len(ENERGY_PARTS) + 1]
        assert [r[0] for r in rows] == list(ENERGY_PARTS) + ["total"]


def _scalar():
    return EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1, a_depth=160, w_depth=160)


def test_energy_counts_by_hand():
    """M=16, N=6, K=36 on 4 x 4 scalar PEs: 4 x 2 tiles of 36 beats, one block (the buffers hold it)."""
    cfg = _scalar()
    e = engine_energy(EngineCycles.of(cfg), 16, 6, 36)
    d = "mls-e2m1g3"
    assert (e.elements_a, e.elements_w) == (16 * 36, 6 * 36)
    assert e.pe_beats == 8 * 36 * 16 and e.outputs == 8 * 16
    row = 4 * (4 + 3)      # one beat row of 4 banks: 4-bit codes and 3-bit group exponents
    assert e.bits_read == 8 * 36 * 2 * row
    assert e.bits_written == (16 + 6) * (36 * 4 + 4 * 3)
    assert 4 * (160 * 4 + 160 * 3) < 8192   # 0.34 KiB: priced as the SRAM law's smallest, 1 KiB
    bit = E.sram_bit_energy(1)
    assert e.energy["quantize_a"] == 16 * 36 * E.quantize_energy(d)
    assert e.energy["quantize_w"] == 6 * 36 * E.quantize_energy(d)
    assert e.energy["buffer_read"] == pytest.approx(e.bits_read * bit, rel=1e-12)
    assert e.energy["buffer_write"] == pytest.approx(e.bits_written * bit, rel=1e-12)
    assert e.energy["array"] == e.pe_beats * sum(E.pe_energy(d, cfg.max_k).values())
    assert e.energy["convert"] == 128 * E.convert_energy(d, cfg.max_k)
    assert e.energy["total"] == sum(e.energy[p] for p in ENERGY_PARTS)
    sr = engine_energy(EngineCycles.of(cfg), 16, 6, 36, stochastic_a=True)
    assert sr.energy["quantize_a"] == 16 * 36 * E.quantize_energy(d, stochastic=True)
    assert sr.energy["quantize_a"] > e.energy["quantize_a"] and sr.energy["array"] == e.energy["array"]


def test_energy_blocks_and_padding():
    """A larger M than the buffers hold is loaded in blocks; a beat of L = 4 holding 9 elements is
    three beat rows with 3 padding lanes, written and streamed."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=4, group_len=9, quant_lanes=1, a_depth=64, w_depth=64)
    model = EngineCycles.of(cfg)
    e = engine_energy(model, 9, 5, 27)
    assert e.bits_written == (9 + 5) * (9 * 4 * 4 + 3 * 3)     # 9 beat rows of 4 codes, 3 chunks
    assert e.pe_beats == 3 * 3 * 9 * 3 * 2
    assert e.energy["array"] == e.pe_beats * sum(E.pe_beat_energy("mls-e2m1g3-l4", cfg.max_k).values())
    big = engine_energy(EngineCycles.of(_scalar()), 100, 10, 36)   # blocks of 16 rows (see test_sim_engine)
    # six blocks of 16 rows (4 x 3 tiles each) and one of 4 rows (1 x 3 tiles)
    assert big.elements_a == 100 * 36 and big.outputs == (6 * 4 * 3 + 1 * 3) * 16


def test_energy_split_k_by_hand():
    """K = 400 (padded 405) on 4 x 4 scalar PEs with a 32-row partial-sum buffer: one 8 x 8 block
    of 2 x 2 tiles in segments 5 x 72 + 45. Every segment loads both slices (padding zeros
    included); the partial-sum buffer is read for 5 segments and written for 5, a row of 4
    accumulators per tile row; only the last segment's accumulators reach the converter."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1, a_depth=160,
                       w_depth=160, psum_depth=32, split_k_max=1000)
    e = engine_energy(EngineCycles.of(cfg), 8, 8, 400)
    acc = cfg.accumulator_bits
    assert acc == cfg.fmt_a.acc_bits_exact(1000, cfg.fmt_w)
    assert (e.elements_a, e.elements_w) == (8 * 405, 8 * 405)
    assert e.psum_bits == 4 * 4 * (4 * acc) * (5 + 5)
    assert e.outputs == 4 * 16 and e.pe_beats == 4 * 16 * 405
    psum_kib = 32 * 4 * acc / 8192
    assert psum_kib < 1 and e.energy["psum"] == pytest.approx(e.psum_bits * E.sram_bit_energy(1), rel=1e-12)
    d = "mls-e2m1g3"
    assert e.energy["array"] == e.pe_beats * sum(E.pe_energy(d, 1000).values())
    assert e.energy["total"] == sum(e.energy[p] for p in ENERGY_PARTS)


def test_step_energy_skips_what_does_not_fit():
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=8, cols=8, lanes=1, group_len=9, quant_lanes=1, a_depth=4096, w_depth=4096)
    gemms = network_gemms("resnet20")
    total, skipped = step_energy(cfg, gemms)
    # without a partial-sum buffer: the GEMMs whose padded K is longer than a line
    assert skipped == [g for g in gemms if cfg.padded_k(g.k) > cfg.max_k] and skipped
    assert all(g.pass_ == "backward-weight" for g in skipped)
    assert total["total"] == pytest.approx(sum(total[p] for p in ENERGY_PARTS), rel=1e-12)
    assert total["psum"] == 0
    model = EngineCycles.of(cfg)
    by_hand = sum(engine_energy(model, g.m, g.n, g.k, g.a_role == "error").energy["quantize_a"]
                  for g in gemms if g not in skipped)
    assert total["quantize_a"] == pytest.approx(by_hand, rel=1e-12)
    # with the report's partial-sum buffer every GEMM runs
    split = EngineConfig("e2m1g3", "e2m1g3", rows=8, cols=8, lanes=1, group_len=9, quant_lanes=1, a_depth=4096,
                         w_depth=4096, psum_depth=1024, split_k_max=131076)
    total, skipped = step_energy(split, gemms)
    assert skipped == [] and total["psum"] > 0
    with pytest.raises(ValueError, match=r"one MLS format, got A e2m3g2 and W e2m1g3"):
        engine_energy(EngineCycles.of(EngineConfig("e2m3g2", "e2m1g3", rows=2, cols=2, group_len=4)), 2, 2, 4)


def test_area_config_is_the_report_scalar_engine():
    from sim.engine import AREA_CONFIG, REPORT_CONFIGS

    assert AREA_CONFIG == REPORT_CONFIGS["scalar 8x8 L=1 q=1"]


def test_area_csv_errors(tmp_path):
    cfg = area_config()
    with pytest.raises(ValueError, match=r"missing; run python -m sim\.engine --synth"):
        read_area_csv(tmp_path / "none.csv", cfg)
    stale = tmp_path / "stale.csv"
    stale.write_text(AREA_CSV.read_text().replace(str(cfg), "other_config"))
    with pytest.raises(ValueError, match=r"was synthesized for other_config, not "):
        read_area_csv(stale, cfg)
    assert main(["--out", str(tmp_path / "o"), "--area-csv", str(stale)]) == 2
    assert main(["--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "engine.md").read_text() == (ROOT / "reports" / "engine.md").read_text()
