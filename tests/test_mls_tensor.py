"""The MLSTensor container (model/mls_tensor.py): decoding, the exact integers, dequantization, pack/unpack."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor, pack_bits, unpack_bits
from model.quantize import quantize

CODEC_FORMATS = [MLSFormat(e, m, g) for e in range(5) for m in range(5) for g in (0, 3) if e + m > 0]


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


def test_to_int_refuses_formats_past_int64():
    """e2m1g6 integers reach 3 << 65 (67 bits): int64 would wrap them. e5m1g5 (63 bits) still fits,
    up to its largest integer, and matches the Python-integer reference."""
    x = torch.tensor([[6.0, -6.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match=r"^MLSTensor.to_int: e2m1g6 integers need 67 bits plus a sign, "
                                         r"more than the 63 an int64 holds$"):
        quantize(x, "e2m1g6", Grouping.blocks(2)).to_int()
    fmt = MLSFormat.parse("e5m1g5")
    assert fmt.max_int.bit_length() == 63
    codes = torch.tensor([[fmt.code_count // 2 - 1, fmt.code_count - 1, 1, 0]])  # +elem_max, -elem_max, smallest
    t = MLSTensor.from_codes(codes, torch.tensor([[0, 0]]), 1.0, fmt, Grouping.blocks(2))
    fields = zip(t.sign.reshape(-1).tolist(), t.exp.reshape(-1).tolist(), t.man.reshape(-1).tolist(),
                 t.group_exp_per_element().reshape(-1).tolist())
    assert t.to_int().reshape(-1).tolist() == [fmt.int_value(*f) for f in fields]
    assert t.to_int()[0, :2].tolist() == [fmt.max_int, -fmt.max_int]


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
