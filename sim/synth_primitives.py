"""Lone datapath primitives in the synthesis flow of :mod:`hw.synth`: the weights of the area law.

``sim.energy.pe_area`` counts a PE in multiplier cells, adder bits, 2:1 mux bits and register
bits. What one of each costs in this project's flow (yosys ``synth``, ``abc -g cmos2``, the CMOS
transistor estimate) is measured here, one primitive at a time, and written into
``sim.energy.CONSTANTS`` (the ``SYN_*`` entries). ``python -m sim.synth_primitives`` synthesizes
them again (cached under ``build/synth/``) and prints measured against tabled counts (with
``--activity``, also what each costs in :mod:`hw.activity`'s switching proxy on random data, and
the narrow-addend check of the energy law: the lone FP32 adder accumulating FP8 against FP32
products of the captured conv, :func:`narrow_addend_activity`);
``tests/test_sim_energy.py`` fails if they drift apart.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PRIMITIVES", "Primitive", "PrimitiveCircuit", "primitive_activity", "narrow_addend_activity",
           "synthesize_primitives", "main"]


@dataclass(frozen=True)
class Primitive:
    """One primitive: ``kind`` at ``width`` bits, counted as ``units`` of the area law."""

    constant: str  # the sim.energy.CONSTANTS entry it measures
    kind: str  # "add" | "umul" | "smul" | "mux" | "reg" | "rege"
    width: int
    units: int  # multiplier cells (width**2) or bits (width)
    what: str


PRIMITIVES = (
    Primitive("SYN_ADD32", "add", 32, 32, "32-bit adder a + b (33-bit sum), per adder bit"),
    Primitive("SYN_UMUL8", "umul", 8, 64, "unsigned 8 x 8 multiplier, per partial-product cell"),
    Primitive("SYN_SMUL8", "smul", 8, 64, "signed 8 x 8 multiplier (hw.baseline.int_mul), per cell"),
    Primitive("SYN_MUX32", "mux", 32, 32, "32-bit 2:1 multiplexer, per mux bit"),
    Primitive("SYN_REG32", "reg", 32, 32, "32-bit register with synchronous reset, per bit"),
    Primitive("SYN_REGE32", "rege", 32, 32, "32-bit register with reset and load enable, per bit"),
)


class PrimitiveCircuit(wiring.Component):
    """The circuit of one :class:`Primitive` (combinational, or one register stage)."""

    def __init__(self, kind: str, width: int):
        kinds = {p.kind for p in PRIMITIVES}
        if kind not in kinds:
            raise ValueError(f"kind must be one of {', '.join(sorted(kinds))}, got {kind!r}")
        if isinstance(width, bool) or not isinstance(width, int) or not 2 <= width <= 64:
            raise ValueError(f"width must be an int in [2, 64], got {width!r}")
        self.kind, self.width = kind, width
        shape = signed(width) if kind == "smul" else unsigned(width)
        ports = {"a": In(shape)} if kind in ("reg", "rege") else {"a": In(shape), "b": In(shape)}
        if kind in ("umul", "smul"):
            ports["o"] = Out(signed(2 * width) if kind == "smul" else unsigned(2 * width))
        elif kind == "add":
            ports["o"] = Out(unsigned(width + 1))
        else:
            ports["o"] = Out(unsigned(width))
            if kind in ("mux", "rege"):
                ports["s"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        if self.kind in ("umul", "smul"):
            m.d.comb += self.o.eq(self.a * self.b)
        elif self.kind == "add":
            m.d.comb += self.o.eq(self.a + self.b)
        elif self.kind == "mux":
            m.d.comb += self.o.eq(Mux(self.s, self.a, self.b))
        elif self.kind == "reg":
            m.d.sync += self.o.eq(self.a)
        else:
            with m.If(self.s):
                m.d.sync += self.o.eq(self.a)
        return m


def synthesize_primitives(*, progress: bool = False) -> dict[str, int]:
    """Transistors (flip-flops included) of every primitive, by its constant's name."""
    from hw.synth import synthesize

    out = {}
    for p in PRIMITIVES:
        res = synthesize(PrimitiveCircuit(p.kind, p.width), f"prim_{p.kind}{p.width}")
        out[p.constant] = res.transistors
        if progress:
            print(f"{p.constant}: {res.transistors} transistors", file=sys.stderr)
    return out


def primitive_activity(cycles: int = 400, lanes: int = 64, seed: int = 0) -> dict[str, float]:
    """Switched transistor gates per unit and operation of every primitive on uniform random
    operands, with :mod:`hw.activity`'s proxy (2 x fan-out pins per net toggle, zero delay) plus
    its flip-flop clocking (``CLOCK_GATES_PER_FF`` gates x 2 edges per cycle): the activity
    proxy's own prices of an adder bit, a multiplier cell, a mux bit and a register bit, to set
    beside the energy law's ``C_ADD``, ``C_UMUL``/``C_IMUL``, ``C_MUX`` and ``C_REG``."""
    import numpy as np

    from hw.activity import CLOCK_GATES_PER_FF, GateNetlist
    from hw.synth import synthesize

    rng = np.random.default_rng(seed)
    out = {}
    for p in PRIMITIVES:
        top = f"prim_{p.kind}{p.width}"
        net = GateNetlist(synthesize(PrimitiveCircuit(p.kind, p.width), top).netlist, top)
        rand = lambda: rng.integers(0, 1 << p.width, (cycles, lanes)).astype(object)  # noqa: E731
        drive = {"a": rand()} if p.kind in ("reg", "rege") else {"a": rand(), "b": rand()}
        if p.kind in ("mux", "rege"):
            drive["s"] = rng.integers(0, 2, (cycles, lanes)).astype(object)
        _, toggles = net.run(drive, cycles, lanes)
        data = float((toggles * 2 * net.fanout).sum()) / (cycles * lanes)
        clock = len(net.dff_q) * 2 * CLOCK_GATES_PER_FF
        out[p.constant] = (data + clock) / p.units
    return out


def narrow_addend_activity(k: int = 288, lanes: int = 64, source: str = "real") -> dict[str, float]:
    """The lone ``hw.baseline.fp32_add.FP32Adder`` accumulating, as a PE does (``acc <-
    fp32_add(acc, product)``, the first product loaded), the products of the captured conv
    (:func:`hw.activity.real_operands`): FP32 products (24 significant bits, the FP32 PE) and
    exact E4M3 products (8, the scalar FP8 PE). Returns the data toggles per add of each
    (``fp32``, ``fp8``; :mod:`hw.activity`'s proxy) and their ratio (``measured``) beside the
    energy law's (``law``: ``_fp_add_counts`` with an 8-bit addend over the full FP32 add),
    the check of docs/cost_model.md §3, *Narrow addends*."""
    import numpy as np

    from hw.activity import GateNetlist, _fp8_codes, real_operands
    from hw.baseline.fp32_add import FP32Adder
    from hw.synth import synthesize
    from model import baseline_arith as ba

    from .energy import C_ADD, C_MUX, _fp_add_counts

    top = "prim_fp32_add"
    net = GateNetlist(synthesize(FP32Adder(), top).netlist, top)
    a, w = real_operands(k, lanes, source=source)

    def toggles(products: np.ndarray) -> float:
        accs, acc = np.zeros_like(products), products[0]
        for t in range(1, k):
            accs[t] = acc
            acc = ba.fp32_add(acc, products[t])
        drive = {"a": accs[1:].astype(object), "b": products[1:].astype(object)}
        _, tog = net.run(drive, k - 1, lanes)
        return float((tog * 2 * net.fanout).sum()) / ((k - 2) * lanes)  # k - 2 transitions

    fp32 = toggles(ba.fp32_mul(ba.f32_to_bits(a), ba.f32_to_bits(w)).astype(np.int64))
    fp8 = toggles(ba.fp8_mul(_fp8_codes(a, "e4m3"), _fp8_codes(w, "e4m3")).astype(np.int64))
    narrow, full = _fp_add_counts(8, 24, 8), _fp_add_counts(8, 24)
    law = (C_ADD * narrow[0] + C_MUX * narrow[1]) / (C_ADD * full[0] + C_MUX * full[1])
    return {"fp32": fp32, "fp8": fp8, "measured": fp8 / fp32, "law": law}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.synth_primitives", description=__doc__.split("\n\n")[0])
    parser.add_argument("--activity", action="store_true",
                        help="also print each primitive's gate toggles per unit under hw.activity's proxy, and "
                             "the real-data switching of the report's PEs against the model's random-data price, "
                             "and the lone FP32 adder's switching on FP8 against FP32 products beside the energy law's")
    parser.add_argument("--synth-csv", default="reports/synth.csv",
                        help="synthesis results with data toggles per MAC (default: %(default)s)")
    args = parser.parse_args(argv)
    from .energy import CONSTANTS

    table = {c.name: c.value for c in CONSTANTS}
    measured = synthesize_primitives()
    bad = 0
    for p in PRIMITIVES:
        got, want = measured[p.constant], table.get(p.constant)
        flag = "" if got == want else "  MISMATCH"
        bad += got != want
        print(f"{p.constant:11s} {got:6d} transistors (table {want}), {got / p.units:6.2f} per unit: {p.what}{flag}")
    if args.activity:
        act = primitive_activity()
        for p in PRIMITIVES:
            ratio = act[p.constant] / act["SYN_ADD32"]
            print(f"{p.constant:11s} {act[p.constant]:6.2f} gate toggles per unit and cycle "
                  f"(data + clock), {ratio:4.2f} adder bits")
        _real_data_logic(act["SYN_ADD32"], args.synth_csv)
        narrow = narrow_addend_activity()
        print(f"lone FP32 adder accumulating the captured conv's products: {narrow['fp32']:.0f} gate toggles per "
              f"add (FP32 products), {narrow['fp8']:.0f} (exact E4M3 products, 8 significant bits): "
              f"{narrow['measured']:.3f}; the energy law's 8-bit addend over its full add: {narrow['law']:.3f}")
    return 1 if bad else 0


REAL_DATA_PES = ("fp32", "fp8e4m3-fp32acc+exact", "fp8e4m3-dot9", "int8-dot9", "mls-e2m1g3-l9")


def _real_data_logic(toggles_per_adder_bit: float, synth_csv: str) -> None:
    """Print, per PE, its data toggles per MAC on the captured conv (``synth.csv``) over the
    model's logic energy (all parts but registers) priced at the proxy's random-data toggles of
    an adder bit: how much of the model's random-data switching real operands cause."""
    import pathlib

    from hw.synth import DEFAULT_MLS_K

    from .energy import C_ADD, pe_energy
    from .report_io import read_csv

    path = pathlib.Path(synth_csv)
    if not path.exists():
        print(f"{path} not found: no real-data comparison")
        return
    rows = {r["design"]: r for r in read_csv(path)}
    print("real-data logic switching / the model's random-data price (K = 2^20 accumulators):")
    for design in REAL_DATA_PES:
        row = rows.get(design)
        if row is None or row["gate_toggles_per_mac"] == "":
            continue
        parts = pe_energy(design, DEFAULT_MLS_K)
        logic = (sum(parts.values()) - parts["registers"]) / C_ADD * toggles_per_adder_bit
        print(f"  {design:24s} {float(row['gate_toggles_per_mac']) / logic:5.2f}")


if __name__ == "__main__":
    sys.exit(main())
