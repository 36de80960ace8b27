"""Emit the output converter (``hw.convert.OutputConverter``) as Verilog plus a JSON manifest
(``python -m hw.build --target convert``)."""

from __future__ import annotations

import argparse
import json
import pathlib

from amaranth import Shape
from amaranth.back import verilog

from model.formats import MLSFormat

from .converter import OutputConverter

__all__ = ["add_arguments", "build_convert"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="e2m1g3", help="A's element format (default e2m1g3)")
    parser.add_argument("--format-w", metavar="FORMAT", help="W's element format (default: A's)")
    parser.add_argument("--acc-bits", type=int, default=40, help="accumulator width (default 40)")
    parser.add_argument("--lanes", type=int, default=8, help="accumulators per transfer (default 8: one array row)")
    parser.add_argument("--name", default="mls_convert", help="Verilog top module and file name (default mls_convert)")


def build_convert(args: argparse.Namespace, out_dir) -> tuple[pathlib.Path, pathlib.Path]:
    fmt_a = MLSFormat.parse(args.format)
    fmt_w = MLSFormat.parse(args.format_w) if args.format_w else fmt_a
    conv = OutputConverter(args.acc_bits, fmt_a.lsb_exponent + fmt_w.lsb_exponent, args.lanes)
    manifest = {
        "target": "convert", "toplevel": args.name, "format_a": str(fmt_a), "format_w": str(fmt_w),
        "acc_bits": conv.acc_bits, "lsb_exponent": conv.lsb_exponent, "lanes": conv.lanes,
        "latency_cycles": conv.latency,
        "function": "fp32_rne(fp32_rne(C_int * 2**-L) * fp32_rne(S_A * S_B)), FTZ, +-inf past the range "
                    "(model.arith.output_convert)",
        "ports": [{"name": "__".join(str(p) for p in path), "dir": "in" if member.flow.value == "In" else "out",
                   "width": Shape.cast(member.shape).width} for path, member, _ in conv.signature.flatten(conv)]
                 + [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}],
    }
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{args.name}.v", out_dir / f"{args.name}.json"
    v_path.write_text(verilog.convert(conv, name=args.name, emit_src=False))
    j_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return v_path, j_path
