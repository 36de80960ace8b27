"""Exact quantization tests (model/quantize.py): zero tolerance, values on both sides of every boundary."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.fake_quantize import fake_quantize
from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor
from model.quantize import group_exponent, quantize, round_to_codes, tensor_scale
from model.random_bits import random_bits_like
from model.reference import grid_codes, group_exponent_reference, quantize_reference, round_reference

BOUNDARY_FORMATS = [MLSFormat.parse(n) for n in ("e2m1g3", "e1m1g3", "e3m3g3", "e4m3g3", "e2m3g3", "e5m2g3", "e0m3g2", "e3m0g2")]


def fp32_neighbours(value: float) -> tuple[float, float]:
    v = np.float32(value)
    return float(np.nextafter(v, np.float32(-np.inf))), float(np.nextafter(v, np.float32(np.inf)))


# -- rounding boundaries ----------------------------------------------------------------------
def boundary_cases(fmt):
    """(z, expected nearest code) on both sides of, and exactly on, every midpoint."""
    grid = grid_codes(fmt)
    cases = []
    for (lo, lo_code), (hi, hi_code) in itertools.pairwise(grid):
        mid = (lo + hi) / 2
        below, above = fp32_neighbours(float(mid))
        assert Fraction(float(np.float32(mid))) == mid  # midpoints are exact in FP32
        cases += [(below, lo_code), (above, hi_code), (float(mid), lo_code if lo_code % 2 == 0 else hi_code)]
        cases += [(float(lo), lo_code), (float(hi), hi_code)]
    top, top_code = grid[-1]
    cases += [(fp32_neighbours(float(top))[1], top_code), (float(top) * 3, top_code), (1e30, top_code)]
    return cases


@pytest.mark.parametrize("fmt", BOUNDARY_FORMATS, ids=str)
def test_nearest_rounding_at_every_boundary(fmt):
    cases = boundary_cases(fmt)
    z = torch.tensor([c[0] for c in cases], dtype=torch.float32)
    got = round_to_codes(z, fmt, "nearest").tolist()
    expected = [c[1] for c in cases]
    assert got == expected
    assert expected == [round_reference(Fraction(c[0]), fmt) for c in cases]


@pytest.mark.parametrize("fmt", BOUNDARY_FORMATS, ids=str)
def test_stochastic_rounding_matches_reference_at_boundaries(fmt):
    generator = torch.Generator().manual_seed(1)
    cases = boundary_cases(fmt)
    z = torch.tensor([c[0] for c in cases for _ in range(4)], dtype=torch.float32)
    sr_bits = 6
    bits = random_bits_like(z.shape, sr_bits, generator)
    bits[0::4] = 0
    bits[1::4] = (1 << sr_bits) - 1
    got = round_to_codes(z, fmt, "stochastic", bits, sr_bits).tolist()
    expected = [round_reference(Fraction(float(v)), fmt, "stochastic", int(r), sr_bits) for v, r in zip(z, bits)]
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(BOUNDARY_FORMATS), z=st.floats(0, 1e3, width=32, allow_subnormal=False),
       r=st.integers(0, 255), rounding=st.sampled_from(["nearest", "stochastic"]))
def test_round_to_codes_matches_scalar_reference(fmt, z, r, rounding):
    bits = torch.tensor([r]) if rounding == "stochastic" else None
    got = round_to_codes(torch.tensor([z], dtype=torch.float32), fmt, rounding, bits).item()
    assert got == round_reference(Fraction(z), fmt, rounding, r)


def test_stochastic_rounding_keeps_grid_values_and_is_unbiased():
    fmt = MLSFormat.parse("e2m1g3")
    generator = torch.Generator().manual_seed(1234)
    on_grid = fmt.grid().to(torch.float32).repeat(100)
    codes = round_to_codes(on_grid, fmt, "stochastic", random_bits_like(on_grid.shape, 8, generator))
    assert torch.equal(codes, round_to_codes(on_grid, fmt, "nearest"))
    # Between 2 and 3 (one ulp = 1): a fraction that is a multiple of 2**-8 rounds up with exactly that probability.
    n = 200_000
    for frac in (1 / 256, 0.25, 0.5, 0.75, 255 / 256):
        z = torch.full((n,), 2.0 + frac, dtype=torch.float32)
        codes = round_to_codes(z, fmt, "stochastic", random_bits_like(z.shape, 8, generator))
        up = (codes == 5).double().mean().item()  # code 5 is 3.0, code 4 is 2.0
        assert set(codes.unique().tolist()) <= {4, 5}
        sigma = (frac * (1 - frac) / n) ** 0.5
        assert abs(up - frac) < 5 * sigma


# -- group exponent ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", BOUNDARY_FORMATS, ids=str)
def test_group_exponent_edges(fmt):
    values, expected = [0.0], [fmt.max_group_exp]
    for g in range(fmt.max_group_exp + 1):
        edge = fmt.elem_max * 2.0**-g
        below, above = fp32_neighbours(edge)
        values += [edge, below, above]
        expected += [g, g, max(g - 1, 0)]
    values.append(fp32_neighbours(fmt.elem_max)[1])  # above elem_max: no g fits, g = 0 saturates
    expected.append(0)
    values.append(fmt.elem_max * 2.0 ** -(fmt.max_group_exp + 5))  # tiny group: clamp
    expected.append(fmt.max_group_exp)
    got = group_exponent(torch.tensor(values, dtype=torch.float32), fmt).tolist()
    assert got == expected
    assert expected == [group_exponent_reference(Fraction(v), fmt) for v in values]


# -- whole quantize vs the scalar reference ---------------------------------------------------
QUANTIZE_CASES = [
    ("e2m1g3", Grouping.channel(), (2, 3, 3, 3), "nearest"),
    ("e2m1g3", Grouping.channel(2), (2, 5, 2, 2), "stochastic"),
    ("e3m3g3", Grouping.channel(), (3, 4, 2, 2), "stochastic"),
    ("e4m3g3", Grouping.blocks(8), (4, 20), "nearest"),
    ("e1m1g3", Grouping.blocks(4, 0), (10, 3), "nearest"),
    ("e5m2g6", Grouping.per_tensor(), (7, 9), "stochastic"),
    ("e0m3g2", Grouping.channel(), (2, 3, 4), "nearest"),
    ("e2m3g0", Grouping.channel(), (2, 3, 4), "stochastic"),
]


@pytest.mark.parametrize("fmt_name, grouping, shape, rounding", QUANTIZE_CASES)
def test_quantize_matches_scalar_reference(fmt_name, grouping, shape, rounding):
    fmt = MLSFormat.parse(fmt_name)
    generator = torch.Generator().manual_seed(7)
    # Log-uniform magnitudes over many binades, so groups span every g and subnormal elements.
    x = torch.randn(shape, generator=generator) * torch.exp2(torch.randint(-20, 4, shape, generator=generator).float())
    x.view(-1)[::5] = 0.0
    bits = random_bits_like(shape, 8, generator) if rounding == "stochastic" else None
    q = quantize(x, fmt, grouping, rounding, bits)
    scale, group_exp, codes = quantize_reference(x, fmt, grouping, rounding, bits)
    assert q.scale == scale
    assert torch.equal(q.group_exp.to(torch.int64), group_exp)
    assert torch.equal(q.codes(), codes)


def test_group_exponent_spans_full_range_in_real_tensor():
    fmt = MLSFormat.parse("e2m1g3")
    x = torch.ones(1, 9, 2, 2) * torch.exp2(-torch.arange(9.0)).reshape(1, 9, 1, 1)
    x[0, 8] = 0
    q = quantize(x, fmt, Grouping.channel())
    assert q.group_exp.reshape(-1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 7]


@pytest.mark.parametrize("fmt_name", ["e2m1g3", "e3m3g3", "e4m3g2", "e1m1g3", "e0m3g3"])
@pytest.mark.parametrize("grouping", [Grouping.channel(), Grouping.channel(3), Grouping.per_tensor()], ids=str)
def test_grid_valued_tensor_round_trips_exactly(fmt_name, grouping):
    """Quantize -> dequantize is the identity on values S * 2**-g * elem (S a power of two)."""
    fmt = MLSFormat.parse(fmt_name)
    generator = torch.Generator().manual_seed(3)
    shape = (3, 7, 2, 3)
    codes = torch.randint(0, fmt.code_count, shape, generator=generator)
    group_shape = grouping.group_shape(shape)
    g = torch.randint(0, fmt.max_group_exp + 1, group_shape, generator=generator)
    x = MLSTensor.from_codes(codes, g, 2.0**-5, fmt, grouping).dequantize()
    x.view(-1)[0] = fmt.elem_max * 2.0**-5  # the tensor's amax sits on the top of the grid
    for rounding in ("nearest", "stochastic"):
        q = quantize(x, fmt, grouping, rounding, generator=generator)
        assert q.scale == 2.0**-5
        assert torch.equal(q.dequantize(), x)


def test_scaling_is_single_ieee_roundings():
    fmt = MLSFormat.parse("e2m1g3")
    amax = np.float32(0.7)
    scale, inv = tensor_scale(float(amax), fmt)
    assert scale == float(amax / np.float32(6.0)) and inv == float(np.float32(6.0) / amax)
    assert tensor_scale(0.0, fmt) == (1.0, 1.0)


def test_daz_and_ftz():
    fmt = MLSFormat.parse("e2m1g3")
    sub = float(np.float32(2.0**-130))
    q = quantize(torch.tensor([[sub, -sub, 0.0, 0.0]]), fmt, Grouping.blocks(4))
    assert q.scale == 1.0 and q.codes().tolist() == [[0, 0, 0, 0]]
    # y = x * inv underflows for the small element once amax is large: flushed, not rounded up.
    x = torch.tensor([[3.0e38, 1.0e-38]])
    q = quantize(x, fmt, Grouping.blocks(1))
    assert q.codes()[0, 1] == 0 and q.group_exp[0, 1] == fmt.max_group_exp


# -- errors -------------------------------------------------------------------------------------
def test_nan_inf_error_names_shape_and_count():
    x = torch.zeros(2, 3, 4, 4)
    x[0, 1, 2, 3] = float("nan")
    x[1, 0, 0, 0] = float("inf")
    x[1, 2, 0, 0] = float("-inf")
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 4\): 3 non-finite value\(s\) \(1 NaN, 2 Inf\), first at index \(0, 1, 2, 3\)"):
        quantize(x, "e2m1g3")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=torch.zeros(0, 3)), ValueError, r"empty tensor of shape \(0, 3\)"),
    (dict(x=torch.ones(2, 2, dtype=torch.int32)), TypeError, "floating-point tensor, got dtype torch.int32"),
    (dict(rounding="up"), ValueError, "rounding must be one of"),
    (dict(fmt="e9m1g3"), ValueError, r"exp_bits must be in \[0, 5\], got 9"),
    (dict(grouping=Grouping(axis=4)), ValueError, r"grouping axis 4 is out of range for a tensor of shape \(2, 3\)"),
    (dict(rounding="stochastic", random_bits=torch.zeros(3, 2, dtype=torch.int64)), ValueError, r"random_bits has shape \(3, 2\), expected \(2, 3\)"),
    (dict(rounding="stochastic", random_bits=torch.full((2, 3), 256)), ValueError, r"random_bits must lie in \[0, 2\*\*8\)"),
    (dict(random_bits=torch.zeros(2, 3, dtype=torch.int64)), ValueError, "random_bits were given but rounding is 'nearest'"),
])
def test_bad_inputs(kwargs, error, message):
    args = dict(x=torch.ones(2, 3), fmt="e2m1g3", grouping=Grouping.channel())
    args.update(kwargs)
    with pytest.raises(error, match=message):
        quantize(**args)


def test_inverse_scale_overflow_is_an_error():
    with pytest.raises(ValueError, match="overflows FP32"):
        quantize(torch.tensor([2.0e-38, 0.0]), "e5m2g3", Grouping.blocks(2))


_FP32_ANY = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_FP32_ANY, min_size=1, max_size=24),
       fmt=st.sampled_from(["e2m1g3", "e3m3g3", "e1m1g2", "e4m3g6", "e0m3g3", "e3m0g3", "e5m10g4"]),
       rounding=st.sampled_from(["nearest", "stochastic"]), block=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_quantize_matches_reference_on_arbitrary_fp32(values, fmt, rounding, block, seed):
    """Any finite FP32 values, subnormals and huge ranges included, in MX-style blocks."""
    fmt = MLSFormat.parse(fmt)
    x = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    grouping = Grouping.blocks(block)
    bits = random_bits_like(x.shape, 8, torch.Generator().manual_seed(seed)) if rounding == "stochastic" else None
    try:
        q = quantize(x, fmt, grouping, rounding, bits)
    except ValueError as error:  # only the documented inverse-scale overflow may refuse
        assert "overflows FP32" in str(error)
        return
    scale, group_exp, codes = quantize_reference(x, fmt, grouping, rounding, bits)
    assert (q.scale, q.group_exp.tolist(), q.codes().tolist()) == (scale, group_exp.tolist(), codes.tolist())
    fast = fake_quantize(x, fmt, grouping, rounding, bits)
    assert torch.equal(fast.view(torch.int32), q.dequantize().view(torch.int32))
