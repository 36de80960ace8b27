# amaranth: UnusedElaboratable=no
"""Systolic-array testbenches (cocotb): random GEMM tiles of several shapes (K = 1, odd K, K at
the configured maximum), back-to-back tiles, random stalls on all three streams, and a tile of a
real conv layer; bit-exact against model/ and cycle-exact against ``hw.array.timing``.

Parametrized over two formats and two array sizes (plus a narrow, saturating accumulator).
``@pytest.mark.slow``: larger arrays and more stall patterns.
"""

import pytest

from hw.array import SystolicArray
from model.formats import MLSFormat
from tb.harness import run_cocotb


def _run(fmt, rows, cols, max_k, acc_bits=None, seed=1, stall_tiles=4, testcase=None):
    arr = SystolicArray(fmt, rows, cols, acc_bits=acc_bits, max_k=max_k)
    run_cocotb(arr, "mls_array", "array_cocotb", testcase=testcase,
               params={"fmt": str(arr.fmt), "rows": rows, "cols": cols, "acc_bits": arr.acc_bits, "max_k": max_k,
                       "pe_latency": arr.pe_latency, "seed": seed, "stall_tiles": stall_tiles})


@pytest.mark.parametrize("fmt, rows, cols, max_k", [
    ("e2m1g3", 2, 3, 40),
    ("e3m3g3", 4, 4, 64),
    pytest.param("e2m1g3", 8, 8, 300, marks=pytest.mark.slow),
    pytest.param("e3m3g3", 3, 8, 100, marks=pytest.mark.slow),
])
def test_array(fmt, rows, cols, max_k):
    _run(fmt, rows, cols, max_k)


def test_array_narrow_accumulator():
    """An accumulator 6 bits short of exact for max_k: saturating sums and per-PE overflow flags."""
    f = MLSFormat.parse("e2m1g3")
    _run("e2m1g3", 3, 2, 50, acc_bits=f.acc_bits_exact(50) - 6, seed=7, testcase=["single_tiles", "back_to_back", "saturation_rows"])


def test_array_constructor_errors():
    with pytest.raises(ValueError, match=r"^rows must be in \[1, 64\], got 0$"):
        SystolicArray("e2m1g3", 0, 4)
    with pytest.raises(TypeError, match=r"^cols must be an int, not '4'$"):
        SystolicArray("e2m1g3", 4, "4")
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        SystolicArray("e2m1g3", 4, 4, acc_bits=1)
    arr = SystolicArray("e2m1g3", 8, 8)
    assert arr.acc_bits == MLSFormat.parse("e2m1g3").acc_bits_exact(1 << 20) and arr.exact
    assert arr.timing.tile_cycles(100) == 100 + 8 + 8 + arr.pe_latency - 1
