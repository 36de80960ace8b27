# amaranth: UnusedElaboratable=no
"""Testbenches of the systolic array of L-lane MLS dot-product PEs (``SystolicArray(...,
lanes=L)``, docs/numerics.md §3.1), cocotb side in array_dot_cocotb.py.

Every run: random tiles with random chunk boundaries and ragged chunks (lengths not a multiple
of L), alone (cycle-exact: every tile's beats and cycles against ``hw.array.timing``), back to
back (drain overlap, the interval between every tile's last beats) and under random stalls on
all three streams; one tile of each of the three GEMMs of a captured conv layer packed by
``model.beats.pack_beats``; bit-exact against ``model.arith.beat_accumulate``; no spurious row
after the last tile. L in {1, 4, 9, 16} (L = 1: the scalar ``MLSPE`` array, whose operand is
bit for bit a one-lane beat, and the one-lane dot PE of the mixed-format run), mixed formats
and narrow accumulators that saturate per beat.
"""

import pytest

from hw.array import SystolicArray
from hw.pe import MLSDotPE, MLSDotPEFactory, MLSPEFactory, beat_layout, operand_layout
from model.formats import MLSFormat
from tb.harness import run_cocotb


def _run(fmt_a, fmt_w, lanes, rows, cols, *, acc_bits=None, seed=1, stall_tiles=3, testcase=None):
    fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
    max_k = 6 * lanes + 5
    arr = SystolicArray((fa, fw), rows, cols, acc_bits=acc_bits, max_k=max_k, lanes=lanes)
    assert arr.lanes == lanes and arr.timing.lanes == lanes
    # the array's A/W operand is one beat of `lanes` pairs; at L = 1 the scalar PE's operand has the same bits
    assert arr.a_shape.size == beat_layout(fa, lanes).size and arr.w_shape.size == beat_layout(fw, lanes).size
    if lanes == 1 and fa == fw:
        assert isinstance(arr.pe_factory, MLSPEFactory) and arr.a_shape == operand_layout(fa)
        op, beat = operand_layout(fa), beat_layout(fa, 1)
        assert op["elem"].offset == beat["elems"].offset == 0 and op["elem"].shape == beat["elems"].shape.elem_shape
        assert op["g"].offset == beat["g"].offset and op["g"].shape == beat["g"].shape and op.size == beat.size
    else:
        assert isinstance(arr.pe_factory, MLSDotPEFactory)
        assert arr.pe_latency == MLSDotPE(fa, fw, lanes, arr.acc_bits).latency
    run_cocotb(arr, "mls_dot_array", "array_dot_cocotb", testcase=testcase,
               params={"fmt_a": str(fa), "fmt_w": str(fw), "lanes": lanes, "rows": rows, "cols": cols,
                       "acc_bits": arr.acc_bits, "max_k": max_k, "pe_latency": arr.pe_latency, "seed": seed,
                       "stall_tiles": stall_tiles, "narrow": acc_bits is not None,
                       "a_data_bits": arr.a_layout["last"].offset})


@pytest.mark.parametrize("lanes, rows, cols", [(1, 3, 4), (4, 3, 3), (9, 2, 3), (16, 3, 2)])
def test_array_dot_e2m1g3(lanes, rows, cols):
    """e2m1g3 with an exact accumulator at L = 1, 4, 9, 16."""
    _run("e2m1g3", "e2m1g3", lanes, rows, cols)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes, rows, cols", [
    ("e2m1g3", "e3m2g4", 9, 3, 2),
    ("e3m2g4", "e2m1g3", 1, 2, 3),   # one lane, mixed formats: the one-lane dot PE
])
def test_array_dot_mixed_formats(fmt_a, fmt_w, lanes, rows, cols):
    _run(fmt_a, fmt_w, lanes, rows, cols, seed=2)


@pytest.mark.parametrize("fmt_a, fmt_w, lanes", [("e2m1g3", "e2m1g3", 4), ("e3m2g4", "e2m1g3", 9)])
def test_array_dot_narrow_accumulator(fmt_a, fmt_w, lanes):
    """An accumulator exact for two beats of the largest products only: saturates after a beat's
    add (sticky flag per PE); extreme and cancelling tiles make per-beat and exact results differ."""
    fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
    _run(fmt_a, fmt_w, lanes, 2, 2, acc_bits=fa.acc_bits_exact(2 * lanes, fw), seed=3,
         testcase=["single_tiles", "back_to_back"])
