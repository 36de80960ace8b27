"""Designs the board flow and its report can build, by name.

``demo`` is this package's small test design. ``mls`` is the MLS systolic array of
``hw.array``; ``fp32`` (``fp8-e4m3``, ``fp8-e5m2``, ``int8``) the same array of baseline PEs
(``SystolicArray(pe="fp32")``; ``--format`` is ignored).
"""

from __future__ import annotations

import argparse

from .array_adapter import BASELINE_DESIGNS
from .demo import DotDemo

__all__ = ["DESIGNS", "make_design", "add_design_arguments", "design_from_args"]

DESIGNS = ("demo", "mls") + BASELINE_DESIGNS


def make_design(design: str, *, fmt: str = "e2m1g3", rows: int = 2, cols: int = 2, k_max: int | None = None):
    """Return ``(factory, description)``: ``factory()`` builds the component to wrap."""
    if design == "demo":
        return DotDemo, {"design": "demo", "component": "hw.fpga.demo.DotDemo"}
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


def design_from_args(args):
    return make_design(args.design, fmt=args.format, rows=args.rows, cols=args.cols, k_max=args.k_max)
