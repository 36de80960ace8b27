"""The quantization unit's golden host side (model/quant_stream.py) and ``model.quantize.convert``."""

import numpy as np
import pytest
import torch

from model.formats import MLSFormat
from model.lfsr import lfsr_random_bits
from model.quant_stream import (assemble_packed, from_words, host_scale, reference_amax, reference_convert,
                                stream_group_len, to_words)
from model.quantize import convert, quantize, tensor_scale


@pytest.mark.parametrize("shape, grouping, expected", [
    ((2, 4, 3, 3), "channel", 9), ((2, 4, 3, 3), "channel:2", 18), ((5, 32), "block:8", 8),
    ((2, 3, 4), "tensor", 24),
])
def test_stream_group_len(shape, grouping, expected):
    assert stream_group_len(shape, grouping) == expected


def test_stream_group_len_errors():
    with pytest.raises(ValueError, match=r"axis 1 of length 30 is not a multiple of the group block 8"):
        stream_group_len((4, 30), "block:8")
    with pytest.raises(ValueError, match=r"strided groups"):
        stream_group_len((32, 4), "block:8@0")


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_reference_convert_is_quantize(rounding):
    # the golden convert pass with the host's inv and the unit's LFSR bits is model.quantize, byte for byte
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 4, 4, generator=gen) * torch.exp2(torch.randint(-30, 5, (1, 6, 1, 1), generator=gen).float())
    x[0, 1] = 0
    lanes, gl = 4, stream_group_len(x.shape, "channel")
    scale, inv, _ = host_scale(reference_amax(x), "e2m1g3")
    bits = lfsr_random_bits(x.numel(), lanes, 11) if rounding == "stochastic" else None
    codes, g = reference_convert(x, inv, "e2m1g3", gl, rounding, bits)
    golden = quantize(x, "e2m1g3", "channel", rounding, None if bits is None else bits.reshape(x.shape))
    assert torch.equal(g, golden.group_exp.reshape(-1)) and int(g[1]) == 7
    packed = assemble_packed(scale, g.tolist(), to_words(codes, 4, lanes), "e2m1g3", lanes, x.numel())
    assert packed == golden.pack()


def test_words_roundtrip():
    values = np.arange(12) % 16
    words = to_words(values, 4, 3)
    assert words[0] == 0 | 1 << 4 | 2 << 8
    assert from_words(words, 4, 3) == values.tolist()
    with pytest.raises(ValueError, match=r"10 values do not fill whole words of 4 lanes"):
        to_words(range(10), 4, 4)


def test_convert_with_the_tensor_scale_is_quantize():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 5, generator=gen) * torch.exp2(torch.randint(-20, 20, (3, 4, 5), generator=gen).float())
    _, inv = tensor_scale(float(x.abs().max()), MLSFormat.parse("e3m2g4"))
    codes, g = convert(x, inv, "e3m2g4", "block:5")
    golden = quantize(x, "e3m2g4", "block:5")
    assert torch.equal(codes, golden.codes()) and torch.equal(g, golden.group_exp)


def test_convert_refuses_a_bad_inv_and_an_overflowing_product():
    x = torch.tensor([[3.0e38, 1.0]])
    for inv in (0.0, -1.0, float("inf"), float("nan"), 0.1):  # 0.1 is not an FP32 value
        with pytest.raises(ValueError, match=r"inv must be a positive finite FP32 value, got"):
            convert(x, inv, "e2m1g3", "block:2")
    with pytest.raises(ValueError, match=r"x \* inv overflows FP32: amax 3e\+38 times inv 2 exceeds 3.40282e\+38"):
        convert(x, 2.0, "e2m1g3", "block:2")


def test_assemble_packed_refuses_a_short_stream():
    with pytest.raises(ValueError, match=r"2 words of 4 lanes hold 8 codes, expected 12"):
        assemble_packed(1.0, [0, 0, 0], [0, 0], "e2m1g3", 4, 12)
    with pytest.raises(ValueError, match=r"12 elements are not a whole number of groups for 5 group exponents"):
        assemble_packed(1.0, [0] * 5, [0, 0, 0], "e2m1g3", 4, 12)
