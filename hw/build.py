"""Emit Verilog plus a JSON manifest of an MLS hardware block.

``python -m hw.build`` (default: the e2m1g3 8x8 output-stationary array of 9-lane dot-product
PEs, ``hw.presets.DEFAULT_ARRAY_PRESET``, the design-space sweep's ResNet-20 recommendation, with an
exact accumulator for K = 2**20) writes ``<out>/<name>.v`` and ``<out>/<name>.json``. ``--target``
picks the block (``array``, ``pe``, ``quant_unit``); ``--list`` prints the presets; ``--board``
and ``--target pe`` default to the scalar e2m1g3 preset (``hw.presets.DEFAULT_PRESET``);
``--pe fp32`` (or a preset like ``fp32-8x8``) builds the same array of baseline PEs;
``python -m hw.build --target T --help`` shows the options of T.

Adding a target: write ``add_arguments(parser)`` and ``build(args, out_dir) -> (verilog_path,
manifest_path)`` and put a ``Target`` in ``TARGETS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
from dataclasses import dataclass
from typing import Callable

from model.baseline_arith import int8_acc_bits_exact
from model.formats import DEFAULT_MAX_K

#: Largest --lanes (``hw.pe.MLSDotPE.MAX_LANES``, restated here so --help needs no Amaranth import).
MAX_LANES = 1024

__all__ = ["TARGETS", "Target", "ports_of", "array_manifest", "pe_manifest", "build_array", "build_pe", "main"]


@dataclass(frozen=True)
class Target:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace, pathlib.Path], tuple]


def ports_of(component) -> list[dict]:
    """Flattened Verilog ports (``__`` joins a stream member's path) with direction and width."""
    from amaranth import Shape

    ports = [{"name": "__".join(str(p) for p in path), "dir": "in" if member.flow.value == "In" else "out",
              "width": Shape.cast(member.shape).width}
             for path, member, _value in component.signature.flatten(component)]
    return ports + [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]


def _format_info(fmt) -> dict:
    return {"name": str(fmt), "exp_bits": fmt.exp_bits, "man_bits": fmt.man_bits, "group_bits": fmt.group_bits,
            "bias": fmt.bias, "elem_bits": fmt.elem_bits, "sig_bits": fmt.sig_bits, "max_shift": fmt.max_shift,
            "lsb_exponent": fmt.lsb_exponent, "elem_max": fmt.elem_max}


def _write(component, manifest: dict, out_dir: pathlib.Path, name: str):
    from amaranth.back import verilog

    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    v_path.write_text(verilog.convert(component, name=name, emit_src=False))
    j_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return v_path, j_path


# -- common options -------------------------------------------------------------------------
def _preset(args, target: str = "pe"):
    """--preset, else the target's default: the array target's is ``DEFAULT_ARRAY_PRESET`` (the
    DSE's recommended dot-product array), except with --board (whose bridge streams scalar
    arrays only) or a baseline --pe (``--pe fp32`` stays the scalar baseline array it always was,
    its lanes are not the MLS pick's); those and the other targets take ``DEFAULT_PRESET`` (the
    scalar e2m1g3)."""
    from .presets import DEFAULT_ARRAY_PRESET, DEFAULT_PRESET, get_preset

    if args.preset:
        return get_preset(args.preset)
    board = getattr(args, "board", None) is not None
    mls = getattr(args, "pe", None) in (None, "mls")
    return get_preset(DEFAULT_ARRAY_PRESET if target == "array" and mls and not board else DEFAULT_PRESET)


def _fmt_args(args, target: str = "pe"):
    """(preset, fmt, rows, cols) from --preset, overridden by --format/--rows/--cols (MLS PEs)."""
    from model.formats import MLSFormat

    preset = _preset(args, target)
    if args.format is None and preset.fmt is None:
        raise ValueError(f"preset {preset.name!r} has no MLS format (pe={preset.pe!r}); give --format")
    fmt = MLSFormat.parse(args.format or preset.fmt)
    return (preset, fmt) + _size_args(args, preset)


def _lanes(args, preset) -> int:
    """--lanes, else the preset's (1: the scalar PE)."""
    lanes = preset.lanes if getattr(args, "lanes", None) is None else args.lanes
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"--lanes must be in [1, {MAX_LANES}], got {lanes}")
    return lanes


def _fmt_w(args, fmt):
    """W's format: --format-w, else A's (``fmt``)."""
    from model.formats import MLSFormat

    return fmt if getattr(args, "format_w", None) is None else MLSFormat.parse(args.format_w)


#: What --name may be: a Verilog simple identifier, which is also a plain file name (no path).
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"


def _check_name(name: str) -> str:
    import re

    if re.fullmatch(NAME_PATTERN, name) is None:
        raise ValueError(f"--name must match {NAME_PATTERN} (a Verilog module name, also the file name in --out), "
                         f"got {name!r}")
    return name


def _check_out(out: str) -> pathlib.Path:
    path = pathlib.Path(out)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(f"--out must be a directory, but {str(p)!r} is a file")
    return path


def _size_args(args, preset) -> tuple[int, int]:
    """(rows, cols) of ``preset``, overridden by --rows/--cols where the target has them."""
    rows = preset.rows if getattr(args, "rows", None) is None else args.rows
    cols = preset.cols if getattr(args, "cols", None) is None else args.cols
    return rows, cols


def _max_k(args) -> int:
    if args.max_k < 1:
        raise ValueError(f"--max-k must be at least 1, got {args.max_k}")
    return args.max_k


def _acc_bits(args, fmt) -> int:
    max_k = _max_k(args)
    return fmt.acc_bits_exact(max_k) if args.acc_bits is None else args.acc_bits


def _mls_arguments(parser, with_size: bool, default_help: str = "default e2m1g3"):
    parser.add_argument("--preset", help=f"named configuration (see --list; {default_help})")
    parser.add_argument("--format", help="element format e<E>m<M>g<G> (default: the preset's)")
    if with_size:
        parser.add_argument("--rows", type=int, help="array rows R (default: the preset's, 8)")
        parser.add_argument("--cols", type=int, help="array columns C (default: the preset's, 8)")
    parser.add_argument("--max-k", type=int, default=DEFAULT_MAX_K,
                        help="largest reduction length the accumulator must hold exactly (default 2**20)")
    parser.add_argument("--acc-bits", type=int,
                        help="accumulator width (default: MLSFormat.acc_bits_exact(max_k); narrower saturates)")
    parser.add_argument("--lanes", type=int, metavar="L",
                        help="element pairs per beat (default: the preset's, 1 = the scalar MLSPE); L > 1 builds "
                             "L-lane dot-product PEs (hw.pe.MLSDotPE)")
    parser.add_argument("--format-w", metavar="FORMAT",
                        help="W's element format when it differs from --format (A's): a dot-product PE")


# -- array -----------------------------------------------------------------------------------
def _pe_info(arr) -> dict:
    """What the PEs of ``arr`` compute (``pe``: "mls" or a baseline kind of ``hw.array``)."""
    if not arr.is_baseline and arr.is_dot:
        f = arr.pe_factory
        return {"kind": "mls", "component": "hw.pe.MLSDotPE", "lanes": arr.lanes,
                "operands": f"a beat: {arr.lanes} {arr.fmt_a} (A) / {arr.fmt_w} (W) elements of one chunk + the "
                            f"chunk's one group exponent g per operand",
                "tree_bits": f.tree_bits, "tree_latency": f.tree_latency,
                "tree_levels_per_stage": f.tree_levels_per_stage,
                "beat_bits": arr.fmt_a.acc_bits_exact(arr.lanes, arr.fmt_w),
                "accumulator": f"signed({arr.acc_bits}), exact beat sums, saturating after each beat's add with a "
                               f"sticky overflow flag",
                "beats": "model.beats.pack_beats: chunks in ascending k, lanes 0..L-1 by ascending k, the last "
                         "beat of a chunk zero-padded; a beat never mixes two chunks",
                "golden_model": "model.arith (beat_accumulate / chunked_matmul)"}
    if not arr.is_baseline:
        return {"kind": "mls", "component": "hw.pe.MLSPE", "operands": f"{arr.fmt} element + group exponent g",
                "accumulator": f"signed({arr.acc_bits}), exact sum, saturating with a sticky overflow flag",
                "golden_model": "model.arith (finite_matmul / accumulate)"}
    kind, fa, fw = arr.pe_formats
    ops = {"fp32": ("fp32", "fp32"), "int8": ("int8", "int8")}.get(kind, (fa, fw))
    acc = ("signed(32), INT32 wrapping modulo 2**32, no overflow flag" if kind == "int8" else
           "float32 word (man 23, exp 8, sign 1): acc' = fp32(acc + product), RNE, DAZ/FTZ, canonical NaN")
    golden = {"fp32": "model.baseline_arith.fp32_mac", "int8": "model.baseline_arith.int8_mac"}.get(
        kind, "model.baseline_arith.fp8_mac")
    if arr.is_dot:   # the same-lane FP8 / INT8 dot-product baselines (docs/numerics.md §3.1)
        f = arr.pe_factory
        acc = ("signed(32), acc' = wrap32(acc + sum of the beat's lane products), no overflow flag" if kind == "int8"
               else "float32 word: acc' = fp32_rne(acc + exact sum of the beat's lane products), one rounding per "
                    "beat, DAZ/FTZ, canonical NaN")
        return {"kind": arr.pe, "component": "hw.baseline." + ("INT8DotPE" if kind == "int8" else "FP8DotPE"),
                "lanes": arr.lanes, "a_format": ops[0], "w_format": ops[1], "tree_latency": f.tree_latency,
                "accumulator": acc, "order": "beats in order; the first beat of a tile adds to -0 / 0 (clear)",
                "golden_model": "model.baseline_arith." + ("int8_dot_mac" if kind == "int8" else "fp8_dot_mac")}
    return {"kind": arr.pe, "component": f"hw.baseline.BaselinePE({kind!r})", "a_format": ops[0], "w_format": ops[1],
            "accumulator": acc, "order": "k ascending; the first beat of a tile loads the product (clear)",
            "golden_model": golden}


def array_manifest(arr, name: str, grouping: str | None) -> dict:
    from .layout_pack import layout_fields

    t = arr.timing
    if arr.is_baseline:
        fmt_info, exact_bits = None, None
        if arr.pe == "int8":
            exact_bits = int8_acc_bits_exact(arr.max_k)
    else:
        fmt_info, exact_bits = _format_info(arr.fmt_a), arr.fmt_a.acc_bits_exact(arr.max_k, arr.fmt_w)
    fmt_w_info = None if arr.is_baseline else _format_info(arr.fmt_w)
    tree_bits = arr.pe_factory.tree_bits if arr.is_dot and not arr.is_baseline else None
    return {
        "target": "array", "toplevel": name, "pe": _pe_info(arr), "format": fmt_info, "format_w": fmt_w_info,
        "grouping": grouping, "dataflow": "output-stationary", "rows": arr.rows, "cols": arr.cols,
        "lanes": arr.lanes, "tree_bits": tree_bits,
        "max_k": arr.max_k, "acc_bits": arr.acc_bits, "acc_bits_exact_for_max_k": exact_bits,
        "acc_exact": arr.exact, "pe_latency": arr.pe_latency,
        "latency_last_input_to_first_output": arr.latency, "macs_per_cycle": t.macs_per_cycle,
        "cycles": {
            "source": "hw/array/timing.py (ArrayTiming)",
            "parameters": {"rows": t.rows, "cols": t.cols, "pe_latency": t.pe_latency, "lanes": t.lanes,
                           "drain_cycles": t.drain_cycles},
            "tile_cycles": "beats + drain_cycles, drain_cycles = rows + cols + pe_latency - 1; beats = sum over the "
                           "tile's chunks of ceil(chunk / lanes) (model.beats.count_beats; beats = K for lanes = 1)",
            "back_to_back": "last input beats max(beats_next, drain_cycles) apart; total = beats_0 - 1 + "
                            "sum max(beats_n, drain) + drain + 1",
            "counted": "first input transfer .. last output transfer, inclusive; inputs always valid, output always ready",
        },
        "payloads": {"a": layout_fields(arr.a_layout), "w": layout_fields(arr.w_layout), "c": layout_fields(arr.c_layout)},
        "ports": ports_of(arr),
    }


def build_array(fmt, rows: int, cols: int, out_dir, *, max_k: int = DEFAULT_MAX_K, acc_bits: int | None = None,
                name: str = "mls_array", grouping: str | None = "channel", pe: str = "mls", lanes: int = 1,
                fmt_w=None):
    """Write ``<name>.v`` and ``<name>.json``; return both paths. ``pe`` != "mls": the array of
    baseline PEs (``fmt`` and ``acc_bits`` must be None, no grouping). ``lanes`` > 1 or a
    different ``fmt_w``: MLS dot-product PEs (``SystolicArray(..., lanes=, fmt_w=)``)."""
    from .array.array import SystolicArray

    arr = SystolicArray(fmt, rows, cols, acc_bits=acc_bits, max_k=max_k, pe=pe, lanes=lanes, fmt_w=fmt_w)
    manifest = array_manifest(arr, name, grouping if pe == "mls" else None)
    return _write(arr, manifest, pathlib.Path(out_dir), name)


def _array_args(parser):
    from .array.array import PE_KINDS
    from .presets import DEFAULT_ARRAY_PRESET, DEFAULT_PRESET

    _mls_arguments(parser, with_size=True,
                   default_help=f"default {DEFAULT_ARRAY_PRESET}, the design-space sweep's ResNet-20 pick; "
                                f"{DEFAULT_PRESET} with --board")
    parser.add_argument("--pe", metavar="KIND",
                        help="PE of the array: " + ", ".join(PE_KINDS) + " (default: the preset's, mls). A baseline "
                             "PE has fixed operand formats (no --format) and a 32-bit accumulator (no --acc-bits)")
    parser.add_argument("--name", help="Verilog top module and file name (default mls_array, or <pe>_array "
                                       "for a baseline PE, e.g. fp32_array)")


def _array_build(args, out_dir):
    from .array.array import PE_KINDS

    preset = _preset(args, "array")
    pe = preset.pe if args.pe is None else args.pe
    if pe not in PE_KINDS:
        raise ValueError(f"--pe must be one of {', '.join(PE_KINDS)}, got {pe!r}")
    if pe == "mls":
        preset, fmt, rows, cols = _fmt_args(args, "array")
        fmt_w = _fmt_w(args, fmt)
        acc_bits = fmt.acc_bits_exact(_max_k(args), fmt_w) if args.acc_bits is None else args.acc_bits
        return build_array(fmt, rows, cols, out_dir, max_k=args.max_k, acc_bits=acc_bits,
                           name=args.name or "mls_array", grouping=preset.grouping, lanes=_lanes(args, preset),
                           fmt_w=fmt_w)
    for flag, value in (("--format", args.format), ("--format-w", args.format_w)):
        if value is not None:
            raise ValueError(f"{flag} is for MLS PEs; pe={pe!r} has fixed operand formats")
    lanes = _lanes(args, preset)
    from .baseline.dot_pe_factory import DOT_KINDS

    if lanes != 1 and PE_KINDS[pe].kind not in DOT_KINDS:
        raise ValueError(f"--lanes must be 1 for pe={pe!r} (no {lanes}-lane dot-product PE of that kind), got {lanes}")
    if args.acc_bits is not None:
        raise ValueError(f"--acc-bits is for MLS PEs; pe={pe!r} has a fixed 32-bit accumulator")
    rows, cols = _size_args(args, preset)
    return build_array(None, rows, cols, out_dir, max_k=_max_k(args), name=args.name or f"{pe.replace('-', '_')}_array",
                       grouping=None, pe=pe, lanes=lanes)


# -- pe --------------------------------------------------------------------------------------
def pe_manifest(pe, name: str, max_k: int) -> dict:
    if hasattr(pe, "lanes"):   # hw.pe.MLSDotPE
        return {
            "target": "pe", "toplevel": name, "component": "hw.pe.MLSDotPE", "format": _format_info(pe.fmt_a),
            "format_w": _format_info(pe.fmt_w), "lanes": pe.lanes, "max_k": max_k, "acc_bits": pe.acc_bits,
            "acc_bits_exact_for_max_k": pe.fmt_a.acc_bits_exact(max_k, pe.fmt_w),
            "product_bits": pe.product_bits, "tree_bits": pe.tree_bits, "tree_latency": pe.tree_latency,
            "beat_bits": pe.beat_bits, "latency": pe.latency,
            "ports": ports_of(pe),
        }
    return {
        "target": "pe", "toplevel": name, "format": _format_info(pe.fmt), "max_k": max_k,
        "acc_bits": pe.acc_bits, "acc_bits_exact_for_max_k": pe.fmt.acc_bits_exact(max_k),
        "product_bits": pe.product_bits, "latency": pe.latency,
        "ports": ports_of(pe),
    }


def build_pe(fmt, out_dir, *, max_k: int = DEFAULT_MAX_K, acc_bits: int | None = None, name: str = "mls_pe",
             lanes: int = 1, fmt_w=None):
    """One MLS PE: the scalar ``MLSPE``, or ``MLSDotPE(fmt, fmt_w, lanes, acc_bits)`` for
    ``lanes`` > 1 or a W format that differs."""
    from model.formats import MLSFormat

    from .pe import MLSPE, MLSDotPE

    fmt = MLSFormat.parse(fmt)
    fmt_w = fmt if fmt_w is None else MLSFormat.parse(fmt_w)
    if lanes == 1 and fmt_w == fmt:
        pe = MLSPE(fmt, fmt.acc_bits_exact(max_k) if acc_bits is None else acc_bits)
    else:
        pe = MLSDotPE(fmt, fmt_w, lanes, fmt.acc_bits_exact(max_k, fmt_w) if acc_bits is None else acc_bits)
    return _write(pe, pe_manifest(pe, name, max_k), pathlib.Path(out_dir), name)


def _pe_args(parser):
    _mls_arguments(parser, with_size=False)
    parser.add_argument("--name", default="mls_pe", help="Verilog top module and file name (default mls_pe)")


def _pe_build(args, out_dir):
    preset, fmt, _, _ = _fmt_args(args)
    fmt_w = _fmt_w(args, fmt)
    acc_bits = fmt.acc_bits_exact(_max_k(args), fmt_w) if args.acc_bits is None else args.acc_bits
    return build_pe(fmt, out_dir, max_k=args.max_k, acc_bits=acc_bits, name=args.name,
                    lanes=_lanes(args, preset), fmt_w=fmt_w)


# -- quant_unit (hw/quant_unit/build.py) ------------------------------------------------------
def _quant_args(parser):
    importlib.import_module("hw.quant_unit.build").add_arguments(parser)
    parser.add_argument("--name", default="quant_unit", help="Verilog top module and file name (default quant_unit)")


def _quant_build(args, out_dir):
    qb = importlib.import_module("hw.quant_unit.build")
    return qb.build_quant_unit(qb.config_from_args(args), out_dir, name=args.name)


TARGETS: dict[str, Target] = {
    "array": Target("R x C output-stationary systolic array of MLS PEs, or of FP32/FP8/INT8 baseline PEs with --pe (default)", _array_args, _array_build),
    "pe": Target("one MLS processing element", _pe_args, _pe_build),
    "quant_unit": Target("dynamic quantization unit (hw/quant_unit)", _quant_args, _quant_build),
    "engine": Target("the whole accelerator: quantization units, operand buffers, array, output converter (hw/engine)",
                     lambda p: importlib.import_module("hw.engine.build").add_arguments(p),
                     lambda a, o: importlib.import_module("hw.engine.build").build_engine(
                         importlib.import_module("hw.engine.build").config_from_args(a), o, name=a.name)),
    "convert": Target("output converter, accumulators to FP32 (hw/convert)",
                      lambda p: importlib.import_module("hw.convert.build").add_arguments(p),
                      lambda a, o: importlib.import_module("hw.convert.build").build_convert(a, o)),
}


def _list() -> str:
    from .presets import DEFAULT_ARRAY_PRESET, DEFAULT_PRESET, PRESETS

    lines = ["presets (--preset NAME):"]
    for p in PRESETS.values():
        mark = {DEFAULT_ARRAY_PRESET: " (default: the DSE's ResNet-20 recommendation, reports/dse.md)",
                DEFAULT_PRESET: " (default of --board, --target pe and --target engine)"}.get(p.name, "")
        grouping = f" grouping={p.grouping}" if p.grouping else ""
        lanes = f" lanes={p.lanes}" if p.lanes != 1 else ""
        lines.append(f"  {p.name:<14} {p.what} {p.rows}x{p.cols}{lanes}{grouping}{mark}: {p.description}")
    lines.append("targets (--target NAME): " + ", ".join(f"{k} ({v.help})" for k, v in TARGETS.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--target", default="array")
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(
        prog="python -m hw.build", description=__doc__.split("\n\n")[0],
        epilog="targets: " + "; ".join(f"{k}: {v.help}" for k, v in TARGETS.items())
               + ". 'python -m hw.build --target T --help' shows the options of T.")
    parser.add_argument("--target", default="array", choices=sorted(TARGETS), help="what to emit (default array)")
    parser.add_argument("--list", action="store_true", help="list the named presets and targets, then exit")
    parser.add_argument("--out", default="build", help="output directory (default build/)")
    target = TARGETS.get(known.target)
    if target is not None:
        target.add_arguments(parser)
    # FPGA board build (--board ...): hw/fpga, see docs/fpga.md.
    from .fpga.build import add_board_arguments
    add_board_arguments(parser)
    args = parser.parse_args(argv)
    if args.board is not None and known.target != "array":
        parser.error(f"--board builds --target array only, not {known.target!r}")
    if args.list:
        print(_list())
        return 0
    try:
        if getattr(args, "name", None) is not None:
            _check_name(args.name)
        out_dir = _check_out(args.out)
        v_path, j_path = target.build(args, out_dir)
    except (TypeError, ValueError) as error:
        print(f"python -m hw.build: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:   # --out not writable, a path component not a directory, ...
        print(f"python -m hw.build: error: cannot write to --out {args.out!r}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {v_path} and {j_path}")
    if args.board is not None:   # FPGA board build: hw/fpga, see docs/fpga.md
        manifest = json.loads(j_path.read_text())
        if manifest.get("lanes", 1) != 1 or manifest.get("format_w") not in (None, manifest.get("format")):
            print("python -m hw.build: error: --board builds scalar-PE arrays only (one format, lanes 1: the board "
                  "bridge streams one element per operand)", file=sys.stderr)
            return 2
        from .fpga.build import board_build_for_target
        return board_build_for_target(args, known.target, j_path, pathlib.Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
