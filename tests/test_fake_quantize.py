"""fake_quantize and its fast paths (model/fake_quantize.py) are quantize().dequantize(), bit for bit."""

import numpy as np
import pytest
import torch

from model import fake_quantize as fq
from model.fake_quantize import fake_quantize
from model.formats import MLSFormat
from model.fp32 import daz, ftz
from model.grouping import Grouping
from model.mls_tensor import decode_codes
from model.quantize import group_exponent, quantize, round_to_codes, tensor_scale
from model.random_bits import random_bits_like


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


# -- the FP32-arithmetic fast path of fake_quantize -------------------------------------------
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
                fast = fq._fake_quantize_fast(x, fmt, grouping, rounding, bits, sr_bits, None)
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
    """The fast path's float64/numpy forms of steps 2 and 4 (docs/numerics.md §2) equal tensor_scale and
    group_exponent."""
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
                    fq._tensor_scale_scalar(amax, fmt)
                continue
            assert fq._tensor_scale_scalar(amax, fmt) == expected
            assert fq._tensor_scale_scalar(0.0, fmt) == (1.0, 1.0)
        group_max = torch.cat([torch.rand(500, generator=gen) * torch.exp2(torch.randint(-140, 20, (500,), generator=gen).float()),
                               torch.tensor([0.0, 1e-45, fp32.tiny, fmt.elem_max, 1.0])])
        for inv in (1.0, 3.0e-5, 7.5, 2.0 ** 60, 1.2e30):
            ref = group_exponent(ftz(daz(group_max) * torch.tensor(inv, dtype=torch.float32)), fmt)
            assert torch.equal(torch.from_numpy(fq._group_exponent_numpy(group_max.numpy(), inv, fmt)), ref)


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_fast_path_in_chunks_is_bit_identical_and_keeps_the_stream(monkeypatch, chunk):
    """Chunked along the first axis (odd chunk sizes split word pairs), the fast path gives the
    unchunked bits and draws the random bits of one random_bits_like call."""
    monkeypatch.setattr(fq, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(13)
    for grouping, shape in ((Grouping.channel(), (7, 3, 3, 3)), (Grouping.blocks(3, 0), (9, 5)), (Grouping.blocks(4), (9, 12))):
        x = torch.randn(shape, generator=gen) * torch.exp2(torch.randint(-20, 20, shape, generator=gen).float())
        for rounding in ("nearest", "stochastic"):
            torch.manual_seed(7)
            fast, after = fake_quantize(x, "e2m1g3", grouping, rounding, sr_bits=5), torch.rand(2)
            torch.manual_seed(7)
            exact, exact_after = quantize(x, "e2m1g3", grouping, rounding, sr_bits=5).dequantize(), torch.rand(2)
            assert torch.equal(fast.view(torch.int32), exact.view(torch.int32)) and torch.equal(after, exact_after)
