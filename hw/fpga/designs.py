"""Designs the board flow and its report can build, by name.

``demo`` is this package's small test design. ``mls`` is the MLS systolic array of
``hw.array``; ``fp32`` (``fp8-e4m3``, ``fp8-e5m2``, ``int8``) the same array of baseline PEs
(``SystolicArray(pe="fp32")``; ``--format`` is ignored). ``engine`` is the whole accelerator of
``hw.engine`` (``Engine(EngineConfig(...))``: FP32 in, quantized on chip, FP32 C out), driven by
``hw.fpga.engine_host``.
"""

from __future__ import annotations

import argparse

from .array_adapter import BASELINE_DESIGNS
from .demo import DotDemo

__all__ = ["DESIGNS", "make_design", "add_design_arguments", "design_from_args"]

DESIGNS = ("demo", "mls") + BASELINE_DESIGNS + ("engine",)


def make_design(design: str, *, fmt: str = "e2m1g3", rows: int = 2, cols: int = 2, k_max: int | None = None,
                engine: dict | None = None):
    """Return ``(factory, description)``: ``factory()`` builds the component to wrap.

    ``engine``: the other ``EngineConfig`` options of design "engine" (``fmt_w``, ``lanes``,
    ``group_len``, ``quant_lanes``, ``a_depth``, ``w_depth``, ``acc_bits``, ``psum_depth``,
    ``split_k_max``; None: the board defaults of ``hw.fpga.engine_adapter.ENGINE_DEFAULTS``)."""
    if design == "demo":
        return DotDemo, {"design": "demo", "component": "hw.fpga.demo.DotDemo"}
    if design == "engine":
        from .engine_adapter import engine_factory
        return engine_factory(fmt_a=fmt, rows=rows, cols=cols, **(engine or {}))
    if design == "mls" or design in BASELINE_DESIGNS:
        from .array_adapter import array_factory
        return array_factory(design, fmt=fmt, rows=rows, cols=cols, k_max=k_max)
    raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")


def add_design_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--design", choices=DESIGNS, default="mls", help="what to build (default mls)")
    parser.add_argument("--format", default="e2m1g3", help="MLS element format (default e2m1g3; ignored by the baseline-PE designs)")
    parser.add_argument("--rows", type=int, default=2, help="array rows (default 2)")
    parser.add_argument("--cols", type=int, default=2, help="array columns (default 2)")
    parser.add_argument("--k-max", type=int, default=None, help="largest reduction length (default: the array's)")
    group = parser.add_argument_group("design engine (hw.engine.Engine; --format is A's format)")
    group.add_argument("--format-w", metavar="FORMAT", help="W's element format (default: --format)")
    group.add_argument("--lanes", type=int, metavar="L", help="element pairs per beat (default 1: scalar PEs)")
    group.add_argument("--group-len", type=int, help="elements per group along K (default 9)")
    group.add_argument("--quant-lanes", type=int, help="FP32 elements per cycle into each quantization unit (default 1)")
    group.add_argument("--a-depth", type=int, help="beat rows per A buffer bank (default 256)")
    group.add_argument("--w-depth", type=int, help="beat rows per W buffer bank (default 256)")
    group.add_argument("--acc-bits", type=int, help="accumulator width (default: exact for the largest K the buffers hold)")
    group.add_argument("--psum-depth", type=int, help="rows of the partial-sum buffer for split K (default 0: none)")
    group.add_argument("--split-k-max", type=int, help="longest split K the default accumulator is exact for "
                                                      "(default: one buffer line; needs --psum-depth)")


_ENGINE_ONLY = ("format_w", "lanes", "group_len", "quant_lanes", "a_depth", "w_depth", "acc_bits", "psum_depth",
                "split_k_max")


def design_from_args(args):
    given = {name: getattr(args, name, None) for name in _ENGINE_ONLY}
    if args.design != "engine":
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise ValueError(f"--{extra[0].replace('_', '-')} is an option of --design engine, not {args.design!r}")
        return make_design(args.design, fmt=args.format, rows=args.rows, cols=args.cols, k_max=args.k_max)
    if args.k_max is not None:
        raise ValueError("--k-max is not an engine option: the engine's K limit follows from --a-depth/--w-depth")
    given["fmt_w"] = given.pop("format_w")
    return make_design("engine", fmt=args.format, rows=args.rows, cols=args.cols, engine=given)
