"""SystolicArray with baseline PEs (``pe="fp32" | "fp8-..." | "int8"``) under cocotb: random tiles
(K = 1, odd K, K around the drain length, K = max_k; random, sparse/subnormal and special-value
styles), back-to-back tiles and random stalls on all three streams, bit-exact against
``model.baseline_arith`` (k ascending) and cycle-exact against ``hw.array.timing``.

Default: FP32 2x3 and 4x4, FP8 E4M3 x E5M2 2x2, INT8 3x2. ``@pytest.mark.slow``: more shapes.
"""

import pytest

from hw.array import SystolicArray
from tb.harness import run_cocotb


def _run(pe, rows, cols, max_k, seed=1, stall_tiles=4, testcase=None):
    arr = SystolicArray(None, rows, cols, max_k=max_k, pe=pe)
    kind, fa, fw = arr.pe_formats
    run_cocotb(arr, "baseline_array", "array_baseline_cocotb", testcase=testcase,
               params={"pe": pe, "kind": kind, "fmt_a": fa, "fmt_w": fw, "rows": rows, "cols": cols,
                       "max_k": max_k, "pe_latency": arr.pe_latency, "seed": seed, "stall_tiles": stall_tiles})


@pytest.mark.parametrize("pe, rows, cols, max_k", [
    ("fp32", 2, 3, 40),
    ("fp32", 4, 4, 48),
    ("fp8-e4m3-e5m2", 2, 2, 33),
    ("int8", 3, 2, 40),
    pytest.param("fp8-e4m3", 3, 4, 64, marks=pytest.mark.slow),
    pytest.param("fp8-e5m2", 4, 3, 64, marks=pytest.mark.slow),
    pytest.param("fp8-e5m2-e4m3", 2, 5, 40, marks=pytest.mark.slow),
    pytest.param("int8", 8, 8, 200, marks=pytest.mark.slow),
    pytest.param("fp32", 8, 8, 150, marks=pytest.mark.slow),
    pytest.param("fp32", 1, 5, 31, marks=pytest.mark.slow),
])
def test_baseline_array(pe, rows, cols, max_k):
    _run(pe, rows, cols, max_k)
