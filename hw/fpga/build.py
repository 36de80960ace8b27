"""Build a design for a board: wrapper + Amaranth platform + YoWASP toolchain + manifest.

``python -m hw.fpga.build --board ulx3s --design demo --out /tmp/b`` (``python -m hw.build
--board ulx3s`` calls :func:`build_for_board` with the array it elaborates).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from amaranth.lib import wiring

from .boards import BOARDS, MissingPackage, get_board
from .protocol import FLAG_BITS, Op
from .toolchain import FlowError, FlowResult, run_plan
from .top import DEFAULT_BAUD, BoardTop, ecp5_pll_config

__all__ = ["build_for_board", "add_board_arguments", "board_main"]

NEXTPNR_OPTS = "--report report.json --timing-allow-fail --seed 1"
STEPS = ("files", "synth", "pack", "pnr", "bitstream")


def build_for_board(dut: wiring.Component, board: str, out_dir, *, name: str = "top",
                    steps: str = "bitstream", baud: int = DEFAULT_BAUD, in_depth: int = 64,
                    out_depth: int = 64, design: dict | None = None, dsp: bool = True,
                    timeout: float | None = None, clock_mhz: float | None = None) -> tuple[FlowResult, pathlib.Path]:
    """Wrap ``dut`` for ``board``, run the flow up to ``steps`` and write ``board.json``.

    Returns the flow result and the manifest path. ``design`` (format, array size, ...) is
    copied into the manifest so that the report can label the row. ``dsp=False`` keeps Yosys from
    mapping multipliers to DSP blocks (``synth_ecp5 -nodsp``): it maps every multiplier of 2x2
    bits or more to a MULT18X18D by default, even the MLS PE's tiny significand product.
    ``clock_mhz`` (ECP5 boards) runs the design from a PLL at that frequency instead of the board
    clock (``hw.fpga.top.ecp5_pll_config``); the UART divisor, the timing constraint and the
    manifest's ``clock_hz`` follow it.
    """
    spec = get_board(board)
    platform = spec.make_platform()
    pll = None
    if clock_mhz is not None:
        if spec.family != "ecp5":
            raise ValueError(f"--clock-mhz needs an ECP5 board (a PLL); {spec.name} is {spec.family}")
        pll = ecp5_pll_config(platform.default_clk_frequency, clock_mhz * 1e6)
    top = BoardTop(dut, baud=baud, in_depth=in_depth, out_depth=out_depth, pll=pll)
    clk_hz = top.clock_hz(platform)
    core = top.core(clk_hz)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # verbose: keep the tools' full logs, which the report parses.
    if spec.family == "ice40":
        extra = {"synth_opts": "-dsp"} if dsp else {}   # SB_MAC16 only when asked
    else:
        extra = {} if dsp else {"synth_opts": "-nodsp"}
    plan = platform.build(top, name=name, build_dir=str(out_dir), do_build=False,
                          nextpnr_opts=NEXTPNR_OPTS, verbose=True, **extra)
    manifest = {
        "board": spec.name,
        "board_description": spec.description,
        "platform": f"{spec.module}.{spec.platform}",
        "toplevel": name,
        "clock_hz": clk_hz,
        "baud": top.baud,
        "uart_divisor": top.divisor(clk_hz),
        "pll": None if pll is None else {"board_clock_hz": platform.default_clk_frequency, **pll},
        "design": design or {"component": type(dut).__qualname__},
        "dsp": dsp,
        "bridge": {
            "in_depth": in_depth, "out_depth": out_depth,
            "opcodes": {op.name: chr(op.value) for op in Op},
            "flags": list(FLAG_BITS),
            "ports": [p.to_json() for p in core.ports],
            "protocol": "hw/fpga/protocol.py (docs/fpga.md)",
        },
    }
    result = run_plan(plan, spec, out_dir, name, steps=steps, timeout=timeout)
    manifest["result"] = result.to_json()
    manifest_path = out_dir / "board.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return result, manifest_path


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    """The board options (``--board`` and friends), shared with ``python -m hw.build``."""
    group = parser.add_argument_group("FPGA board build (hw.fpga)")
    group.add_argument("--board", choices=sorted(BOARDS),
                       help="wrap the design with the UART host bridge and build a bitstream for this board "
                            "with YoWASP Yosys + nextpnr (pip extra: fpga)")
    group.add_argument("--steps", choices=STEPS, default="bitstream",
                       help="how far the board flow goes: files (elaborate only), synth, pack (utilization, no Fmax), "
                            "pnr, bitstream (default)")
    group.add_argument("--baud", type=int, default=DEFAULT_BAUD, help=f"UART baud rate (default {DEFAULT_BAUD})")
    group.add_argument("--no-dsp", dest="dsp", action="store_false",
                       help="keep multipliers out of DSP blocks (Yosys maps even 2x2-bit products to them)")
    group.add_argument("--clock-mhz", type=float, default=None,
                       help="run the design from an ECP5 PLL at this frequency instead of the board clock "
                            "(e.g. 15 for the engine, whose Fmax is below the ULX3S's 25 MHz)")
    group.add_argument("--fifo-depth", type=int, default=64,
                       help="words per input/output stream FIFO of the host bridge (default 64)")


def summary(result: FlowResult, manifest_path) -> str:
    parts = [f"{result.board}: {manifest_path}"]
    if result.fits is False:
        parts.append("does NOT fit the device")
    if result.luts is not None:
        fmax = "no Fmax (not placed)" if result.fmax_mhz is None else \
            f"Fmax {result.fmax_mhz:.1f} MHz (clock {result.constraint_mhz:g} MHz)"
        parts.append(f"LUTs {result.luts}/{result.luts_avail}, FFs {result.ffs}, DSPs {result.dsps}, "
                     f"BRAM {result.brams}, {fmax}")
    if result.bitstream:
        parts.append(f"bitstream {result.bitstream}")
    return "; ".join(parts)


def run_board_cli(dut_factory, args, design: dict, out_dir) -> int:
    """Shared CLI tail: build, print one summary line, map flow errors to one-line messages."""
    try:
        dut = dut_factory()
        result, manifest_path = build_for_board(dut, args.board, out_dir, steps=args.steps, baud=args.baud,
                                                in_depth=args.fifo_depth, out_depth=args.fifo_depth, design=design,
                                                dsp=args.dsp, clock_mhz=args.clock_mhz)
    except (MissingPackage, FlowError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(result, manifest_path))
    return 0 if result.fits is not False else 1


def board_build_for_target(args, target: str, manifest_path, out_dir) -> int:
    """``python -m hw.build --board B``: wrap the array just emitted (read back from its manifest,
    so the board build uses exactly the emitted configuration) and build it for board B."""
    if target != "array":
        print(f"python -m hw.build: error: --board builds --target array only, not {target!r}", file=sys.stderr)
        return 2
    from hw.array import SystolicArray

    m = json.loads(pathlib.Path(manifest_path).read_text())
    pe = m.get("pe", {}).get("kind", "mls")
    if pe == "mls":
        fmt = m["format"]["name"] if isinstance(m["format"], dict) else m["format"]
        kwargs = {"acc_bits": m["acc_bits"]}
    else:   # an array of baseline PEs: fixed operand formats and a 32-bit accumulator
        fmt, kwargs = None, {"pe": pe}

    def factory():
        return SystolicArray(fmt, m["rows"], m["cols"], max_k=m["max_k"], **kwargs)
    design = {"design": pe, "pe": pe, "component": "hw.array.array.SystolicArray", "format": fmt or pe, "rows": m["rows"],
              "cols": m["cols"], "acc_bits": m["acc_bits"], "max_k": m["max_k"],
              "latency": m.get("latency_last_input_to_first_output"), "verilog_manifest": str(manifest_path)}
    return run_board_cli(factory, args, design, out_dir)


def board_main(argv=None) -> int:
    from .designs import DESIGNS, add_design_arguments, design_from_args

    parser = argparse.ArgumentParser(prog="python -m hw.fpga.build", description=__doc__.splitlines()[0])
    add_design_arguments(parser)
    add_board_arguments(parser)
    parser.add_argument("--out", default="build/fpga", help="output folder (default build/fpga)")
    args = parser.parse_args(argv)
    if args.board is None:
        parser.error("--board is required")
    try:
        factory, design = design_from_args(args)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    return run_board_cli(factory, args, design, args.out)


if __name__ == "__main__":
    sys.exit(board_main())
