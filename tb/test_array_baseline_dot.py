# amaranth: UnusedElaboratable=no
"""Testbenches of the systolic arrays of same-lane FP8 and INT8 dot-product PEs
(``SystolicArray(None, R, C, pe="fp8-..." | "int8", lanes=L)``, docs/hardware.md), cocotb side
in array_baseline_dot_cocotb.py; selected by ``pytest tb/ -k "dot and (fp8 or int8)"``.

Every run: random tiles (K = 1, ragged K not a multiple of L, K around the drain length in
beats, K = max_k; random, sparse/subnormal/signed-zero and special codes) alone (cycle-exact
against ``hw.array.timing`` in beats), back to back, and under random stalls on ``a``, ``w``
and ``c``; bit-exact against ``model.baseline_arith`` (``fp8_dot_accumulate``: one FP32
rounding per beat; ``int8_dot_accumulate``: wrapping INT32); no spurious row after the last tile.

Default (small arrays, so Icarus stays fast; each run costs ~15 s, mostly elaboration and the
simulator's Python start): FP8 E4M3 x E5M2 at L = 4 (2x3), E4M3 at L = 9 (3x2), INT8 at L = 9
(2x3). ``MLS_SLOW=1`` (``@pytest.mark.slow``): E5M2 at L = 4, E5M2 x E4M3 at L = 9, E4M3 at
L = 16 (3x3), INT8 at L = 4 (3x3) and L = 16.
"""

import pytest

from hw.array import SystolicArray
from hw.baseline.dot_pe_factory import BaselineDotPEFactory
from hw.baseline.fp8_dot_pe import FP8DotPE, fp8_dot_pe_signature
from hw.baseline.int8_dot_pe import INT8DotPE, int8_dot_pe_signature
from tb.harness import run_cocotb


def _formats_of(pe: str) -> tuple:
    """``(kind, A format, W format)`` that the name ``fp8-<A>[-<W>]`` or ``int8`` asks for."""
    kind, *fmts = pe.split("-")
    return (kind, fmts[0], fmts[-1]) if fmts else (kind, None, None)


def _run(pe, lanes, rows, cols, seed=1, stall_tiles=4):
    probe = SystolicArray(None, rows, cols, pe=pe, lanes=lanes)
    # max_k: room for the plan's tiles of drain + 1 beats
    max_k = (probe.timing.drain_cycles + 2) * lanes + 3
    arr = SystolicArray(None, rows, cols, max_k=max_k, pe=pe, lanes=lanes)
    kind, fa, fw = arr.pe_formats
    # the formats the name asks for ("fp8-<A format>[-<W format>]"), not the factory's word for them
    assert (kind, fa, fw) == _formats_of(pe), f"pe={pe!r} built a {(kind, fa, fw)} array"
    # the array is made of the same-lane PE, with that PE's beat as its operand and its latency
    assert isinstance(arr.pe_factory, BaselineDotPEFactory) and arr.is_baseline and arr.is_dot
    assert arr.lanes == lanes and arr.timing.lanes == lanes and arr.acc_bits == 32
    pe_obj = FP8DotPE(fa, fw, lanes) if kind == "fp8" else INT8DotPE(lanes)
    sig = fp8_dot_pe_signature(fa, fw, lanes) if kind == "fp8" else int8_dot_pe_signature(lanes)
    assert arr.pe_latency == pe_obj.latency and arr.a_shape == sig.a_shape and arr.w_shape == sig.b_shape
    assert arr.a_shape.size == arr.w_shape.size == 8 * lanes   # L FP8/INT8 codes, lane 0 at the LSB end
    run_cocotb(arr, "baseline_dot_array", "array_baseline_dot_cocotb",
               params={"pe": pe, "lanes": lanes, "rows": rows, "cols": cols, "max_k": max_k,
                       "pe_latency": arr.pe_latency, "acc_bits": arr.acc_bits, "seed": seed,
                       "stall_tiles": stall_tiles, "a_data_bits": arr.a_layout["last"].offset})


@pytest.mark.parametrize("pe, lanes, rows, cols", [
    ("fp8-e4m3-e5m2", 4, 2, 3),
    ("fp8-e4m3", 9, 3, 2),
    pytest.param("fp8-e5m2", 4, 2, 2, marks=pytest.mark.slow),
    pytest.param("fp8-e5m2-e4m3", 9, 2, 2, marks=pytest.mark.slow),
    pytest.param("fp8-e4m3", 16, 3, 3, marks=pytest.mark.slow),
])
def test_array_baseline_dot_fp8(pe, lanes, rows, cols):
    _run(pe, lanes, rows, cols)


@pytest.mark.parametrize("lanes, rows, cols", [
    (9, 2, 3),
    pytest.param(4, 3, 3, marks=pytest.mark.slow),
    pytest.param(16, 2, 2, marks=pytest.mark.slow),
])
def test_array_baseline_dot_int8(lanes, rows, cols):
    _run("int8", lanes, rows, cols, seed=2)
