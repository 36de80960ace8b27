"""Emit the engine (``hw.engine.Engine``) as Verilog plus a JSON manifest.

``python -m hw.build --target engine --out DIR`` (options: ``--target engine --help``).
``build_engine(config, out_dir)`` is the function behind it.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from amaranth import Shape
from amaranth.back import verilog

from ..convert.converter import OutputConverter
from ..quant_unit.convert import ConvertPass
from .config import EngineConfig
from .engine import Engine, Op, command_layout, flags_layout

__all__ = ["add_arguments", "config_from_args", "engine_manifest", "build_engine", "layout_fields"]


def layout_fields(layout) -> list[dict]:
    return [{"name": name, "offset": field.offset, "width": Shape.cast(field.shape).width} for name, field in layout]


def _ports(component) -> list[dict]:
    ports = [{"name": "__".join(str(p) for p in path), "dir": "in" if member.flow.value == "In" else "out",
              "width": Shape.cast(member.shape).width}
             for path, member, _value in component.signature.flatten(component)]
    return ports + [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]


def engine_manifest(engine: Engine, name: str) -> dict:
    cfg = engine.config
    loader_a, loader_w = engine.make_loaders()
    a_row_bits = cfg.rows * cfg.lanes * cfg.fmt_a.elem_bits
    w_row_bits = cfg.cols * cfg.lanes * cfg.fmt_w.elem_bits
    timing_pe = Engine.pe_latency_of(cfg)
    from ..array.timing import ArrayTiming
    timing = ArrayTiming(cfg.rows, cfg.cols, timing_pe, cfg.lanes)
    manifest = {
        "target": "engine", "toplevel": name,
        "format_a": str(cfg.fmt_a), "format_w": str(cfg.fmt_w),
        "rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes, "group_len": cfg.group_len,
        "quant_lanes": cfg.quant_lanes, "sr_bits": cfg.sr_bits,
        "acc_bits": cfg.accumulator_bits, "acc_bits_exact_for_max_k": cfg.acc_bits is None,
        "lsb_exponent": cfg.lsb_exponent,
        "limits": {"max_m": cfg.max_m, "max_n": cfg.max_n, "max_k": cfg.max_k, "max_chunks": cfg.max_chunks,
                   "k_multiple_of": cfg.group_len, "split_k_max": cfg.exact_k if cfg.psum_depth else None},
        "buffers": {
            "a": {"banks": cfg.rows, "beat_rows": cfg.a_depth, "beat_bits_per_bank": cfg.lanes * cfg.fmt_a.elem_bits,
                  "group_rows": loader_a.gdepth, "group_bits_per_bank": cfg.fmt_a.group_bits,
                  "slots": cfg.slots,
                  "bits": cfg.slots * (cfg.a_depth * a_row_bits + loader_a.gdepth * cfg.rows * cfg.fmt_a.group_bits)},
            "w": {"banks": cfg.cols, "beat_rows": cfg.w_depth, "beat_bits_per_bank": cfg.lanes * cfg.fmt_w.elem_bits,
                  "group_rows": loader_w.gdepth, "group_bits_per_bank": cfg.fmt_w.group_bits,
                  "slots": cfg.slots,
                  "bits": cfg.slots * (cfg.w_depth * w_row_bits + loader_w.gdepth * cfg.cols * cfg.fmt_w.group_bits)},
        },
        "double_buffer": cfg.double_buffer, "slots": cfg.slots,
        "partial_sums": {"rows": cfg.psum_depth, "accumulators_per_row": cfg.cols,
                         "bits": cfg.psum_depth * cfg.cols * cfg.accumulator_bits,
                         "latency_cycles": Engine.psum_latency_of(cfg)},
        "command": {"layout": layout_fields(command_layout(cfg)), "ops": {op.name: int(op) for op in Op},
                    "flags": layout_fields(flags_layout())},
        "latency_cycles": {
            "gemm_issue": Engine.ISSUE_LATENCY, "pe": timing_pe, "array_drain": timing.drain_cycles,
            "converter": OutputConverter.LATENCY,
            "quant_convert_first_in_to_first_out": ConvertPass.latency_for(loader_a.quant_config),
        },
        "cycles": "sim.engine.EngineCycles: amax = words + 1; load = words + group_len/quant_lanes + 2; "
                  "gemm = ISSUE_LATENCY - 1 + ArrayTiming.tiles_cycles_from_beats + partial-sum latency + "
                  "converter latency (none when psum_store)",
        "ports": _ports(engine),
    }
    for loader in (loader_a, loader_w):   # made for their sizes only
        loader._MustUse__silence = True
    return manifest


def build_engine(config: EngineConfig, out_dir, name: str = "mls_engine") -> tuple[pathlib.Path, pathlib.Path]:
    engine = Engine(config)
    manifest = engine_manifest(engine, name)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    v_path.write_text(verilog.convert(engine, name=name, emit_src=False))
    j_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return v_path, j_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="named configuration for format, array and lanes (see --list; default e2m1g3)")
    parser.add_argument("--format", help="A's element format (default: the preset's)")
    parser.add_argument("--format-w", metavar="FORMAT", help="W's element format (default: A's)")
    parser.add_argument("--rows", type=int, help="array rows R (default: the preset's)")
    parser.add_argument("--cols", type=int, help="array columns C (default: the preset's)")
    parser.add_argument("--lanes", type=int, metavar="L", help="element pairs per beat (default: the preset's)")
    parser.add_argument("--group-len", type=int, default=16, help="elements per group along K (default 16)")
    parser.add_argument("--quant-lanes", type=int, default=1, help="FP32 elements per cycle into each quantization unit (default 1)")
    parser.add_argument("--a-depth", type=int, default=1024, help="beat rows per A buffer bank (default 1024)")
    parser.add_argument("--w-depth", type=int, default=1024, help="beat rows per W buffer bank (default 1024)")
    parser.add_argument("--acc-bits", type=int, help="accumulator width (default: exact for the largest K the buffers hold)")
    parser.add_argument("--psum-depth", type=int, default=0,
                        help="rows of the partial-sum buffer for K longer than a buffer line (default 0: none)")
    parser.add_argument("--split-k-max", type=int, default=None,
                        help="longest K of a split GEMM the default accumulator is exact for (needs --psum-depth)")
    parser.add_argument("--double-buffer", action="store_true",
                        help="two slots per operand buffer: loads run while a GEMM reads the other slot")
    parser.add_argument("--sr-bits", type=int, default=8, help="random bits per element for stochastic rounding (default 8)")
    parser.add_argument("--name", default="mls_engine", help="Verilog top module and file name (default mls_engine)")


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    from ..presets import DEFAULT_PRESET, get_preset

    preset = get_preset(args.preset or DEFAULT_PRESET)
    if preset.pe != "mls":
        raise ValueError(f"the engine needs an MLS preset, {preset.name!r} is pe={preset.pe!r}")
    fmt = args.format or preset.fmt
    return EngineConfig(fmt, args.format_w or fmt, rows=preset.rows if args.rows is None else args.rows,
                        cols=preset.cols if args.cols is None else args.cols,
                        lanes=preset.lanes if args.lanes is None else args.lanes, group_len=args.group_len,
                        quant_lanes=args.quant_lanes, a_depth=args.a_depth, w_depth=args.w_depth,
                        acc_bits=args.acc_bits, sr_bits=args.sr_bits, psum_depth=args.psum_depth,
                        split_k_max=args.split_k_max, double_buffer=args.double_buffer)
