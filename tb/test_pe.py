# amaranth: UnusedElaboratable=no
"""PE testbenches (cocotb, bit-exact against model/): every code pair with group offsets, long
accumulations, sign mixes, and saturation with a deliberately narrow accumulator.

Default runs: e2m1g3 every code pair x every g pair (exhaustive); e3m3g3 every code pair with the
g pairs cycled through (every g pair seen 256 times) plus every g pair on the extreme codes.
``@pytest.mark.slow``: e3m3g3 exhaustive over all 2**20 (code, code, g, g) combinations.
"""

import pytest

from hw.pe import MLSPE
from model.formats import MLSFormat
from tb.harness import run_cocotb


def _run(fmt, acc_bits, mode, seed=1, tiles=200, bubble=0.2, testcase=None):
    fmt = MLSFormat.parse(fmt)
    pe = MLSPE(fmt, acc_bits)
    run_cocotb(pe, "mls_pe", "pe_cocotb", testcase=testcase,
               params={"fmt": str(fmt), "acc_bits": acc_bits, "latency": pe.latency, "mode": mode, "seed": seed,
                       "tiles": tiles, "bubble": bubble, "expect_overflow": acc_bits < fmt.acc_bits_exact(64)})


@pytest.mark.parametrize("fmt, mode", [("e2m1g3", "exhaustive"), ("e3m3g3", "cycled")])
def test_pe_exact(fmt, mode):
    """Exact accumulator for K = 2**20."""
    _run(fmt, MLSFormat.parse(fmt).acc_bits_exact(1 << 20), mode)


@pytest.mark.parametrize("fmt", ["e2m1g3", pytest.param("e3m3g3", marks=pytest.mark.slow)])
def test_pe_narrow_accumulator(fmt):
    """Narrower than one product at the extremes: saturation and the sticky flag on products and sums."""
    f = MLSFormat.parse(fmt)
    _run(fmt, f.acc_bits_exact(1) - 3, "cycled" if fmt != "e2m1g3" else "exhaustive", seed=2)


@pytest.mark.parametrize("fmt, k", [("e0m3g1", 4), pytest.param("e1m2g2", 32, marks=pytest.mark.slow)])
def test_pe_other_formats(fmt, k):
    """A fixed-point element (E = 0, no hidden bit; exact for K = 4 only, so it also saturates)
    and E = 1 (every nonzero exponent is the first binade)."""
    f = MLSFormat.parse(fmt)
    _run(fmt, f.acc_bits_exact(k), "exhaustive", seed=3, tiles=100)


@pytest.mark.slow
def test_pe_e3m3g3_exhaustive():
    f = MLSFormat.parse("e3m3g3")
    _run("e3m3g3", f.acc_bits_exact(1 << 20), "exhaustive", seed=4, tiles=2000, testcase="products")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["e2m1g3", "e3m3g3", "e4m3g3", "e2m4g3"])
def test_pe_long_random(fmt):
    f = MLSFormat.parse(fmt)
    # the golden accumulator is int64: cap at 63 bits (e4m3g3 needs 71 for K = 2**20)
    for acc_bits in (min(f.acc_bits_exact(1 << 20), 63), f.acc_bits_exact(8)):
        _run(fmt, acc_bits, "cycled", seed=5, tiles=3000, bubble=0.3, testcase="accumulate_tiles")


def test_pe_constructor_errors():
    with pytest.raises(ValueError, match=r"^acc_bits must be in \[2, 256\], got 1$"):
        MLSPE("e2m1g3", 1)
    with pytest.raises(TypeError, match=r"^acc_bits must be an int, not 3.0$"):
        MLSPE("e2m1g3", 3.0)
    with pytest.raises(ValueError, match="does not match"):
        MLSPE("fp8", 20)
    pe = MLSPE("e2m1g3", 20)
    assert pe.latency == MLSPE.LATENCY == 2 and pe.acc_bits == 20
