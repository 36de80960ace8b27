"""The beat packer and the dot-product PE of docs/numerics.md §3.1 against a plain-Python-integer reference.

The reference below chunks, pads and accumulates beat by beat on Python ints, decoding every
element code by hand; it shares no code with ``model.beats`` or ``model.arith``.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from model.arith import beat_accumulate, chunked_matmul, exact_matmul, finite_matmul
from model.beats import (
    BeatStream,
    GemmOperand,
    chunk_bounds,
    chunk_lengths,
    conv_gemms,
    conv_k_chunk,
    count_beats,
    pack_beats,
)
from model.formats import MLSFormat
from model.grouping import Grouping
from model.mls_tensor import MLSTensor
from model.quantize import quantize


def random_mls(shape, fmt, grouping, seed, g_max=None):
    gen = torch.Generator().manual_seed(seed)
    fmt = MLSFormat.parse(fmt)
    codes = torch.randint(0, fmt.code_count, shape, generator=gen)
    top = fmt.max_group_exp if g_max is None else g_max
    g = torch.randint(0, top + 1, grouping.group_shape(shape), generator=gen)
    return MLSTensor.from_codes(codes, g, 1.0, fmt, grouping)


# -- the plain-Python reference ---------------------------------------------------------------
def lines_of(operand: GemmOperand):
    """(codes, group exponents, group ids) of every line as lists of Python ints."""
    return operand.codes.tolist(), operand.group_exp.tolist(), operand.group_id.tolist()


def reference_chunks(a_ids, w_ids, k):
    """Chunk (start, end) pairs: a new chunk starts wherever any line changes group."""
    starts = [0]
    for position in range(1, k):
        if any(line[position] != line[position - 1] for line in a_ids + w_ids):
            starts.append(position)
    return list(zip(starts, starts[1:] + [k]))


def reference_beats(chunks, lanes):
    """Each beat as its list of L reduction positions (None = a zero padding lane)."""
    beats = []
    for start, end in chunks:
        for first in range(start, end, lanes):
            beats.append([position if position < end else None for position in range(first, first + lanes)])
    return beats


def decode(code, fmt):
    """(sign, significand, element shift max(e, 1) - 1) of one element code."""
    sign = code >> (fmt.exp_bits + fmt.man_bits)
    exp = (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    man = code & ((1 << fmt.man_bits) - 1)
    significand = man + (1 << fmt.man_bits if exp > 0 else 0)
    return sign, significand, max(exp, 1) - 1


def reference_dot(a: GemmOperand, w: GemmOperand, lanes, acc_bits=None):
    """Beat by beat, on Python ints: per-beat exact lane sum, one group shift, saturating add."""
    a_codes, a_g, a_ids = lines_of(a)
    w_codes, w_g, w_ids = lines_of(w)
    beats = reference_beats(reference_chunks(a_ids, w_ids, a.k), lanes)
    lo, hi = (None, None) if acc_bits is None else (-(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1)
    result, flags = [], []
    for i in range(a.lines):
        row, row_flags = [], []
        for j in range(w.lines):
            acc, overflow = 0, False
            for beat in beats:
                tree = 0
                for position in beat:
                    if position is None:
                        continue  # a zero padding lane adds 0
                    sa, siga, ea = decode(a_codes[i][position], a.fmt)
                    sw, sigw, ew = decode(w_codes[j][position], w.fmt)
                    tree += (-1) ** (sa ^ sw) * siga * sigw * 2 ** (ea + ew)
                first = beat[0]  # every lane of a beat lies in one chunk: one group exponent each
                shift = (a.fmt.max_group_exp - a_g[i][first]) + (w.fmt.max_group_exp - w_g[j][first])
                acc += tree * 2**shift
                if acc_bits is not None and not lo <= acc <= hi:
                    overflow, acc = True, min(max(acc, lo), hi)
            row.append(acc)
            row_flags.append(overflow)
        result.append(row)
        flags.append(row_flags)
    return result, flags


def test_reference_matches_python_int_matmul():
    """The reference itself, with an exact accumulator, is the §3 integer GEMM (int_value)."""
    a = random_mls((3, 11), "e2m1g3", Grouping.blocks(4), seed=1)
    w = random_mls((11, 2), "e3m2g4", Grouping.blocks(3, 0), seed=2)
    a_int = [[a.fmt.int_value(*(int(f[i, k]) for f in (a.sign, a.exp, a.man, a.group_exp_per_element())))
              for k in range(11)] for i in range(3)]
    w_int = [[w.fmt.int_value(*(int(f[k, j]) for f in (w.sign, w.exp, w.man, w.group_exp_per_element())))
              for j in range(2)] for k in range(11)]
    expected = [[sum(a_int[i][k] * w_int[k][j] for k in range(11)) for j in range(2)] for i in range(3)]
    for lanes in (1, 4, 16):
        assert reference_dot(GemmOperand.rows(a), GemmOperand.columns(w), lanes)[0] == expected


# -- exact accumulator: every L, every chunking, mixed formats ----------------------------------
PAIRS = [("e2m1g3", "e2m1g3", 4, 4), ("e2m1g3", "e3m2g4", 4, 6), ("e1m1g3", "e4m3g2", 5, 3),
         ("e0m3g2", "e2m1g0", 1, 8)]


@pytest.mark.parametrize("fmt_a, fmt_w, block_a, block_w", PAIRS)
@pytest.mark.parametrize("lanes", range(1, 18))
def test_exact_result_is_exact_matmul_for_every_l(fmt_a, fmt_w, block_a, block_w, lanes):
    a = random_mls((4, 37), fmt_a, Grouping.blocks(block_a), seed=lanes)
    w = random_mls((37, 3), fmt_w, Grouping.blocks(block_w, 0), seed=100 + lanes)
    c_int, overflow = chunked_matmul(a, w, lanes)
    assert torch.equal(c_int, exact_matmul(a, w))
    assert not overflow.any()
    expected, _ = reference_dot(GemmOperand.rows(a), GemmOperand.columns(w), lanes)
    assert c_int.tolist() == expected


@pytest.mark.parametrize("lanes", [1, 2, 3, 5, 8, 9, 16, 17])
def test_packer_matches_reference_beats(lanes):
    """Chunks from the union of both operands' group boundaries, k ascending, zero padding."""
    a = random_mls((3, 29), "e2m1g3", Grouping.blocks(6), seed=3)
    w = random_mls((29, 2), "e3m2g4", Grouping.blocks(4, 0), seed=4)
    stream = pack_beats(a, w, lanes)
    op_a, op_w = GemmOperand.rows(a), GemmOperand.columns(w)
    chunks = reference_chunks(lines_of(op_a)[2], lines_of(op_w)[2], 29)
    assert [(s, e - s) for s, e in chunks] == list(stream.chunks)
    assert [s for s, _ in chunks] == [0, 4, 6, 8, 12, 16, 18, 20, 24, 28]
    beats = reference_beats(chunks, lanes)
    assert stream.lane_k.tolist() == [[-1 if p is None else p for p in beat] for beat in beats]
    a_codes, a_g, _ = lines_of(op_a)
    w_codes, w_g, _ = lines_of(op_w)
    for b, beat in enumerate(beats):
        first = beat[0]
        assert stream.a_group[b].tolist() == [a_g[i][first] for i in range(3)]
        assert stream.w_group[b].tolist() == [w_g[j][first] for j in range(2)]
        assert stream.a_codes[b].tolist() == [[0 if p is None else a_codes[i][p] for p in beat] for i in range(3)]
        assert stream.w_codes[b].tolist() == [[0 if p is None else w_codes[j][p] for p in beat] for j in range(2)]
    assert stream.beats == len(beats) and stream.useful_pairs == 29
    assert stream.padding_lanes == lanes * len(beats) - 29
    assert stream.utilization == 29 / (lanes * len(beats))


def test_padding_and_chunk_edges():
    """K = 10 in chunks 7 + 3 at L = 4: beats [0..3] [4,5,6,pad] [7,8,9,pad]; never two chunks in a beat."""
    a = random_mls((2, 10), "e2m1g3", Grouping.blocks(7), seed=5)
    w = random_mls((10, 2), "e2m1g3", Grouping.blocks(10, 0), seed=6)
    stream = pack_beats(a, w, 4)
    assert stream.chunks == ((0, 7), (7, 3))
    assert stream.lane_k.tolist() == [[0, 1, 2, 3], [4, 5, 6, -1], [7, 8, 9, -1]]
    assert stream.beat_chunk.tolist() == [0, 0, 1]
    assert stream.a_codes[1:, :, 3].eq(0).all() and stream.w_codes[1:, :, 3].eq(0).all()
    assert stream.beats == 3 and stream.padding_lanes == 2
    # L >= every chunk: one beat per chunk
    assert pack_beats(a, w, 16).lane_k[:, 7:].eq(-1).all() and pack_beats(a, w, 16).beats == 2


# -- finite accumulators: saturation per beat ------------------------------------------------------
@pytest.mark.parametrize("lanes", [1, 3, 4, 9, 16])
@pytest.mark.parametrize("fmt_a, fmt_w", [("e2m1g3", "e2m1g3"), ("e2m1g3", "e3m2g4"), ("e3m3g3", "e3m3g3")])
def test_finite_accumulator_saturates_where_the_reference_says(lanes, fmt_a, fmt_w):
    a = random_mls((6, 40), fmt_a, Grouping.blocks(5), seed=7, g_max=1)
    w = random_mls((40, 5), fmt_w, Grouping.blocks(8, 0), seed=8, g_max=1)
    # a width that the median output just fits in, so that some outputs saturate and some do not
    acc_bits = int(exact_matmul(a, w).abs().median()).bit_length() + 1
    c_int, overflow = chunked_matmul(a, w, lanes, acc_bits)
    expected, flags = reference_dot(GemmOperand.rows(a), GemmOperand.columns(w), lanes, acc_bits)
    assert c_int.tolist() == expected and overflow.tolist() == flags
    assert overflow.any() and not overflow.all()  # the tile exercises both outcomes


def test_beat_saturation_differs_from_per_product_saturation():
    """Products +P, -P with P past the limit: one beat adds 0; a scalar PE saturates and comes back down."""
    fmt = MLSFormat.parse("e2m1g3")
    top, sign = fmt.code_count // 2 - 1, fmt.code_count // 2
    a = MLSTensor.from_codes(torch.tensor([[top, top]]), torch.zeros(1), 1.0, fmt, "tensor")
    w = MLSTensor.from_codes(torch.tensor([[top], [sign | top]]), torch.zeros(1), 1.0, fmt, "tensor")
    big = fmt.max_int**2
    assert big == 1536**2
    bits = big.bit_length()  # holds +-P/2 but not P
    per_beat, beat_flag = chunked_matmul(a, w, 2, bits)
    assert (per_beat.item(), beat_flag.item()) == (0, False)
    assert reference_dot(GemmOperand.rows(a), GemmOperand.columns(w), 2, bits) == ([[0]], [[False]])
    per_product, product_flag = finite_matmul(a, w, bits)
    hi = 2 ** (bits - 1) - 1
    assert (per_product.item(), product_flag.item()) == (max(hi - big, -hi - 1), True)
    # one lane per beat is the scalar PE again
    assert torch.equal(chunked_matmul(a, w, 1, bits)[0], per_product)


@pytest.mark.parametrize("lanes", [1, 4, 9])
def test_exact_width_is_tight_per_beat(lanes):
    """All-max same-sign operands, K = 20: the exact width never saturates, one bit fewer does."""
    fmt = MLSFormat.parse("e2m1g3")
    top = fmt.code_count // 2 - 1
    a = MLSTensor.from_codes(torch.full((1, 20), top), torch.zeros(1, 5), 1.0, fmt, Grouping.blocks(4))
    w = MLSTensor.from_codes(torch.full((20, 1), top), torch.zeros(2, 1), 1.0, fmt, Grouping.blocks(10, 0))
    bits = fmt.acc_bits_exact(20)
    acc, overflow = chunked_matmul(a, w, lanes, bits)
    assert acc.item() == 20 * fmt.max_int**2 and not overflow.item()
    acc, overflow = chunked_matmul(a, w, lanes, bits - 1)
    assert acc.item() == 2 ** (bits - 2) - 1 and overflow.item()


@pytest.mark.parametrize("lanes", [1, 5, 16])
def test_group_shifts_past_int64_saturate_exactly(lanes):
    """e2m1g6: a group shift of up to 126 bits. The §3 integers do not fit int64, the beat path's
    finite accumulator still saturates exactly (and the exact accumulator is refused)."""
    a = random_mls((3, 24), "e2m1g6", Grouping.blocks(4), seed=9)
    w = random_mls((24, 3), "e2m1g6", Grouping.blocks(6, 0), seed=10)
    for acc_bits in (40, 63):
        c_int, overflow = chunked_matmul(a, w, lanes, acc_bits)
        expected, flags = reference_dot(GemmOperand.rows(a), GemmOperand.columns(w), lanes, acc_bits)
        assert c_int.tolist() == expected and overflow.tolist() == flags
    with pytest.raises(ValueError, match=r"^beat_accumulate: exact accumulator for K=24 with e2m1g6 x e2m1g6 needs 139 bits, more than the 63"):
        chunked_matmul(a, w, lanes)


@pytest.mark.parametrize("fmt_a, fmt_w", [("e2m1g3", "e2m1g3"), ("e2m1g3", "e3m2g4"), ("e0m3g2", "e1m1g3"), ("e4m3g3", "e3m3g3")])
@pytest.mark.parametrize("lanes", [1, 4, 9, 16])
def test_tree_width_is_tight(fmt_a, fmt_w, lanes):
    """beat_sum_bits holds L lanes of the largest lane product (found by trying every code pair), and is
    the smallest two's-complement width that does."""
    fa, fw = MLSFormat.parse(fmt_a), MLSFormat.parse(fmt_w)
    largest = max(abs(decode(ca, fa)[1] * decode(cw, fw)[1] * 2 ** (decode(ca, fa)[2] + decode(cw, fw)[2]))
                  for ca in range(fa.code_count) for cw in range(fw.code_count))
    bits = fa.beat_sum_bits(lanes, fw)
    assert -(2 ** (bits - 1)) <= -lanes * largest and lanes * largest <= 2 ** (bits - 1) - 1
    assert lanes * largest > 2 ** (bits - 2) - 1  # one bit fewer does not hold it
    assert bits <= fa.acc_bits_exact(lanes, fw)  # the tree is never wider than the exact accumulator


def test_saturating_shifted_add_at_the_int64_edges():
    """The PE's wide add for every combination of edge accumulators, beat sums and group shifts up
    to 126 (past int64), against Python ints."""
    from model.arith import _saturating_shifted_add

    for acc_bits in (2, 40, 62, 63):
        lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
        accs = sorted({lo, lo + 1, -1, 0, 1, hi - 1, hi})
        totals = [-(2**20), -3, -1, 0, 1, 3, 2**20]
        shifts = [0, 1, 30, 61, 62, 63, 64, 100, 126]
        combos = [(acc, t, s) for acc in accs for t in totals for s in shifts]
        acc_t, total_t, shift_t = (torch.tensor([c[i] for c in combos]) for i in range(3))
        got, saturated = _saturating_shifted_add(acc_t, total_t, shift_t, lo, hi)
        expected = [min(max(acc + t * 2**s, lo), hi) for acc, t, s in combos]
        flags = [not lo <= acc + t * 2**s <= hi for acc, t, s in combos]
        assert got.tolist() == expected and saturated.tolist() == flags, acc_bits


# -- the three GEMMs of a conv layer ----------------------------------------------------------------
LAYERS = [  # (cin, cout, kernel, stride, padding, in size, gc)
    (3, 4, 3, 1, 1, 5, 1),
    (3, 4, 3, 2, 1, 6, 2),  # cin not a multiple of gc: a ragged last forward chunk
    (4, 4, 1, 2, 0, 5, 2),  # a 1x1 stride-2 shortcut
    (2, 6, 3, 2, 1, 5, 3),
]


def layer_tensors(cin, cout, kernel, stride, padding, size, gc, seed):
    """Quantized activation (e2m1g3), weight (e2m1g3) and error (e3m2g4, stochastic) of one training step."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, cin, size, size, generator=gen)
    weight = torch.randn(cout, cin, kernel, kernel, generator=gen)
    out = (size + 2 * padding - kernel) // stride + 1
    grad = torch.randn(2, cout, out, out, generator=gen) * torch.logspace(0, -3, cout)[None, :, None, None]
    grouping = Grouping.channel(gc)
    return (quantize(x, "e2m1g3", grouping), quantize(weight, "e2m1g3", grouping),
            quantize(grad, "e3m2g4", grouping, "stochastic", generator=gen))


@pytest.mark.parametrize("layer", LAYERS)
def test_conv_gemms_compute_the_layer(layer):
    """Scattered back, the GEMMs' exact results are the conv, its input gradient and its weight gradient."""
    cin, cout, kernel, stride, padding, size, gc = layer
    act, weight, error = layer_tensors(*layer, seed=11)
    a_int, w_int, e_int = (t.to_int().double() for t in (act, weight, error))  # small enough: exact in float64
    expected = {"forward": F.conv2d(a_int, w_int, stride=stride, padding=padding),
                "backward-data": conv2d_input(a_int.shape, w_int, e_int, stride=stride, padding=padding),
                "backward-weight": conv2d_weight(a_int, w_int.shape, e_int, stride=stride, padding=padding)}
    got = {}
    for gemm in conv_gemms(act, weight, error, stride, padding):
        c_int, overflow = chunked_matmul(gemm.a, gemm.w, 9)
        assert torch.equal(c_int, gemm.a.to_int() @ gemm.w.to_int().T) and not overflow.any()
        got[gemm.pass_] = gemm.scatter(c_int, got.get(gemm.pass_))
    assert sorted(got) == sorted(expected)
    for pass_, value in expected.items():
        assert torch.equal(got[pass_].double(), value), pass_


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("lanes", [1, 4, 9, 16])
def test_conv_chunk_structure_counts_the_packed_beats(layer, lanes):
    """count_beats(K, conv_k_chunk(...), L) equals the packer's beats for every GEMM and phase."""
    cin, cout, kernel, stride, padding, size, gc = layer
    act, weight, error = layer_tensors(*layer, seed=12)
    out = (size + 2 * padding - kernel) // stride + 1
    for gemm in conv_gemms(act, weight, error, stride, padding):
        if gemm.pass_ == "forward":
            k_chunk = conv_k_chunk("forward", taps=kernel * kernel, gc=gc)
        elif gemm.pass_ == "backward-data":
            k_chunk = conv_k_chunk("backward-data", taps=gemm.k // cout, gc=gc)
        else:
            k_chunk = conv_k_chunk("backward-weight", taps=kernel * kernel, out_positions=out * out)
        stream = pack_beats(gemm.a.select(slice(0, 8)), gemm.w.select(slice(0, 8)), lanes)
        assert tuple(length for _, length in stream.chunks) == chunk_lengths(gemm.k, k_chunk), (gemm.pass_, gemm.phase)
        assert stream.beats == count_beats(gemm.k, k_chunk, lanes)
        assert stream.utilization == gemm.k / (lanes * stream.beats)


def test_conv_chunks_by_hand():
    """ResNet-style 3x3 layer, Cin = 3 with gc = 2: forward chunks 18 + 9; backward-data (stride 2)
    phases of 4, 2, 2 and 1 taps per output channel (the weight's group changes with each output
    channel, so gc does not lengthen them); backward-weight one chunk of Ho*Wo = 9 per sample."""
    act, weight, error = layer_tensors(3, 4, 3, 2, 1, 6, 2, seed=13)
    gemms = conv_gemms(act, weight, error, 2, 1)
    assert [(g.pass_, g.phase, g.m, g.n, g.k) for g in gemms] == [
        ("forward", "", 18, 4, 27),
        ("backward-data", "p00", 18, 3, 16), ("backward-data", "p01", 18, 3, 8),
        ("backward-data", "p10", 18, 3, 8), ("backward-data", "p11", 18, 3, 4),
        ("backward-weight", "", 4, 27, 18)]
    lengths = [tuple(length for _, length in chunk_bounds(g.a, g.w)) for g in gemms]
    assert lengths == [(18, 9), (4,) * 4, (2,) * 4, (2,) * 4, (1,) * 4, (9, 9)]
    assert [pack_beats(g.a, g.w, 9).beats for g in gemms] == [3, 4, 4, 4, 4, 2]
    assert count_beats(27, 18, 9) == 3 and count_beats(131072, 1024, 16) == 8192 and count_beats(10, 7, 4) == 3


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_errors():
    a = random_mls((2, 5), "e2m1g3", Grouping.blocks(5), seed=14)
    w = random_mls((6, 2), "e2m1g3", Grouping.blocks(6, 0), seed=15)
    w5 = random_mls((5, 2), "e2m1g3", Grouping.blocks(5, 0), seed=16)
    with pytest.raises(ValueError, match=r"^lanes must be at least 1, got 0$"):
        pack_beats(a, w5, 0)
    with pytest.raises(TypeError, match=r"^lanes must be an int, not '4'$"):
        pack_beats(a, w5, "4")
    with pytest.raises(ValueError, match=r"^A has K = 5 but W has K = 6$"):
        pack_beats(a, w, 4)
    with pytest.raises(ValueError, match=r"^the A operand must be a 2-D MLSTensor \[M, K\], got an MLSTensor of shape \(1, 2, 5\)$"):
        pack_beats(random_mls((1, 2, 5), "e2m1g3", Grouping.per_tensor(), seed=1), w5, 4)
    with pytest.raises(TypeError, match=r"^the W operand must be a GemmOperand or an MLSTensor, not Tensor$"):
        pack_beats(a, torch.zeros(5, 2), 4)
    fmt = MLSFormat.parse("e2m1g3")
    zeros = torch.zeros(2, 5, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"^codes must lie in \[0, 16\) for e2m1g3, got \[0, 16\]$"):
        GemmOperand(fmt, zeros + torch.tensor([0, 0, 0, 0, 16]), zeros, zeros)
    with pytest.raises(ValueError, match=r"^group_exp must lie in \[0, 7\] for e2m1g3, got \[0, 8\]$"):
        GemmOperand(fmt, zeros, zeros + 8 * torch.eye(2, 5, dtype=torch.int64), zeros)
    with pytest.raises(ValueError, match=r"^line 1: group exponent changes at k = 3 inside one group$"):
        GemmOperand(fmt, zeros, torch.tensor([[0] * 5, [0, 0, 0, 1, 1]]), zeros)
    with pytest.raises(ValueError, match=r"^group_id has shape \(2, 4\), codes has \(2, 5\)$"):
        GemmOperand(fmt, zeros, zeros, zeros[:, :4])
    with pytest.raises(TypeError, match=r"^fmt must be an MLSFormat, not 'e2m1g3'$"):
        GemmOperand("e2m1g3", zeros, zeros, zeros)
    with pytest.raises(TypeError, match=r"^codes must hold integers, got dtype torch.float32$"):
        GemmOperand(fmt, zeros.float(), zeros, zeros)
    with pytest.raises(ValueError, match=r"^acc_bits must be an int in \[2, 63\], got 64$"):
        chunked_matmul(a, w5, 4, 64)
    with pytest.raises(ValueError, match=r"^the adder tree of e5m2g1 x e5m2g1 at L=4 needs 69 bits, more than the 63 int64 holds$"):
        chunked_matmul(random_mls((1, 4), "e5m2g1", Grouping.per_tensor(), seed=1),
                       random_mls((4, 1), "e5m2g1", Grouping.per_tensor(), seed=2), 4, 40)
    with pytest.raises(TypeError, match=r"^stream must be a BeatStream \(model.beats.pack_beats\), not tuple$"):
        beat_accumulate((a, w5), 20)
    with pytest.raises(ValueError, match=r"^k_chunk must be at least 1, got 0$"):
        count_beats(10, 0, 4)
    with pytest.raises(ValueError, match=r"^pass must be 'forward', 'backward-data' or 'backward-weight', got 'fwd'$"):
        conv_k_chunk("fwd", taps=9)
    act, weight, error = layer_tensors(3, 4, 3, 1, 1, 5, 1, seed=17)
    with pytest.raises(ValueError, match=r"^act has 4 channels but weight expects 3 "):
        conv_gemms(error, weight, error, 1, 1)
    with pytest.raises(ValueError, match=r"^error is 5x5 but a 5x5 input gives 3x3 with this kernel, stride and padding$"):
        conv_gemms(act, weight, error, 1, 0)
    assert isinstance(pack_beats(a, w5, 4), BeatStream)
