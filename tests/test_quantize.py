"""Exact quantization tests (DESIGN §2): zero tolerance, values on both sides of every boundary."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import (
    MLSTensor,
    decode_codes,
    fake_quantize,
    group_exponent,
    pack_bits,
    quantize,
    random_bits_like,
    round_to_codes,
    tensor_scale,
    unpack_bits,
)
from model.reference import grid_codes, group_exponent_reference, quantize_reference, round_reference

CODEC_FORMATS = [MLSFormat(e, m, g) for e in range(5) for m in range(5) for g in (0, 3) if e + m > 0]
BOUNDARY_FORMATS = [MLSFormat.parse(n) for n in ("e2m1g3", "e1m1g3", "e3m3g3", "e4m3g3", "e2m3g3", "e5m2g3", "e0m3g2", "e3m0g2")]


def fp32_neighbours(value: float) -> tuple[float, float]:
    v = np.float32(value)
    return float(np.nextafter(v, np.float32(-np.inf))), float(np.nextafter(v, np.float32(np.inf)))


# -- encode/decode --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", CODEC_FORMATS, ids=str)
def test_every_code_decodes_and_reencodes(fmt):
    """All codes (both signs) as a tensor quantize back to themselves, S_t = 1 and g = 0."""
    codes = torch.arange(fmt.code_count)
    values = MLSTensor.from_codes(codes, torch.zeros(1, dtype=torch.int64), 1.0, fmt, Grouping.per_tensor()).dequantize()
    q = quantize(values, fmt, Grouping.per_tensor())
    assert q.scale == 1.0 and q.group_exp.tolist() == [0]
    negative_zero = 1 << (fmt.exp_bits + fmt.man_bits)
    expected = torch.where(codes == negative_zero, torch.zeros_like(codes), codes)  # zeros are canonical +0
    assert torch.equal(q.codes(), expected)
    assert torch.equal(q.dequantize(), values)


@pytest.mark.parametrize("fmt", CODEC_FORMATS, ids=str)
def test_decode_matches_scalar_reference(fmt):
    codes = torch.arange(fmt.code_count)
    t = MLSTensor.from_codes(codes, torch.zeros(1, dtype=torch.int64), 1.0, fmt, Grouping.per_tensor())
    width = fmt.exp_bits + fmt.man_bits
    for code, value in zip(codes.tolist(), t.elements().tolist()):
        sign, rest = code >> width, code & ((1 << width) - 1)
        assert Fraction(value) == fmt.decode_fraction(sign, rest >> fmt.man_bits, rest & ((1 << fmt.man_bits) - 1))


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


# -- container views and bit layout -----------------------------------------------------------
@pytest.mark.parametrize("fmt_name", ["e2m1g3", "e3m3g3", "e1m1g0", "e4m3g6", "e5m10g4", "e0m3g2"])
@pytest.mark.parametrize("shape, grouping", [((3, 5, 2, 3), Grouping.channel()), ((7, 13), Grouping.blocks(4)), ((1,), Grouping.per_tensor())])
def test_pack_unpack_round_trip(fmt_name, shape, grouping):
    fmt = MLSFormat.parse(fmt_name)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    q = quantize(x, fmt, grouping, "stochastic", generator=torch.Generator().manual_seed(12))
    data = q.pack()
    assert len(data) == MLSTensor.packed_size(shape, fmt, grouping)
    back = MLSTensor.unpack(data, shape, fmt, grouping)
    assert back.scale == q.scale
    assert torch.equal(back.codes(), q.codes()) and torch.equal(back.group_exp, q.group_exp)
    assert torch.equal(back.dequantize(), q.dequantize())


def test_pack_bit_layout_by_hand():
    """e2m1g3: 3-bit group exponents then 4-bit codes, each stream LSB-first, byte-padded."""
    fmt = MLSFormat.parse("e2m1g3")
    codes = torch.tensor([[0x3, 0xC, 0x7]])  # 1.5, -2, 6 ... as codes
    g = torch.tensor([[5]])
    t = MLSTensor.from_codes(codes, g, 0.5, fmt, Grouping.blocks(3))
    data = t.pack()
    assert data[:4] == np.float32(0.5).tobytes()
    assert data[4:] == bytes([0b101, 0xC3, 0x07])
    # 1 | 2 << 3 | 3 << 6 | 4 << 9 | 5 << 12 = 0x58D1
    assert pack_bits(torch.tensor([1, 2, 3, 4, 5]), 3) == bytes([0xD1, 0x58])


@given(width=st.integers(1, 16), values=st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=40))
def test_pack_bits_matches_integer_reference(width, values):
    values = [v % (1 << width) for v in values]
    expected_int = sum(v << (i * width) for i, v in enumerate(values))
    n_bytes = -(-len(values) * width // 8)
    assert pack_bits(torch.tensor(values), width) == expected_int.to_bytes(n_bytes, "little")
    assert unpack_bits(expected_int.to_bytes(n_bytes, "little"), width, len(values)).tolist() == values


def test_to_int_matches_scalar_reference_and_dequantize():
    fmt = MLSFormat.parse("e3m3g3")
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(5))
    q = quantize(x, fmt, Grouping.channel())
    ints = q.to_int().reshape(-1).tolist()
    fields = zip(q.sign.reshape(-1).tolist(), q.exp.reshape(-1).tolist(), q.man.reshape(-1).tolist(),
                 q.group_exp_per_element().reshape(-1).tolist())
    assert ints == [fmt.int_value(*f) for f in fields]
    ints = q.to_int()
    as_fp32 = (ints.double() * 2.0**-fmt.lsb_exponent).float()  # exact: at most M+1 significant bits
    assert torch.equal(as_fp32 * torch.tensor(q.scale, dtype=torch.float32), q.dequantize())


def test_dequantize_counts_underflows():
    fmt = MLSFormat.parse("e2m1g3")
    # 0.5 * 2**-7 * 2**-120 = 2**-128 is subnormal and flushed; 6 * 2**-127 stays normal.
    t = MLSTensor.from_codes(torch.tensor([[1, 7]]), torch.tensor([[7]]), 2.0**-120, fmt, Grouping.blocks(2))
    values, flushed = t.dequantize(return_underflows=True)
    assert flushed == 1 and values.tolist() == [[0.0, 6 * 2.0**-127]]


def test_container_validation():
    fmt = MLSFormat.parse("e2m1g3")
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\) for e2m1g3"):
        MLSTensor.from_codes(torch.tensor([16]), torch.tensor([0]), 1.0, fmt, Grouping.per_tensor())
    with pytest.raises(ValueError, match=r"group_exp values must lie in \[0, 7\]"):
        MLSTensor.from_codes(torch.tensor([1]), torch.tensor([8]), 1.0, fmt, Grouping.per_tensor())
    with pytest.raises(ValueError, match="scale must be a positive finite FP32 value"):
        MLSTensor.from_codes(torch.tensor([1]), torch.tensor([0]), 0.1, fmt, Grouping.per_tensor())
    with pytest.raises(ValueError, match=r"packed data has 3 bytes, expected 6"):
        MLSTensor.unpack(b"abc", (2,), fmt, Grouping.per_tensor())


# -- the fast training path is the integer path, bit for bit ---------------------------------
@pytest.mark.parametrize("fmt_name", ["e2m1g3", "e3m3g3", "e4m3g3", "e5m2g3", "e2m3g0", "e1m1g3", "e5m10g4", "e0m3g2", "e3m0g2"])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("grouping", [Grouping.channel(), Grouping.blocks(16), Grouping.per_tensor()], ids=str)
def test_fake_quantize_is_bit_identical_to_quantize_dequantize(fmt_name, rounding, grouping):
    gen = torch.Generator().manual_seed(31)
    shape = (4, 16, 5, 5)
    x = torch.randn(shape, generator=gen) * torch.exp2(torch.randint(-30, 10, shape, generator=gen).float())
    x.view(-1)[::7] = 0.0
    # Exact ties of the e2m1 grid after scaling (amax 6 keeps S_t = 1): 0.25, 1.25, 2.5, 5.
    x.view(-1)[:5] = torch.tensor([6.0, 0.25, 1.25, 2.5, -5.0])
    bits = random_bits_like(shape, 8, gen) if rounding == "stochastic" else None
    fast = fake_quantize(x, fmt_name, grouping, rounding, bits)
    exact = quantize(x, fmt_name, grouping, rounding, bits).dequantize()
    assert torch.equal(fast.view(torch.int32), exact.view(torch.int32))


@pytest.mark.parametrize("fmt_name", ["e2m1g3", "e3m3g3", "e2m3g2", "e4m3g3"])
@pytest.mark.parametrize("grouping", ["tensor", "row"])
def test_fake_quantize_ties_to_even(fmt_name, grouping):
    """Every midpoint of the grid, in a tensor whose amax is elem_max (S_t = 1, g = 0): exact ties."""
    fmt = MLSFormat.parse(fmt_name)
    grid = fmt.grid()
    midpoints = ((grid[1:] + grid[:-1]) / 2).to(torch.float32)
    row = torch.cat([torch.tensor([fmt.elem_max]), midpoints, -midpoints])
    grouping = Grouping.per_tensor() if grouping == "tensor" else Grouping.blocks(row.numel())
    x = row.repeat(3, 1)
    fast = fake_quantize(x, fmt, grouping)
    exact = quantize(x, fmt, grouping).dequantize()
    assert torch.equal(fast, exact)
    codes = round_to_codes(midpoints, fmt)
    assert torch.all(codes % 2 == 0)  # ties land on even codes
    assert torch.equal(fast[0, 1:1 + len(midpoints)], decode_codes(codes, fmt))


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


# -- the FP32-arithmetic fast path of fake_quantize and the split random draws -------------------
def test_random_bits_like_is_the_torch_randint_stream():
    """Split 64-bit draws give torch.randint's values element for element and leave the generator
    where randint leaves it (odd sizes too), for the global and for a given generator."""
    for sr_bits in (1, 5, 8, 13, 24):
        for shape in ((1,), (7,), (2, 3, 3), (4, 6, 5, 5), (3, 64)):
            torch.manual_seed(sr_bits)
            ref, ref_after = torch.randint(0, 1 << sr_bits, shape, dtype=torch.int32), torch.rand(3)
            torch.manual_seed(sr_bits)
            bits, after = random_bits_like(shape, sr_bits), torch.rand(3)
            assert bits.dtype == torch.int32 and torch.equal(bits, ref) and torch.equal(after, ref_after)
            g_ref, g = torch.Generator().manual_seed(99), torch.Generator().manual_seed(99)
            ref = torch.randint(0, 1 << sr_bits, shape, dtype=torch.int32, generator=g_ref)
            assert torch.equal(random_bits_like(shape, sr_bits, g), ref)
            assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=g_ref))


def _edge_tensors(shape, gen):
    x = torch.randn(shape, generator=gen) * torch.exp2(torch.randint(-40, 40, shape, generator=gen).float())
    x.view(-1)[::5] = 0.0
    x.view(-1)[1::9] = -0.0
    yield x
    x = torch.randn(shape, generator=gen)
    x[0] = 0.0  # all-zero groups
    x.view(-1)[2::3] = 1e-42  # FP32 subnormals (DAZ)
    yield x
    yield torch.randint(-24, 25, shape, generator=gen).float() / 4  # exact ties of fine grids
    yield torch.randn(shape, generator=gen) * 2.0 ** -120  # tiny scale
    yield torch.randn(shape, generator=gen) * 2.0 ** 100  # huge scale
    yield -torch.zeros(shape)


@pytest.mark.parametrize("fmt_name", ["e2m1g3", "e4m3g3", "e5m10g4", "e2m3g0", "e1m1g3", "e0m3g2", "e3m0g2", "e0m1g0"])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_fast_path_is_bit_identical_on_edge_cases(fmt_name, rounding):
    """``_fake_quantize_fast`` (grid values in FP32 arithmetic) equals quantize().dequantize() bit
    for bit wherever it runs, and runs on ordinary tensors; M = 0 nearest is left to the code path."""
    from model import quantize as qmod

    fmt = MLSFormat.parse(fmt_name)
    gen = torch.Generator().manual_seed(41)
    used = 0
    for grouping, shape in ((Grouping.channel(), (3, 8, 4, 6)), (Grouping.blocks(4), (5, 12)),
                            (Grouping.blocks(6, 0), (12, 3)), (Grouping.per_tensor(), (2, 3, 5))):
        for x in _edge_tensors(shape, gen):
            for sr_bits in ((8,) if rounding == "nearest" else (1, 8, 21)):
                bits = random_bits_like(shape, sr_bits, gen) if rounding == "stochastic" else None
                try:
                    exact = quantize(x, fmt, grouping, rounding, bits, sr_bits=sr_bits).dequantize()
                except ValueError as error:  # the documented inverse-scale overflow: both refuse
                    assert "overflows FP32" in str(error)
                    with pytest.raises(ValueError, match="overflows FP32"):
                        fake_quantize(x, fmt, grouping, rounding, bits, sr_bits=sr_bits)
                    continue
                fast = qmod._fake_quantize_fast(x, fmt, grouping, rounding, bits, sr_bits, None)
                if fast is not None:
                    used += 1
                    assert torch.equal(fast.view(torch.int32), exact.view(torch.int32)), (grouping, sr_bits)
                public = fake_quantize(x, fmt, grouping, rounding, bits, sr_bits=sr_bits)
                assert torch.equal(public.view(torch.int32), exact.view(torch.int32))
    if fmt.man_bits == 0 and rounding == "nearest":
        assert used == 0
    else:
        assert used >= 12
    # Drawing its own bits, the fast path replays the stream random_bits_like gives.
    x = torch.randn(4, 8, 3, 3, generator=gen)
    torch.manual_seed(5)
    fast = fake_quantize(x, fmt, Grouping.channel(), rounding)
    torch.manual_seed(5)
    exact = quantize(x, fmt, Grouping.channel(), rounding).dequantize()
    assert torch.equal(fast.view(torch.int32), exact.view(torch.int32))


def test_fast_path_scalar_helpers_match_the_step_functions():
    """The fast path's float64/numpy forms of §2.2 and §2.4 equal tensor_scale and group_exponent."""
    from model import quantize as qmod

    gen = torch.Generator().manual_seed(8)
    fp32 = torch.finfo(torch.float32)
    for fmt in (MLSFormat.parse(n) for n in ("e2m1g3", "e4m3g3", "e5m2g3", "e0m3g2", "e3m0g6", "e5m10g4")):
        amaxes = torch.cat([torch.rand(2000, generator=gen) * torch.exp2(torch.randint(-126, 127, (2000,), generator=gen).float()),
                            torch.tensor([fp32.tiny, fp32.max, 1.0, fmt.elem_max, fmt.elem_max / fp32.max,
                                          float(np.nextafter(np.float32(fmt.elem_max / fp32.max), np.float32(1)))])])
        for amax in amaxes.tolist():
            if amax < fp32.tiny:
                continue
            try:
                expected = tensor_scale(amax, fmt)
            except ValueError:
                with pytest.raises(ValueError, match="overflows FP32"):
                    qmod._tensor_scale_scalar(amax, fmt)
                continue
            assert qmod._tensor_scale_scalar(amax, fmt) == expected
            assert qmod._tensor_scale_scalar(0.0, fmt) == (1.0, 1.0)
        group_max = torch.cat([torch.rand(500, generator=gen) * torch.exp2(torch.randint(-140, 20, (500,), generator=gen).float()),
                               torch.tensor([0.0, 1e-45, fp32.tiny, fmt.elem_max, 1.0])])
        for inv in (1.0, 3.0e-5, 7.5, 2.0 ** 60, 1.2e30):
            ref = group_exponent(qmod.ftz(qmod.daz(group_max) * torch.tensor(inv, dtype=torch.float32)), fmt)
            assert torch.equal(torch.from_numpy(qmod._group_exponent_numpy(group_max.numpy(), inv, fmt)), ref)


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_fast_path_in_chunks_is_bit_identical_and_keeps_the_stream(monkeypatch, chunk):
    """Chunked along the first axis (odd chunk sizes split word pairs), the fast path gives the
    unchunked bits and draws the random bits of one random_bits_like call."""
    from model import quantize as qmod

    monkeypatch.setattr(qmod, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(13)
    for grouping, shape in ((Grouping.channel(), (7, 3, 3, 3)), (Grouping.blocks(3, 0), (9, 5)), (Grouping.blocks(4), (9, 12))):
        x = torch.randn(shape, generator=gen) * torch.exp2(torch.randint(-20, 20, shape, generator=gen).float())
        for rounding in ("nearest", "stochastic"):
            torch.manual_seed(7)
            fast, after = fake_quantize(x, "e2m1g3", grouping, rounding, sr_bits=5), torch.rand(2)
            torch.manual_seed(7)
            exact, exact_after = quantize(x, "e2m1g3", grouping, rounding, sr_bits=5).dequantize(), torch.rand(2)
            assert torch.equal(fast.view(torch.int32), exact.view(torch.int32)) and torch.equal(after, exact_after)
