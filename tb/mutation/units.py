"""The units under mutation: one elaborated configuration of each, and the checks that run on it.

Each unit is one configuration of one of the default testbenches (``tb/test_*.py``), with the
same cocotb check routines (``tb/*_cocotb.py``) and the same parameters, so a mutant is judged by
exactly the checks that guard the RTL in ``pytest tb/``. Where the default testbench runs the
same component in several configurations, the one chosen is the one that exercises the most
logic (a narrow, saturating accumulator: its saturation and sticky flag are live, every product
still checked bit-exactly), and every check routine of that testbench that applies to it runs.
Checks are listed cheapest first: a mutant stops at the first check that kills it.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Unit", "UNITS", "unit_names", "get_unit"]


@dataclass(frozen=True)
class Unit:
    """One design under mutation.

    ``build(work_dir)`` returns ``(component, params)``: the Amaranth component and the
    ``tb_params()`` dict its cocotb checks read (``work_dir`` holds any stimulus files).
    ``checks`` are ``"module:function"`` names of ``@cocotb.test`` routines in ``tb/``.
    """

    name: str
    toplevel: str
    description: str
    testbench: str
    build: Callable[[pathlib.Path], tuple[object, dict]]
    checks: tuple[str, ...] = field(default_factory=tuple)
    #: seconds for each formal step of a survivor's equivalence check (``tb.mutation.equiv``)
    equiv_timeout: float = 60


def _mls_pe(work_dir):
    from hw.pe import MLSPE
    from model.formats import MLSFormat

    fmt = MLSFormat.parse("e2m1g3")
    acc_bits = fmt.acc_bits_exact(1) - 3  # as tb/test_pe.py::test_pe_narrow_accumulator[e2m1g3]
    pe = MLSPE(fmt, acc_bits)
    return pe, {"fmt": str(fmt), "acc_bits": acc_bits, "latency": pe.latency, "mode": "exhaustive", "seed": 2,
                "tiles": 200, "bubble": 0.2, "expect_overflow": True}


def _dot_pe(work_dir):
    from hw.pe import MLSDotPE
    from model.formats import MLSFormat

    from tb.test_dot_pe import TILE_STYLES

    fmt = MLSFormat.parse("e2m1g3")
    lanes = 4
    # as tb/test_dot_pe.py::test_dot_pe_narrow_accumulator[e2m1g3-e2m1g3-4-1]; one beat still fits
    # the accumulator, so the every-code-pair check of test_dot_pe_e2m1g3 applies bit-exactly too
    acc_bits = fmt.acc_bits_exact(2 * lanes, fmt)
    pe = MLSDotPE(fmt, fmt, lanes, acc_bits, tree_levels_per_stage=1)
    return pe, {"fmt_a": str(fmt), "fmt_w": str(fmt), "lanes": lanes, "acc_bits": acc_bits, "latency": pe.latency,
                "exact": False, "seed": 3, "tiles": 200, "bubble": 0.2, "pair_modes": ["isolated", "dense"],
                "tile_styles": TILE_STYLES + ["saturate_then_cancel"] * 4}


def _array(work_dir):
    from hw.array import SystolicArray
    from model.formats import MLSFormat

    fmt = MLSFormat.parse("e2m1g3")
    max_k = 40
    # as tb/test_array.py::test_array_narrow_accumulator (6 bits short of exact), on a 2x2 array
    arr = SystolicArray(fmt, 2, 2, acc_bits=fmt.acc_bits_exact(max_k) - 6, max_k=max_k)
    return arr, {"fmt": str(arr.fmt), "rows": 2, "cols": 2, "acc_bits": arr.acc_bits, "max_k": max_k,
                 "pe_latency": arr.pe_latency, "seed": 7, "stall_tiles": 4, "a_data_bits": arr.a_layout["last"].offset}


def _quant_unit(work_dir):
    import numpy as np

    from hw.quant_unit.config import QuantUnitConfig
    from hw.quant_unit.top import QuantUnit
    from model.formats import MLSFormat

    from tb.test_quant_unit import CONFIGS, build_cases

    # tb/test_quant_unit.py::test_quant_unit[e3m2g4_l3_n3]: a group is one word, so every bank
    # swap is back to back, and the state space is shallow enough for the equivalence checks
    fmt, lanes, gl, sr_bits, real = CONFIGS["e3m2g4_l3_n3"]
    cfg = QuantUnitConfig(MLSFormat.parse(fmt), lanes, gl, sr_bits)
    unit = QuantUnit(cfg)
    arrays, meta = build_cases(cfg, 2024, real)
    data_path = pathlib.Path(work_dir) / "cases.npz"
    np.savez(data_path, **arrays)
    return unit, {"fmt": fmt, "lanes": lanes, "group_len": gl, "sr_bits": sr_bits, "latency": unit.latency,
                  "amax_latency": unit.amax_latency, "throughput": unit.throughput, "data": str(data_path),
                  "cases": meta, "seed": 2024}


def _int8_mac(work_dir):
    from hw.baseline import Int8MAC

    return Int8MAC(), {"pe": "int8"}  # as tb/test_baseline.py::test_int8_mac


def _psum(work_dir):
    from hw.engine.psum import PartialSumBuffer

    from tb.test_psum import CONFIGS, tb_parameters, write_cases

    # tb/test_psum.py::test_psum[a6_l2_d4]: a power-of-two depth, so a row past the buffer aliases
    # a real address (a mutant that drops the range check reads or overwrites a stored row), and
    # two lanes, every (stored, row) pair in each (psum_pairs)
    acc_bits, lanes, depth = CONFIGS["a6_l2_d4"]
    path = pathlib.Path(work_dir) / "cases.json"
    write_cases(path, acc_bits, lanes, depth, seed=23)
    dut = PartialSumBuffer(acc_bits, lanes, depth)
    return dut, tb_parameters(dut, lanes, path)


UNITS = {
    "mls_pe": Unit("mls_pe", "mls_pe", "MLS PE (hw/pe/pe.py MLSPE), e2m1g3, narrow accumulator",
                   "tb/test_pe.py", _mls_pe, ("pe_cocotb:saturation_boundaries", "pe_cocotb:accumulate_tiles",
                                               "pe_cocotb:products")),
    "dot_pe": Unit("dot_pe", "mls_dot_pe", "dot-product PE (hw/pe/dot_pe.py MLSDotPE), e2m1g3, L = 4, narrow accumulator",
                   "tb/test_dot_pe.py", _dot_pe, ("dot_pe_cocotb:chunk_tiles", "dot_pe_cocotb:code_pairs")),
    "array": Unit("array", "mls_array", "systolic array (hw/array/array.py SystolicArray), e2m1g3, 2x2, narrow accumulator",
                  "tb/test_array.py", _array, ("array_cocotb:saturation_rows", "array_cocotb:single_tiles",
                                               "array_cocotb:back_to_back", "array_cocotb:stalls")),
    "quant_unit": Unit("quant_unit", "quant_unit", "quantization unit (hw/quant_unit/top.py QuantUnit), e3m2g4, 3 lanes, groups of 3",
                       "tb/test_quant_unit.py", _quant_unit, ("quant_unit_cocotb:amax_latency_and_clear",
                                                              "quant_unit_cocotb:valid_without_ready",
                                                              "quant_unit_cocotb:tensors_bit_exact"),
                       # three 24x24 multipliers and a 2-word buffer: equiv_simple alone takes ~40 s
                       equiv_timeout=240),
    "int8_mac": Unit("int8_mac", "int8_mac", "baseline INT8 MAC (hw/baseline/int8_mac.py Int8MAC)",
                     "tb/test_baseline.py", _int8_mac, ("baseline_cocotb:int8_accumulate_random",
                                                        "baseline_cocotb:int8_products_exhaustive")),
    "psum": Unit("psum", "mls_psum", "partial-sum buffer (hw/engine/psum.py PartialSumBuffer), 6-bit, 2 lanes, depth 4",
                 "tb/test_psum.py", _psum, ("psum_cocotb:psum_full_rate", "psum_cocotb:psum_stalls",
                                            "psum_cocotb:psum_pairs")),
}


def unit_names() -> list[str]:
    return list(UNITS)


def get_unit(name: str) -> Unit:
    if name not in UNITS:
        raise ValueError(f"unknown unit {name!r}; choose from {', '.join(UNITS)}")
    return UNITS[name]
