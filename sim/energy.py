"""Energy and area-proxy model of the MLS PE, its baselines and SRAM traffic (docs/cost_model.md §3).

Every number comes from :data:`CONSTANTS` (one table, each entry with its source) through a few
primitive scaling laws, and every format-derived width from :class:`model.formats.MLSFormat`.
A PE is first counted (:func:`pe_counts`, one inventory per part, read off the RTL in hw/):
multiplier cells, adder bits, 2:1 mux bits, register bits. Energy and area are two laws over
those counts.

Energy (pJ, Horowitz ISSCC 2014, 45 nm):

- multiplier cell: ``C_IMUL`` for a two's complement (signed) cell, anchored on INT8 mult 0.2 pJ
  (predicts INT32 mult 3.2 pJ against Horowitz's 3.1 pJ); ``C_UMUL`` for an unsigned
  (sign-magnitude) cell, ``C_IMUL`` times the measured transistor ratio of an unsigned to a
  signed 8 x 8 multiplier (no sign-correction rows; the gate-level activity of the two on random
  operands has the same ratio).
- adder bit: ``C_ADD``, anchored on INT32 add 0.1 pJ; predicts INT8 add 0.025 pJ against 0.03 pJ.
- mux bit: ``C_MUX``, solved so that the FP adder law (:func:`fp_add_energy`: the structure of
  hw.baseline.fp32_add, compare, swap, align, add, leading-zero count, normalize, round, result
  select) gives Horowitz's FP32 add (0.9 pJ) exactly; predicts FP16 add 0.43 pJ against 0.4 pJ.
- register bit per cycle: ``C_REG`` = ``C_ADD`` (an assumption: Horowitz lists no flip-flop; a
  clocked DFF bit is taken to cost one ripple full-adder bit. The project's gate-level activity
  proxy, clock included, gives 0.87 adder bits per register bit on random data).
- FP multiplier (product rounded to its own format, as Horowitz measured):
  ``C_ADD*(E+2) + A2*s**2 + A1*s`` with s = M+1, A2 and A1 solved from FP32 mult 3.7 pJ and FP16
  mult 1.1 pJ (both reproduced exactly).
- SRAM: ``E_SRAM_64b / 64`` per bit, interpolated log-log between Horowitz's 8 KB / 32 KB / 1 MB
  points; default 8 KB (docs/cost_model.md §3).

Narrow addends (docs/cost_model.md §3): an adder is charged, in energy, only for the bits an
accumulation step can switch. A sign-magnitude addend of p significant bits (an FP8 or FP16
product into an FP32 adder) leaves its lower significand bits constant zero, and the
accumulator passes its bits below the addend's LSB through unchanged, so the FP adder law's
significand-wide terms are charged at p (:func:`_fp_add_counts`); the FP8 dot PE's window bits
below the beat sum's LSB are idle the same way (:func:`fp32_wide_add_counts`). A two's
complement addend (the MLS and INT8 accumulators, the trees) drives every bit above its LSB
through its sign extension, and is charged in full. Idle bits still count for area.

Area (:func:`pe_area`, adder-bit equivalents): the same counts, each weighted by what one unit
costs in this project's synthesis flow against one adder bit (``W_*``, from the ``SYN_*``
transistor counts of lone primitives, ``python -m sim.synth_primitives``).

A *design* is a PE datapath (``Design.parse``): ``mls-e2m1g3`` (exact accumulator for the
largest K of the workload) or ``mls-e2m1g3-acc24``; ``fp32``; ``fp16-fp32acc``;
``bf16-fp32acc``; ``fp8e4m3-fp16acc``, ``fp8e4m3-fp32acc``, ``fp8e5m2-fp16acc``,
``fp8e5m2-fp32acc``; ``int8-int32acc``. A ``+exact`` suffix on a float design makes its product
exact (an integer significand multiplier feeding the wider adder, as fused tensor-core MACs do)
instead of a rounded FP multiply: the sensitivity case for the FP8 comparison.

*Dot-product designs* (docs/numerics.md §3.1) take one beat of L element pairs per cycle: ``mls-e2m1g3-l16``
(the MLS dot PE ``hw.pe.dot_pe.MLSDotPE`` with L = 16 lanes; ``-acc<BITS>`` may follow, e.g.
``mls-e2m1g3-l16-acc32``), ``fp8e4m3-dot16`` / ``fp8e5m2-dot16`` (the FP8 dot PE: L exact
products, their exact sum added to an FP32 accumulator with ONE rounding per beat) and
``int8-dot16`` (INT8 products, wrapping INT32 add per beat). Their components are priced per
beat (:func:`pe_beat_energy`); a workload pays ``beats = lane_slots / L`` beats, so padded lanes
(lane utilization below 1) cost energy, and the energy per useful MAC is the beat energy over
``L * lane_utilization`` (:func:`pe_energy`). The scalar designs keep their names and laws.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from hw.baseline.fp32_wide_add import FP32WideAdder
from hw.pe.adder_tree import AdderTree
from model.baseline_arith import fp8_dot_max_product, fp8_max_fixed
from model.floats import BF16, FP16, FP32, FloatFormat, float_format
from model.formats import MLSFormat

__all__ = [
    "BASELINES",
    "CONSTANTS",
    "DOT_BASELINES",
    "MAX_LANES",
    "TREE_LEVELS_PER_STAGE",
    "DEFAULT_MLS",
    "Constant",
    "Design",
    "COMPUTE_PARTS",
    "PE_PARTS",
    "SRAM_PARTS",
    "WorkloadStats",
    "workload_energy",
    "workload_stats",
    "ungrouped_gemms",
    "fp_add_energy",
    "fp_mul_energy",
    "adder_tree_bits",
    "PartCounts",
    "pe_counts",
    "fp32_wide_add_counts",
    "pe_area",
    "pe_area_per_mac",
    "pe_beat_energy",
    "pe_energy",
    "pe_idle_energy",
    "quantize_energy",
    "convert_energy",
    "sram_bit_energy",
]


@dataclass(frozen=True)
class Constant:
    name: str
    value: float
    unit: str
    source: str


# -- the one table of constants (45 nm, 0.9 V) ---------------------------------------------------
_H = "Horowitz, ISSCC 2014, 45 nm (docs/cost_model.md §3)"
_SYN = "measured, python -m sim.synth_primitives: "
_RAW = [
    Constant("H_FP32_MUL", 3.7, "pJ", _H),
    Constant("H_FP32_ADD", 0.9, "pJ", _H),
    Constant("H_FP16_MUL", 1.1, "pJ", _H),
    Constant("H_FP16_ADD", 0.4, "pJ", _H),
    Constant("H_INT8_MUL", 0.2, "pJ", _H),
    Constant("H_INT8_ADD", 0.03, "pJ", _H + "; cross-check only"),
    Constant("H_INT32_ADD", 0.1, "pJ", _H),
    Constant("H_INT32_MUL", 3.1, "pJ", "Horowitz ISSCC 2014; cross-check only"),
    Constant("H_SRAM_8KB_64b", 10.0, "pJ per 64-bit read", _H),
    Constant("H_SRAM_32KB_64b", 20.0, "pJ per 64-bit read", "Horowitz ISSCC 2014"),
    Constant("H_SRAM_1MB_64b", 100.0, "pJ per 64-bit read", "Horowitz ISSCC 2014"),
    # The area law's weights: transistors of one lone primitive in this project's synthesis flow
    # (hw.synth: yosys synth, abc -g cmos2, the CMOS estimate), measured by
    # `python -m sim.synth_primitives` (tests/test_sim_energy.py re-measures them).
    Constant("SYN_ADD32", 1550, "transistors", _SYN + "32-bit adder (33-bit sum): 32 adder bits"),
    Constant("SYN_UMUL8", 2692, "transistors", _SYN + "unsigned 8 x 8 multiplier: 64 cells"),
    Constant("SYN_SMUL8", 3694, "transistors", _SYN + "signed 8 x 8 multiplier (hw.baseline.int_mul): 64 cells"),
    Constant("SYN_MUX32", 386, "transistors", _SYN + "32-bit 2:1 mux: 32 mux bits"),
    Constant("SYN_REG32", 704, "transistors", _SYN + "32-bit register, synchronous reset: 32 bits"),
    Constant("SYN_REGE32", 1152, "transistors", _SYN + "32-bit register, reset and load enable: 32 bits"),
]
_V = {c.name: c.value for c in _RAW}

C_IMUL = _V["H_INT8_MUL"] / 64  # pJ per two's complement partial-product cell (an INT8 multiply is signed)
# pJ per unsigned (sign-magnitude) cell: the same switching per transistor, and the unsigned array
# needs SYN_UMUL8 / SYN_SMUL8 = 0.73 of the signed one's transistors (no sign-correction rows)
C_UMUL = C_IMUL * _V["SYN_UMUL8"] / _V["SYN_SMUL8"]
C_ADD = _V["H_INT32_ADD"] / 32  # pJ per adder bit
C_REG = C_ADD  # assumption, see module docstring

# Area law (pe_area), in adder-bit equivalents of the synthesis flow: one adder bit weighs 1.
_T_ADD = _V["SYN_ADD32"] / 32  # transistors per adder bit
W_CELL = _V["SYN_UMUL8"] / 64 / _T_ADD  # unsigned multiplier cell: AND gate + carry-save adder bit
W_SCELL = _V["SYN_SMUL8"] / 64 / _T_ADD  # signed (two's complement) multiplier cell: the sign rows cost more
W_MUX = _V["SYN_MUX32"] / 32 / _T_ADD  # 2:1 mux bit
W_REG = _V["SYN_REG32"] / 32 / _T_ADD  # register bit, reset only (pipeline registers)
W_EREG = _V["SYN_REGE32"] / 32 / _T_ADD  # register bit with a load enable (accumulator, result)


_FP_SELECT = 3  # an FP adder's result select: the sum, an operand, or a special pattern (NaN, Inf, zero)


_GRS = 3  # guard, round and sticky bits below an FP adder's significand (hw.baseline.fp32_add._EXTRA)


def shifter_mux_bits(in_bits: int, shift_bits: int, out_bits: int) -> int:
    """2:1 mux bits of a logarithmic left shifter: stage j (shift by 2**j) is as wide as the
    value after it, ``in_bits + 2**(j+1) - 1``, capped at the output width. The same count is
    the mux bits a narrow value can reach in a wider shifter (a right shift spreads the same way)."""
    return sum(min(in_bits + (1 << (j + 1)) - 1, out_bits) for j in range(shift_bits))


def _fp_add_counts(exp_bits: int, sig: int, addend_sig: int | None = None) -> tuple[int, int, int, int]:
    """``(adder bits, mux bits, idle adder bits, idle mux bits)`` of the FP adder law, the
    structure of hw.baseline.fp32_add.FP32Adder: the exponent difference (E + 1 bits), the
    magnitude compare that picks the larger operand (E + s - 1 bits), the significand add on
    s + 3 bits (guard, round, sticky), the rounding increment (s), the result exponent and its
    rounding carry (2 (E + 1)); the swap of both operands (2 (E + s) mux bits), the align and
    normalize shifters on s + 3 bits, the leading-zero count over the s + 4-bit sum (a log tree,
    (s + 4) ceil(log2(s + 4)) / 2 mux bits) and the result select (``_FP_SELECT`` words of E + s
    bits).

    ``addend_sig`` (p <= s): the adder accumulates an addend of at most p significant bits (an
    FP8 or FP16 product into an FP32 accumulator). Every unit is still built (the idle counts
    carry the rest to the area law), but the energy law charges only the bits an accumulation
    step can switch (docs/cost_model.md §3, *Narrow addends*): the addend is sign-magnitude, so
    its significand bits below its p significant bits are constant zero, and the accumulator,
    the larger operand, passes its bits below the addend's LSB through unchanged. So each
    significand-wide term is charged at p instead of s (the sum, the rounding increment, the
    swap, the normalize shifter, the leading-zero count, the result select; the magnitude
    compare at E + p - 1), the align shifter at the mux bits the p-bit addend reaches
    (``shifter_mux_bits``), and the shifters keep the stage count of the s + 3-bit window.
    The exponent terms are charged in full. With p = s (the default) nothing is idle."""
    p = sig if addend_sig is None else addend_sig
    if not 1 <= p <= sig:
        raise ValueError(f"addend significand bits must be in [1, {sig}], got {p}")

    def counts(d: int) -> tuple[int, int]:
        wide, stages = sig + _GRS, math.ceil(math.log2(sig + _GRS))
        adds = (exp_bits + 1) + (exp_bits + d - 1) + (d + _GRS) + d + 2 * (exp_bits + 1)
        lzc = (d + 4) * math.ceil(math.log2(sig + 4)) // 2
        align = shifter_mux_bits(d + _GRS, stages, wide)  # = wide * stages when d = s
        muxes = 2 * (exp_bits + d) + align + (d + _GRS) * stages + lzc + _FP_SELECT * (exp_bits + d)
        return adds, muxes

    (adds, muxes), (all_adds, all_muxes) = counts(p), counts(sig)
    return adds, muxes, all_adds - adds, all_muxes - muxes


_add32, _mux32, _, _ = _fp_add_counts(8, 24)
C_MUX = (_V["H_FP32_ADD"] - C_ADD * _add32) / _mux32
# FP multiplier: solve A2*s^2 + A1*s = H - C_ADD*(E+2) at FP32 (E8, s24) and FP16 (E5, s11).
_r32 = _V["H_FP32_MUL"] - C_ADD * 10
_r16 = _V["H_FP16_MUL"] - C_ADD * 7
A1 = (_r16 * 576 - _r32 * 121) / (11 * 576 - 24 * 121)
A2 = (_r32 - 24 * A1) / 576

CONSTANTS: list[Constant] = _RAW + [
    Constant("C_IMUL", C_IMUL, "pJ/bit^2", "H_INT8_MUL / 64 (signed cells)"),
    Constant("C_UMUL", C_UMUL, "pJ/bit^2", "C_IMUL * SYN_UMUL8 / SYN_SMUL8 (unsigned cells)"),
    Constant("C_ADD", C_ADD, "pJ/bit", "H_INT32_ADD / 32"),
    Constant("C_MUX", C_MUX, "pJ/mux bit", "solved: FP adder law = H_FP32_ADD"),
    Constant("C_REG", C_REG, "pJ/bit/cycle", "assumption: = C_ADD (no register figure in Horowitz)"),
    Constant("A2", A2, "pJ/bit^2", "solved: FP mult law = H_FP32_MUL and H_FP16_MUL"),
    Constant("A1", A1, "pJ/bit", "solved: FP mult law = H_FP32_MUL and H_FP16_MUL"),
    Constant("W_CELL", W_CELL, "adder bits/cell", "SYN_UMUL8 / 64 over SYN_ADD32 / 32"),
    Constant("W_SCELL", W_SCELL, "adder bits/cell", "SYN_SMUL8 / 64 over SYN_ADD32 / 32"),
    Constant("W_MUX", W_MUX, "adder bits/mux bit", "SYN_MUX32 / 32 over SYN_ADD32 / 32"),
    Constant("W_REG", W_REG, "adder bits/register bit", "SYN_REG32 / 32 over SYN_ADD32 / 32"),
    Constant("W_EREG", W_EREG, "adder bits/register bit", "SYN_REGE32 / 32 over SYN_ADD32 / 32"),
]


def sram_bit_energy(kib: float = 8.0) -> float:
    """pJ per bit read or written from an SRAM of ``kib`` KiB (log-log between Horowitz points)."""
    if not isinstance(kib, (int, float)) or isinstance(kib, bool) or not 1 <= kib <= 1 << 20:
        raise ValueError(f"SRAM size must be in [1, 1048576] KiB, got {kib!r}")
    pts = [(8.0, _V["H_SRAM_8KB_64b"]), (32.0, _V["H_SRAM_32KB_64b"]), (1024.0, _V["H_SRAM_1MB_64b"])]
    (x0, y0), (x1, y1) = (pts[0], pts[1]) if kib <= 32 else (pts[1], pts[2])
    slope = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (kib / x0) ** slope / 64


# -- formats and designs -------------------------------------------------------------------------
BASELINES = ("fp32", "fp16-fp32acc", "bf16-fp32acc", "fp8e4m3-fp16acc", "fp8e4m3-fp32acc",
             "fp8e5m2-fp16acc", "fp8e5m2-fp32acc", "int8-int32acc")
DEFAULT_MLS = ("mls-e2m1g3", "mls-e2m4g3")  # the paper's CIFAR and ImageNet element formats

DOT_BASELINES = ("fp8e4m3-dot{L}", "fp8e5m2-dot{L}", "int8-dot{L}")  # same-lane baselines, L filled in
MAX_LANES = AdderTree.MAX_LANES  # the RTL's adder-tree limit (hw.pe.dot_pe.MLSDotPE.MAX_LANES)
TREE_LEVELS_PER_STAGE = 2  # MLSDotPE's default: a tree register every two adder levels

_FLOAT_RE = re.compile(r"^(fp32|fp16|bf16|fp8e4m3|fp8e5m2)(?:-(fp16|fp32)acc)?(\+exact)?$")
_MLS_RE = re.compile(r"^mls-(e\d+m\d+g\d+)(?:-l(\d+))?(?:-acc(\d+))?$")
_FP8_DOT_RE = re.compile(r"^(fp8e4m3|fp8e5m2)-dot(\d+)$")
_INT8_DOT_RE = re.compile(r"^int8-dot(\d+)$")


def _lanes(name: str, text: str) -> int:
    lanes = int(text)
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"design {name!r}: lanes must be in [1, {MAX_LANES}], got {lanes}")
    return lanes


@dataclass(frozen=True)
class Design:
    """A PE datapath: operand format, accumulator and product style."""

    name: str
    kind: str  # "mls" | "float" | "int"
    fmt: MLSFormat | FloatFormat | None = None
    acc: FloatFormat | None = None  # float accumulator
    acc_bits: int | None = None  # integer/MLS accumulator width; None = exact for the workload
    exact_product: bool = False
    lanes: int | None = None  # None: the scalar PE; L: a dot-product PE of L lanes (docs/numerics.md §3.1)

    @classmethod
    def parse(cls, name: str | Design) -> Design:
        if isinstance(name, Design):
            return name
        if not isinstance(name, str):
            raise TypeError(f"design name must be a str, not {name!r}")
        text = name.strip().lower()
        if text == "int8-int32acc":
            return cls(text, "int", None, None, 32)
        match = _INT8_DOT_RE.match(text)
        if match:
            return cls(text, "int", None, None, 32, lanes=_lanes(name, match.group(1)))
        match = _FP8_DOT_RE.match(text)
        if match:
            return cls(text, "float", float_format(match.group(1)), FP32, None, True, _lanes(name, match.group(2)))
        match = _MLS_RE.match(text)
        if match:
            fmt = MLSFormat.parse(match.group(1))
            lanes = _lanes(name, match.group(2)) if match.group(2) else None
            acc = int(match.group(3)) if match.group(3) else None
            if acc is not None and not 2 <= acc <= 63:
                raise ValueError(f"design {name!r}: accumulator width must be in [2, 63], got {acc}")
            return cls(text, "mls", fmt, None, acc, lanes=lanes)
        match = _FLOAT_RE.match(text)
        if match:
            op, acc, exact = match.groups()
            if op == "fp32" and acc not in (None, "fp32"):
                raise ValueError(f"design {name!r}: fp32 accumulates in fp32")
            if op != "fp32" and acc is None:
                raise ValueError(f"design {name!r}: give the accumulator, e.g. {op}-fp32acc")
            return cls(text, "float", float_format(op), float_format(acc or "fp32"), None, bool(exact))
        raise ValueError(
            f"design {name!r} is not one of mls-e<E>m<M>g<G>[-l<LANES>][-acc<BITS>], "
            f"{', '.join(BASELINES)} (float designs may end in +exact), fp8e4m3-dot<LANES>, "
            f"fp8e5m2-dot<LANES>, int8-dot<LANES>")

    @classmethod
    def mls(cls, fmt: MLSFormat | str, lanes: int | None = None, acc_bits: int | None = None) -> Design:
        """The MLS design of ``fmt`` (scalar PE for ``lanes=None``), named as ``parse`` reads it."""
        fmt = MLSFormat.parse(fmt)
        name = f"mls-{fmt}" + (f"-l{lanes}" if lanes is not None else "") + \
            (f"-acc{acc_bits}" if acc_bits is not None else "")
        return cls.parse(name)

    def with_acc(self, acc_bits: int) -> Design:
        """This MLS design with a given accumulator width (not range-checked: a synthesized PE may
        report a width past int64's)."""
        name = f"mls-{self.fmt}" + (f"-l{self.lanes}" if self.lanes is not None else "") + f"-acc{acc_bits}"
        return Design(name, "mls", self.fmt, None, acc_bits, lanes=self.lanes)

    @property
    def is_dot(self) -> bool:
        """A dot-product PE (one beat of ``lanes`` element pairs per cycle)."""
        return self.lanes is not None

    @property
    def lane_count(self) -> int:
        """Element pairs per cycle: ``lanes`` for a dot PE, 1 for a scalar PE."""
        return self.lanes if self.lanes is not None else 1

    @property
    def elem_bits(self) -> int:
        """Bits per operand element in memory (group exponents counted separately)."""
        if self.kind == "int":
            return 8
        return self.fmt.elem_bits if self.kind == "mls" else self.fmt.bits

    @property
    def group_bits(self) -> int:
        return self.fmt.group_bits if self.kind == "mls" else 0

    @property
    def out_bits(self) -> int:
        """Bits per GEMM output written back: FP32 after the converter, else the accumulator."""
        return self.acc.bits if self.kind == "float" else 32


# -- primitive laws ------------------------------------------------------------------------------
def fp_mul_energy(f: FloatFormat) -> float:
    """Rounded FP multiply (pJ)."""
    s = f.sig_bits
    return C_ADD * (f.exp_bits + 2) + A2 * s * s + A1 * s


def fp_add_energy(f: FloatFormat) -> float:
    """FP add of two full-width operands (pJ)."""
    adds, muxes, _, _ = _fp_add_counts(f.exp_bits, f.sig_bits)
    return C_ADD * adds + C_MUX * muxes


def resolve_acc_bits(design: Design, k_max: int) -> int:
    """Accumulator width of a design for a workload whose largest reduction is ``k_max``."""
    if design.kind == "mls":
        return design.acc_bits if design.acc_bits is not None else design.fmt.acc_bits_exact(k_max)
    if design.kind == "int":
        return design.acc_bits
    return design.acc.bits


PE_PARTS = ("multiplier", "exponent", "aligner", "tree", "group_shift", "accumulator", "registers")
CTL_BITS = 3  # valid, first, last (hw.pe.signature.control_layout): registered at every stage


@dataclass(frozen=True)
class PartCounts:
    """What one part of a PE is built of, as the energy and area laws count it.

    Energy (pJ per beat): ``C_UMUL*cells + C_IMUL*signed_cells + C_ADD*adds + C_MUX*muxes +
    C_REG*(regs + enabled_regs)``, or ``pj`` where a Horowitz-anchored law fixes the part's
    energy (the rounded FP multiplier). Area (adder-bit equivalents, ``pe_area``): the same
    counts weighted by ``W_CELL``, ``W_SCELL``, 1, ``W_MUX``, ``W_REG``, ``W_EREG``, plus the
    idle adder and mux bits (``idle_adds``, ``idle_muxes``: built, but carrying only bits an
    accumulation step leaves constant, so they cost area and no energy; docs/cost_model.md §3,
    *Narrow addends*). One inventory serves both laws.
    """

    cells: int = 0  # unsigned multiplier partial-product cells
    signed_cells: int = 0  # two's complement multiplier cells (INT8)
    adds: int = 0  # adder bits
    muxes: int = 0  # 2:1 mux bits (shifters, negates)
    regs: int = 0  # register bits without a load enable (pipeline, forwarding)
    enabled_regs: int = 0  # register bits with a load enable (accumulator, result)
    idle_adds: int = 0  # adder bits whose inputs an accumulation step holds constant (area only)
    idle_muxes: int = 0  # mux bits whose inputs an accumulation step holds constant (area only)
    pj: float | None = None

    @property
    def energy(self) -> float:
        if self.pj is not None:
            return self.pj
        return (C_UMUL * self.cells + C_IMUL * self.signed_cells + C_ADD * self.adds + C_MUX * self.muxes
                + C_REG * (self.regs + self.enabled_regs))

    @property
    def area(self) -> float:
        return (W_CELL * self.cells + W_SCELL * self.signed_cells + self.adds + self.idle_adds
                + W_MUX * (self.muxes + self.idle_muxes) + W_REG * self.regs + W_EREG * self.enabled_regs)


def adder_tree_bits(lanes: int, node_bits, cap: int | None = None,
                    levels_per_stage: int = TREE_LEVELS_PER_STAGE) -> tuple[int, int]:
    """``(adder bits, register bits)`` of the exact adder tree of ``hw.pe.adder_tree.AdderTree``:
    level d adds neighbouring pairs (an odd node passes through), a node covering n inputs is
    ``node_bits(n)`` wide (at most ``cap``: a wrapping INT32 tree needs only the low 32 bits), and
    every ``levels_per_stage``-th level and the last one are registered (pass-through nodes too).
    A node's adder is as wide as its operands, one bit less than its sum (the top bit is the
    carry), as ``SYN_ADD32`` counts a 32-bit adder; a wrapping node keeps all ``cap`` bits."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be an int in [1, {MAX_LANES}], got {lanes!r}")
    width = (lambda n: min(node_bits(n), cap)) if cap is not None else node_bits
    nodes = [1] * lanes  # inputs covered by each node of the current level
    depth = AdderTree.depth_for(lanes)
    adders = registers = 0
    for level in range(1, depth + 1):
        pairs = [nodes[i:i + 2] for i in range(0, len(nodes), 2)]
        nodes = [sum(pair) for pair in pairs]
        adders += sum(min(node_bits(sum(pair)) - 1, cap if cap is not None else node_bits(sum(pair)))
                      for pair in pairs if len(pair) == 2)
        if level % levels_per_stage == 0 or level == depth:
            registers += sum(width(n) for n in nodes)
    return adders, registers


def _pe_registers(forward: int, stage1: int, stages: int, acc: int, *, per_stage: int = 0,
                  saturating: bool = False) -> PartCounts:
    """The registers every PE of hw/ has (hw.pe.pe.MLSPE, hw.pe.dot_pe.MLSDotPE and the
    baselines of hw.baseline): ``forward`` operand bits and the control passed on to the next PE
    (``a_out``, ``b_out``, ``ctl_out``); ``stage1`` bits registered after the multipliers (lane
    products or the scalar product); the control (and ``per_stage`` more bits: group exponents,
    special-case flags) through ``stages`` pipeline stages before the accumulator; ``done``; and,
    with a load enable, the accumulator and the result register that ``last`` loads (the double
    buffer), plus the sticky and overflow flags of a saturating MLS accumulator."""
    plain = forward + CTL_BITS + stage1 + stages * (CTL_BITS + per_stage) + 1
    return PartCounts(regs=plain, enabled_regs=2 * acc + (2 if saturating else 0))


def pe_counts(design: Design | str, k_max: int = 1) -> dict[str, PartCounts]:
    """What each part (``PE_PARTS``) of one whole PE (all its lanes) is built of: multiplier
    cells, adder bits, mux bits and register bits (:class:`PartCounts`). ``pe_beat_energy`` and
    ``pe_area`` are these counts under the energy and the area law. ``k_max`` sizes an exact
    MLS accumulator."""
    d = Design.parse(design)
    counts = _dot_counts(d, k_max) if d.is_dot else _scalar_counts(d, k_max)
    return {part: counts.get(part, PartCounts()) for part in PE_PARTS}


def _mls_accumulator(acc: int, in_bits: int) -> PartCounts:
    """hw.pe.accumulator.Accumulator: an adder as wide as the wider operand (its sum is one bit
    wider; ``first`` zeroes the accumulator operand with AND gates, not counted) and the clamp
    of the sum to the accumulator's range (``acc`` mux bits)."""
    return PartCounts(adds=max(acc, in_bits), muxes=acc)


def _dot_counts(d: Design, k_max: int) -> dict[str, PartCounts]:
    lanes = d.lanes
    latency = AdderTree.latency_for(lanes, TREE_LEVELS_PER_STAGE)
    stages = 1 + latency  # the lane-product stage, then the tree's registered levels
    if d.kind == "mls":
        fmt = d.fmt
        s, elem_shift = fmt.sig_bits, fmt.elem_product_shift_max()
        elem_shift_bits, lane_bits = elem_shift.bit_length(), fmt.elem_product_bits()
        group_shift = fmt.group_shift_max()
        group_shift_bits = group_shift.bit_length()
        tree_bits = fmt.beat_sum_bits(lanes)
        tree_adds, tree_regs = adder_tree_bits(lanes, fmt.beat_sum_bits)
        acc = resolve_acc_bits(d, k_max)
        regs = _pe_registers(lanes * 2 * fmt.elem_bits + 2 * fmt.group_bits, lanes * lane_bits, stages, acc,
                             per_stage=2 * fmt.group_bits, saturating=True)
        return {
            "multiplier": PartCounts(cells=lanes * s * s),
            # per lane: the element-shift adder; per beat: the group-shift adder
            "exponent": PartCounts(adds=lanes * elem_shift_bits + group_shift_bits),
            # per lane: left shift of the significand product by the element offsets + negate
            "aligner": PartCounts(muxes=lanes * (shifter_mux_bits(fmt.sig_product_bits(), elem_shift_bits,
                                                                  lane_bits - 1) + lane_bits)),
            "tree": PartCounts(adds=tree_adds),
            "group_shift": PartCounts(muxes=shifter_mux_bits(tree_bits, group_shift_bits, tree_bits + group_shift)),
            "accumulator": _mls_accumulator(acc, tree_bits + group_shift),
            # the tree's registered levels join the PE's registers
            "registers": dataclasses.replace(regs, regs=regs.regs + tree_regs),
        }
    if d.kind == "int":  # INT8 dot PE: wrapping INT32 add of the beat's exact (mod 2^32) sum
        tree_adds, tree_regs = adder_tree_bits(lanes, lambda n: 1 + (n * 128 * 128).bit_length(), cap=32)
        regs = _pe_registers(lanes * 2 * 8, lanes * 16, stages, 32)
        return {
            "multiplier": PartCounts(signed_cells=lanes * 8 * 8),  # hw.baseline.int_mul: signed
            "tree": PartCounts(adds=tree_adds),
            "accumulator": PartCounts(adds=32),
            "registers": dataclasses.replace(regs, regs=regs.regs + tree_regs),
        }
    # FP8 dot PE (hw.baseline.fp8_dot_pe.FP8DotPE): every exact product on one common LSB, an exact
    # tree, then one single-rounding FP32 add per beat (hw.baseline.fp32_wide_add.FP32WideAdder).
    # Aligning to the beat's largest exponent inside a window that keeps every product exactly is
    # the same shift as to the common LSB, so no max-exponent tree is charged.
    f = d.fmt
    s, exp_bits = f.sig_bits, f.exp_bits + 1  # product exponent: sum of two E-bit exponents
    max_product = fp8_dot_max_product(f, f)  # largest lane product in units of its LSB
    elem_shift = 2 * (fp8_max_fixed(f).bit_length() - s)  # both elements' exponent offsets
    window = max_product.bit_length()  # unsigned window that holds every product exactly
    lane_bits = window + 1
    tree_bits = 1 + (lanes * max_product).bit_length()
    tree_adds, tree_regs = adder_tree_bits(lanes, lambda n: 1 + (n * max_product).bit_length())
    adds, muxes, idle_adds, idle_muxes = fp32_wide_add_counts(tree_bits)
    # four special-case flags (NaN, +Inf, -Inf, all -0) travel with the beat
    regs = _pe_registers(lanes * 2 * f.bits, lanes * lane_bits, stages, FP32.bits, per_stage=4)
    return {
        "multiplier": PartCounts(cells=lanes * s * s),
        "exponent": PartCounts(adds=exp_bits * lanes),  # per lane: the product exponent (the shift amount)
        "aligner": PartCounts(muxes=lanes * (shifter_mux_bits(2 * s, elem_shift.bit_length(), window) + lane_bits)),
        "tree": PartCounts(adds=tree_adds),
        # the single-rounding FP32 add of the beat sum
        "accumulator": PartCounts(adds=adds, muxes=muxes, idle_adds=idle_adds, idle_muxes=idle_muxes),
        "registers": dataclasses.replace(regs, regs=regs.regs + tree_regs),
    }


def pe_beat_energy(design: Design | str, k_max: int = 1) -> dict[str, float]:
    """Energy per beat (pJ) by component of one dot-product PE (``PE_PARTS``): L multipliers, L
    element aligners, the exact adder tree, the group shifter and the wide add, registers per lane
    and per PE (``pe_counts`` under the energy law). A scalar design's beat is its single MAC.
    ``k_max`` sizes an exact accumulator."""
    d = Design.parse(design)
    if not d.is_dot:
        return pe_energy(d, k_max)
    return {part: c.energy for part, c in pe_counts(d, k_max).items()}


def pe_idle_energy(design: Design | str, k_max: int = 1) -> float:
    """Energy per beat (pJ) the idle adder and mux bits of one PE would cost if they switched
    like the rest (``C_ADD * idle_adds + C_MUX * idle_muxes`` over its parts): what the
    narrow-addend rule saves, for the sensitivity case that charges every adder in full."""
    return sum(C_ADD * c.idle_adds + C_MUX * c.idle_muxes for c in pe_counts(design, k_max).values())


def fp32_wide_add_counts(sum_bits: int) -> tuple[int, int, int, int]:
    """``(adder bits, mux bits, idle adder bits, idle mux bits)`` of ``FP32WideAdder(sum_bits,
    ...)``: the accumulator's 24-bit significand shifted into a window of ``window_bits =
    sum_bits + GUARD + 24 + 3`` bits (a log shifter over the window), one two's-complement add
    and its sign-magnitude, a leading-zero count and normalize shift over the window, the 24-bit
    rounding increment, the exponent compare and result exponent (9 bits each), and the result
    select (``_FP_SELECT`` FP32 words: the rounded sum, the accumulator, a special pattern).

    Idle (area only, docs/cost_model.md §3, *Narrow addends*): the window's ``GUARD`` bits below
    the beat sum's LSB in the three window-wide terms and the normalize shifter. There the sum
    (shifted up by ``GUARD``) is constant zero and the accumulator's bits, fixed-point in the
    window, are the ones the previous exact add left unchanged; a left normalize shift keeps
    them zero. From the sum's LSB up everything switches: the sum is two's complement, so its
    sign extension drives the window to the top."""
    guard = FP32WideAdder.GUARD
    window = sum_bits + guard + FP32.sig_bits + 3
    stages = math.ceil(math.log2(window))
    muxes = shifter_mux_bits(FP32.sig_bits, stages, window) + (window - guard) * stages + _FP_SELECT * FP32.bits
    adds = 3 * (window - guard) + (FP32.sig_bits + 1) + 2 * (FP32.exp_bits + 1)
    return adds, muxes, 3 * guard, guard * stages


def pe_energy(design: Design | str, k_max: int = 1, lane_utilization: float = 1.0) -> dict[str, float]:
    """Energy per useful MAC (pJ) by component of one PE (``PE_PARTS``). ``k_max`` sizes an exact
    MLS accumulator. A dot-product PE's beat energy is spread over the ``lanes *
    lane_utilization`` useful element pairs of a beat (padded lanes still cost energy)."""
    d = Design.parse(design)
    if not 0 < lane_utilization <= 1:
        raise ValueError(f"lane_utilization must be in (0, 1], got {lane_utilization!r}")
    if d.is_dot:
        per = d.lanes * lane_utilization
        return {part: value / per for part, value in pe_beat_energy(d, k_max).items()}
    return {part: c.energy for part, c in pe_counts(d, k_max).items()}  # no tree, no separate group shifter


def _scalar_counts(d: Design, k_max: int) -> dict[str, PartCounts]:
    if d.kind == "mls":
        fmt = d.fmt
        s = fmt.sig_bits
        product, shift_bits, aligned = fmt.sig_product_bits(), fmt.product_shift_bits(), fmt.shifted_product_bits()
        acc = resolve_acc_bits(d, k_max)
        return {
            "multiplier": PartCounts(cells=s * s),
            # element-exponent adder, group-exponent adder, and their sum (the shift amount)
            "exponent": PartCounts(adds=fmt.exp_bits + fmt.group_bits + shift_bits),
            # left barrel shifter of the product into the accumulator, plus the conditional negate
            "aligner": PartCounts(muxes=shifter_mux_bits(product, shift_bits, aligned) + aligned),
            "accumulator": _mls_accumulator(acc, fmt.product_bits()),
            # A and W (element + group exponent) forwarded, the aligned signed product (stage 1)
            "registers": _pe_registers(2 * (fmt.elem_bits + fmt.group_bits), fmt.product_bits(), 1, acc,
                                       saturating=True),
        }
    if d.kind == "int":
        return {
            "multiplier": PartCounts(signed_cells=8 * 8),  # hw.baseline.int_mul: signed
            "accumulator": PartCounts(adds=d.acc_bits),
            "registers": _pe_registers(8 + 8, 16, 1, d.acc_bits),
        }
    f, acc = d.fmt, d.acc
    if d.exact_product:  # integer significand product + exponent sum, fed unrounded to the adder
        # plus the product's leading one normalized (one position for normal operands) and its
        # exponent rebiased into the accumulator's format (hw.baseline.fp8_mul)
        mult = PartCounts(cells=f.sig_bits ** 2, adds=acc.exp_bits, muxes=2 * f.sig_bits)
        expo = PartCounts(adds=f.exp_bits + 1)
        # the exact product travels as an accumulator-format word (hw.baseline.fp8_mul's FP32 output)
        product_bits = max(acc.bits, 1 + (f.exp_bits + 1) + 2 * f.sig_bits)
    else:
        # energy: the Horowitz-anchored law; area: the s x s array (unsigned significands), the
        # normalize by one position and the rounding increment
        mult = PartCounts(cells=f.sig_bits ** 2, adds=f.sig_bits, muxes=f.sig_bits,
                          pj=fp_mul_energy(f) - C_ADD * (f.exp_bits + 2))
        expo = PartCounts(adds=f.exp_bits + 2)
        product_bits = f.bits
    # The addend's significant bits: an exact product has both significands' widths (2 s), a
    # rounded one its format's s; at most the accumulator's (fp32: 24 into 24, nothing idle).
    addend_sig = min(2 * f.sig_bits if d.exact_product else f.sig_bits, acc.sig_bits)
    adds, muxes, idle_adds, idle_muxes = _fp_add_counts(acc.exp_bits, acc.sig_bits, addend_sig)
    # the `first` select of the product or the sum (hw.baseline.systolic_pe), one accumulator
    # word: its significand bits below the addend's are idle as in the adder
    first_idle = acc.sig_bits - addend_sig
    return {
        "multiplier": mult,
        "exponent": expo,
        "aligner": PartCounts(muxes=muxes + acc.bits - first_idle, idle_muxes=idle_muxes + first_idle),
        "accumulator": PartCounts(adds=adds, idle_adds=idle_adds),
        "registers": _pe_registers(2 * f.bits, product_bits, 1, acc.bits),
    }


def quantize_energy(design: Design | str, stochastic: bool = False, sr_bits: int = 8) -> float:
    """Energy (pJ) to quantize one FP32 element into the design's operand format (docs/numerics.md §2)."""
    d = Design.parse(design)
    if d.kind == "float" and d.fmt == FP32:
        return 0.0
    shift_round = C_MUX * 24 * 5  # align the FP32 significand to the target grid
    if d.kind == "float" and d.fmt.exp_bits == 8:  # bf16: a plain cast
        return shift_round + C_ADD * (d.fmt.sig_bits + 1) + C_REG * (32 + d.fmt.bits)
    if d.kind == "float" and d.fmt == FP16:
        return shift_round + C_ADD * (d.fmt.sig_bits + 1) + C_REG * (32 + d.fmt.bits)
    sig = 8 if d.kind == "int" else d.fmt.sig_bits
    energy = (C_ADD * 31  # amax compare (FP32 magnitudes compare as integers)
              + fp_mul_energy(FP32)  # y = x * inv
              + shift_round + C_ADD * (sig + 1)  # round to the grid
              + C_REG * (32 + d.elem_bits))
    if d.kind == "mls":
        g = d.fmt.group_bits
        energy += C_ADD * 31 + C_ADD * (8 + g)  # group max compare, group exponent
        energy += C_MUX * 24 * max(d.fmt.max_group_exp.bit_length(), 0)  # y * 2**g
    if stochastic:
        energy += C_ADD * sr_bits + C_REG * sr_bits  # add R random bits; LFSR state
    return energy


def convert_energy(design: Design | str, k_max: int = 1) -> float:
    """Energy (pJ) to turn one accumulator into an FP32 output (docs/numerics.md §3, output converter)."""
    d = Design.parse(design)
    if d.kind == "float":
        if d.fmt in (FP32, FP16, BF16):
            return 0.0
        return fp_mul_energy(FP32) + C_REG * 32  # un-scale by S_A * S_B
    acc = resolve_acc_bits(d, k_max)
    return (C_MUX * acc * acc.bit_length()  # leading-zero count + normalize
            + C_ADD * (24 + 8)  # round to 24 bits, exponent
            + fp_mul_energy(FP32)  # times S_A * S_B
            + C_REG * (acc + 32))


def pe_area(design: Design | str, k_max: int = 1) -> float:
    """Area proxy of one whole PE (all its lanes) in adder-bit equivalents of this project's
    synthesis flow: ``pe_counts`` weighted by what one multiplier cell, mux bit and register bit
    cost there against one adder bit (``W_CELL``, ``W_SCELL``, ``W_MUX``, ``W_REG``, ``W_EREG``,
    measured on lone primitives by ``python -m sim.synth_primitives``)."""
    return sum(c.area for c in pe_counts(design, k_max).values())


def pe_area_per_mac(design: Design | str, k_max: int = 1) -> float:
    """Area proxy per MAC per cycle: ``pe_area`` over the design's lanes."""
    return pe_area(design, k_max) / Design.parse(design).lane_count


# -- whole workloads ---------------------------------------------------------------------------
COMPUTE_PARTS = PE_PARTS + ("quantize", "convert", "psum_add")
SRAM_PARTS = ("sram_a", "sram_b", "sram_c", "sram_group", "sram_psum")


@dataclass(frozen=True)
class WorkloadStats:
    """Design-independent sums over a GEMM list on one array (see ``workload_stats``)."""

    macs: int
    cycles: int
    pe_count: int
    a_reads: int
    b_reads: int
    c_writes: int
    group_reads: float  # (a_reads + b_reads) / k_chunk: group exponents streamed
    quant_nearest: int  # elements quantized with round-to-nearest (activations, weights)
    quant_stochastic: int  # elements quantized stochastically (errors)
    k_max: int
    psum_reads: int = 0  # weight-stationary only: partial sums re-read and re-written
    psum_writes: int = 0
    lanes: int = 1  # element pairs per PE beat of the array (1: scalar PEs)
    lane_slots: int | None = None  # element-pair slots streamed, padding lanes included (default: macs)

    def __post_init__(self) -> None:
        if self.lane_slots is None:
            object.__setattr__(self, "lane_slots", self.macs)
        if self.lane_slots % self.lanes or self.lane_slots < self.macs:
            raise ValueError(f"lane_slots {self.lane_slots} must be a multiple of lanes {self.lanes} "
                             f"and at least macs {self.macs}")

    @property
    def utilization(self) -> float:
        """MACs over the array's peak (``pe_count * lanes`` MACs per cycle)."""
        return self.macs / (self.cycles * self.pe_count * self.lanes)

    @property
    def beats(self) -> int:
        """PE beats summed over every output: ``lane_slots / lanes`` (``macs`` for one lane)."""
        return self.lane_slots // self.lanes

    @property
    def lane_utilization(self) -> float:
        """Useful element pairs / lane slots."""
        return self.macs / self.lane_slots


def ungrouped_gemms(gemms) -> list:
    """The GEMMs as an FP8/INT8 dot PE packs them: without group exponents nothing stops a beat,
    so the whole reduction is one chunk (``k_chunk = K``) and only each output's last beat pads."""
    from dataclasses import replace

    return [replace(g, k_chunk=g.k) for g in gemms]


def workload_stats(gemms, array) -> WorkloadStats:
    """Sum cycles and traffic of a GEMM list on an array. Each forward GEMM quantizes its two
    inputs and the error of its output (one quantization per tensor per training step; the
    backward GEMMs reuse them)."""
    from .cycles import gemm_cycles

    totals = dict(macs=0, cycles=0, a_reads=0, b_reads=0, c_writes=0, group_reads=0.0,
                  quant_nearest=0, quant_stochastic=0, psum_reads=0, psum_writes=0, lane_slots=0)
    pe_count = array.rows * array.cols
    k_max = 1
    for gemm in gemms:
        cyc = gemm_cycles(gemm, array)
        totals["macs"] += cyc.macs
        totals["cycles"] += cyc.cycles
        totals["a_reads"] += cyc.a_reads
        totals["b_reads"] += cyc.b_reads
        totals["c_writes"] += cyc.c_writes
        totals["psum_reads"] += cyc.psum_reads
        totals["psum_writes"] += cyc.psum_writes
        totals["lane_slots"] += cyc.lane_slots
        totals["group_reads"] += (cyc.a_reads + cyc.b_reads) / gemm.k_chunk
        if gemm.pass_ == "forward":
            totals["quant_nearest"] += gemm.a_elems + gemm.b_elems
            totals["quant_stochastic"] += gemm.c_elems
        k_max = max(k_max, gemm.k)
    return WorkloadStats(pe_count=pe_count, k_max=k_max, lanes=array.lanes, **totals)


def workload_energy(stats: WorkloadStats, design: Design | str, sram_kib: float = 8.0,
                    acc_k: int | None = None) -> dict[str, float]:
    """Energy (pJ) by part for a workload on a design: the compute parts of ``COMPUTE_PARTS``,
    the SRAM parts of ``SRAM_PARTS``, and ``compute``, ``sram``, ``total``.

    An exact MLS accumulator is sized for ``acc_k`` (default: the workload's largest K)."""
    d = Design.parse(design)
    if d.lane_count != stats.lanes:
        raise ValueError(f"design {d.name!r} takes {d.lane_count} element pair(s) per beat, but the workload "
                         f"was counted on an array of {stats.lanes}-lane PEs: use workload_stats(gemms, "
                         f"ArrayConfig(..., lanes={d.lane_count}))")
    k = stats.k_max if acc_k is None else acc_k
    if d.is_dot:  # every beat costs its full energy, padded lanes included
        out = {part: value * stats.beats for part, value in pe_beat_energy(d, k).items()}
    else:
        out = {part: value * stats.macs for part, value in pe_energy(d, k).items()}
    out["quantize"] = (stats.quant_nearest * quantize_energy(d)
                       + stats.quant_stochastic * quantize_energy(d, stochastic=True))
    out["convert"] = stats.c_writes * convert_energy(d, k)
    acc_bits = resolve_acc_bits(d, k)
    psum_add = fp_add_energy(d.acc) if d.kind == "float" else C_ADD * acc_bits
    out["psum_add"] = stats.psum_reads * psum_add  # WS: add the re-read partial sum
    bit = sram_bit_energy(sram_kib)
    out["sram_a"] = stats.a_reads * d.elem_bits * bit
    out["sram_b"] = stats.b_reads * d.elem_bits * bit
    out["sram_c"] = stats.c_writes * d.out_bits * bit
    out["sram_group"] = stats.group_reads * d.group_bits * bit
    out["sram_psum"] = (stats.psum_reads + stats.psum_writes) * acc_bits * bit
    out["compute"] = sum(out[p] for p in COMPUTE_PARTS)
    out["sram"] = sum(out[p] for p in SRAM_PARTS)
    out["total"] = out["compute"] + out["sram"]
    return out
