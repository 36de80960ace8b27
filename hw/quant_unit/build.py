"""Emit the quantization unit as Verilog plus a JSON manifest.

``python -m hw.quant_unit.build --format e2m1g3 --lanes 4 --group-len 64 --out build/quant_unit``
(the same options as ``python -m hw.build --target quant_unit`` when that registry is wired).
``build_quant_unit(...)`` is the function a top-level build can call.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from amaranth import Shape
from amaranth.back import verilog

from model.lfsr import LANE_SEED_MULTIPLIER, LFSR_TAPS, LFSR_WIDTH

from .config import QuantUnitConfig
from .top import QuantUnit

__all__ = ["build_quant_unit", "quant_unit_manifest", "add_arguments", "config_from_args", "main"]


def _ports(component) -> list[dict]:
    """Flattened Verilog ports (``__`` joins a stream member's path), with direction and width."""
    ports = []
    for path, member, _value in component.signature.flatten(component):
        ports.append({"name": "__".join(str(p) for p in path), "dir": "in" if member.flow.value == "In" else "out",
                      "width": Shape.cast(member.shape).width})
    return ports + [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]


def quant_unit_manifest(unit: QuantUnit, name: str = "quant_unit") -> dict:
    cfg = unit.config
    return {
        "target": "quant_unit",
        "toplevel": name,
        "format": str(cfg.fmt),
        "elem_bits": cfg.fmt.elem_bits,
        "group_bits": cfg.fmt.group_bits,
        "lanes": cfg.lanes,
        "group_len": cfg.group_len,
        "sr_bits": cfg.sr_bits,
        "scale": "host-supplied inv = model.quantize.tensor_scale(amax, fmt)[1]; no on-chip divider",
        "lfsr": {"width": LFSR_WIDTH, "taps": list(LFSR_TAPS), "lane_seed": f"seed ^ ({LANE_SEED_MULTIPLIER:#x} * (lane + 1))",
                 "draw": "low sr_bits of the state after sr_bits steps, one draw per lane per output word"},
        "latency_cycles": {"convert_first_in_to_first_out": unit.latency, "amax_update": unit.amax_latency},
        "throughput_elements_per_cycle": unit.throughput,
        "buffer_bits": 2 * cfg.words_per_group * 32 * cfg.lanes,
        "ports": _ports(unit),
    }


def build_quant_unit(config: QuantUnitConfig, out_dir: str | pathlib.Path, name: str = "quant_unit") -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir``; return both paths."""
    unit = QuantUnit(config)
    manifest = quant_unit_manifest(unit, name)  # before convert: elaboration consumes nothing we need
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    v_path.write_text(verilog.convert(unit, name=name, emit_src=False))
    j_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return v_path, j_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="e2m1g3", help="element format e<E>m<M>g<G>, G >= 1 (default e2m1g3)")
    parser.add_argument("--lanes", type=int, default=4, help="elements per cycle (default 4)")
    parser.add_argument("--group-len", type=int, default=64,
                        help="elements per group, consecutive in the stream, a multiple of --lanes (default 64)")
    parser.add_argument("--sr-bits", type=int, default=8, help="random bits per element for stochastic rounding (default 8)")


def config_from_args(args: argparse.Namespace) -> QuantUnitConfig:
    return QuantUnitConfig(args.format, args.lanes, args.group_len, args.sr_bits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.quant_unit.build", description="Emit the quantization unit (Verilog + JSON manifest).")
    add_arguments(parser)
    parser.add_argument("--out", default="build/quant_unit", help="output directory (default build/quant_unit)")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    v_path, j_path = build_quant_unit(config, args.out)
    print(f"wrote {v_path} and {j_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
