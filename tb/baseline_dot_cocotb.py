"""cocotb tests of the same-lane dot-product baselines (see test_baseline_dot.py), bit-exact
against ``model.baseline_arith`` (``fp8_dot_mac``, ``fp32_add_exact``, ``int8_dot_mac``).

PE tests (``FP8DotPE``, ``INT8DotPE``; one beat of L operand pairs per cycle):

- code_pairs: one-beat tiles (first = last); beat n's ``result`` is checked ``latency`` cycles
  later. ``pair_mode="every_lane"``: lane 0 walks through every code pair, every other lane
  through its own seeded permutation of all pairs, so every lane sees every pair beside busy
  neighbours (65,536 beats). ``"once"``: a seeded permutation of all pairs fills the lanes of
  65,536 / L beats, so every pair is seen once, in a random lane, beside random pairs.
- chunk_tiles: back-to-back tiles of 1..12 beats with random bubbles (valid = 0, garbage
  operands) in several styles: uniform codes (NaN / Inf codes included), finite codes, lanes
  whose products cancel exactly or up to one step, a large first beat followed by tiny products
  (the accumulator dwarfs them), constructed ties at the rounding, and a tile that must differ
  from lane-by-lane rounding. Every ``done`` shows the tile's golden sum on ``result``. Every
  cycle checks the systolic forwarding (``a_out``, ``b_out``, ``ctl_out`` one cycle later).
- int8_wraps: one long tile of (-128)(-128) products through the 2^31 wrap.

Adder test (``FP32WideAdder`` alone, combinational): wide_add_vectors drives arbitrary FP32
accumulators (zeros, DAZ subnormals, the smallest normals, every binade, Inf, NaN) against
sums of random width, exact cancellations, both sides of the "acc dwarfs the sum" shortcut and
of the sticky (acc below the window) boundary, constructed ties, and the lane flags.
"""

from __future__ import annotations

import random
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from model import baseline_arith as ba
from tb.harness import tb_params

P = tb_params()
VALID, FIRST, LAST = 1, 2, 4
KIND = P.get("kind", "fp8")


def _f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


# -- operands ---------------------------------------------------------------------------------

class _Beats:
    """Packing, golden model and operand styles of the PE under test."""

    def __init__(self):
        self.lanes, self.latency = P["lanes"], P["latency"]
        self.rng = random.Random(P.get("seed", 1))
        if KIND == "fp8":
            self.fa, self.fw = ba.fp8_format(P["fmt_a"]), ba.fp8_format(P["fmt_w"])
        self.codes = 256

    def pack(self, lanes: list[int]) -> int:
        """lane l at bits [8l, 8l + 8): the ArrayLayout of 8-bit elements (codes / INT8 two's complement)."""
        word = 0
        for lane, value in enumerate(lanes):
            word |= (value & 0xFF) << (8 * lane)
        return word

    def code(self, index: int) -> int:
        """Operand ``index`` in [0, 256) as the value the golden model takes."""
        return index if KIND == "fp8" else index - 128

    def beat(self, acc, a, w, first):
        if KIND == "fp8":
            return ba.fp8_dot_mac(acc, a, w, self.fa, self.fw, first=first)
        return int(ba.int8_dot_mac(acc, a, w, first=first))

    def to_result(self, raw: int) -> int:
        return raw if KIND == "fp8" else _signed(raw, 32)

    # styles of one beat: (a lanes, w lanes)
    def uniform(self):
        r = self.rng
        return [self.code(r.randrange(256)) for _ in range(self.lanes)], [self.code(r.randrange(256)) for _ in range(self.lanes)]

    def finite(self):
        if KIND != "fp8":
            return self.uniform()
        r = self.rng
        return ([r.randrange(0x78) | r.randrange(2) << 7 for _ in range(self.lanes)],
                [r.randrange(0x78) | r.randrange(2) << 7 for _ in range(self.lanes)])

    def cancel(self):
        """Pairs (a, w) and (-a, w): the beat's products cancel, exactly or but for one step."""
        a, w = self.finite()
        for lane in range(1, self.lanes, 2):
            a[lane], w[lane] = self.negate(a[lane - 1]), w[lane - 1]
        if self.rng.random() < 0.5:
            lane = self.rng.randrange(self.lanes)
            a[lane] = a[lane] ^ 1 if KIND == "fp8" else max(-128, min(127, a[lane] + 1))
        return a, w

    def negate(self, x):
        return x ^ 0x80 if KIND == "fp8" else (-x if x != -128 else 127)

    def tiny(self):
        """FP8: subnormal codes only (products down to 2^lsb); INT8: -1, 0, 1."""
        r = self.rng
        if KIND == "fp8":
            pick = lambda: r.randrange(8) | r.randrange(2) << 7          # e = 0
            return [pick() for _ in range(self.lanes)], [pick() for _ in range(self.lanes)]
        return [r.randrange(-1, 2) for _ in range(self.lanes)], [r.randrange(-1, 2) for _ in range(self.lanes)]

    def large(self):
        """FP8: the largest finite exponents; INT8: +-127/-128."""
        r = self.rng
        if KIND == "fp8":
            top = lambda fmt: ((fmt.max_exp_field - 1) << fmt.man_bits) | r.randrange(1 << fmt.man_bits) | r.randrange(2) << 7
            return [top(self.fa) for _ in range(self.lanes)], [top(self.fw) for _ in range(self.lanes)]
        return [r.choice([127, -128]) for _ in range(self.lanes)], [r.choice([127, -128]) for _ in range(self.lanes)]

    def zeros(self):
        return [0] * self.lanes, [0] * self.lanes

    def signed_zeros(self):
        """FP8: every product a zero of random sign (±0 times finite codes): a tile of these is
        -0 only if every lane is -0. INT8: zeros times random values."""
        r = self.rng
        a = [r.choice([0x00, 0x80]) if KIND == "fp8" else 0 for _ in range(self.lanes)]
        w = self.finite()[1]
        return (a, w) if r.random() < 0.5 else (w, a)    # finite codes < 0x78 are finite in both formats


def _fp8_value_code(fmt, value: float) -> int:
    """The FP8 code of an exactly representable positive ``value``."""
    for code in range(0x80):
        if ba.fp8_decode([code], fmt)[0] == value:
            return code
    raise AssertionError(f"{value} is not an {fmt} value")


def _tie_tiles(b: _Beats) -> list[list[tuple]]:
    """Tiles whose last beat lands exactly halfway between two FP32 numbers (FP8 PEs).

    Beat 1 builds acc = 2^k (1 + 2^-23) (odd significand) or 2^k (even), from one lane of a
    large product and the smallest products (2^lsb each); beat 2 adds half an ulp, 2^lsb.
    A tie rounds to even: odd -> up, even -> stays. With lanes to spare, beat 2 also shows a
    tie that appears only in the exact sum of two lanes that each round away alone.
    """
    lsb = ba.fp8_dot_product_lsb(b.fa, b.fw)
    tiny_a, tiny_w = 0x01, 0x01                       # smallest subnormals: product 2^lsb
    k = lsb + 24                                      # ulp(2^k) = 2^(k - 23) = 2 * 2^lsb
    # the large product 2^k = x * y with x, y powers of two of the two formats
    ea = min(k // 2, int(b.fa.max_finite).bit_length() - 1)
    x, y = 2.0 ** ea, 2.0 ** (k - ea)
    big_a, big_w = _fp8_value_code(b.fa, x), _fp8_value_code(b.fw, y)
    zero = [0] * b.lanes
    tiles = []
    for odd in (True, False):
        if b.lanes >= 3:
            a1, w1 = zero.copy(), zero.copy()
            a1[0], w1[0] = big_a, big_w
            if odd:                                    # + 2 * 2^lsb = one ulp
                a1[1], w1[1], a1[2], w1[2] = tiny_a, tiny_w, tiny_a, tiny_w
            beats = [(a1, w1)]
        else:                                          # L < 3: one beat per term
            beats = [([big_a] + zero[1:], [big_w] + zero[1:])]
            if odd:
                beats.append(([tiny_a] + zero[1:], [0x02] + zero[1:]))   # 2^lsb * 2 = one ulp
        a2, w2 = zero.copy(), zero.copy()
        a2[0], w2[0] = tiny_a, tiny_w                   # half an ulp
        tiles.append(beats + [(a2, w2)])
    if b.lanes >= 2:
        # acc = 2^(k+1) (ulp 4 * 2^lsb): two lanes of one 2^lsb each are a tie together (to even:
        # stays), two plus a third a tie-and-a-bit (up); lane by lane each would round away.
        a1, w1 = zero.copy(), zero.copy()
        a1[0], w1[0] = big_a, _fp8_value_code(b.fw, 2 * y)
        for extra in (2, 3):
            a2, w2 = zero.copy(), zero.copy()
            for lane in range(min(extra, b.lanes)):
                a2[lane], w2[lane] = tiny_a, tiny_w
            tiles.append([(a1, w1), (a2, w2)])
    return tiles


def _tiles(b: _Beats, count: int) -> list[list[tuple]]:
    styles = ["uniform", "finite", "cancel", "dwarf", "mixed", "signed_zeros"]
    tiles = _tie_tiles(b) if KIND == "fp8" else []
    for i in range(count):
        style = styles[i % len(styles)]
        n = b.rng.randrange(1, 13)
        if style == "dwarf":     # a large first beat, then tiny products that (mostly) round away
            beats = [b.large()] + [b.tiny() for _ in range(n)]
        elif style == "mixed":
            beats = [getattr(b, b.rng.choice(["uniform", "finite", "cancel", "tiny", "large", "zeros", "signed_zeros"]))()
                     for _ in range(n)]
        elif style == "signed_zeros":
            beats = [b.signed_zeros() for _ in range(b.rng.randrange(1, 3))]
        else:
            beats = [getattr(b, style)() for _ in range(n)]
        tiles.append(beats)
    return tiles


def _golden(b: _Beats, tile) -> int:
    acc = ba.FP32_NEG_ZERO if KIND == "fp8" else 0
    for i, (a, w) in enumerate(tile):
        acc = b.beat(acc, a, w, first=i == 0)
    return acc


# -- driving ----------------------------------------------------------------------------------

async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.ctl_in.value = 0
    dut.a_in.value = 0
    dut.b_in.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def code_pairs(dut):
    """Every code pair in every lane, one-beat tiles: result = golden beat, latency cycles later."""
    b = _Beats()
    await _reset(dut)
    pairs = [(x, y) for x in range(256) for y in range(256)]
    if P.get("pair_mode", "every_lane") == "every_lane":
        orders = [list(range(len(pairs)))]
        for _ in range(1, b.lanes):
            order = list(range(len(pairs)))
            b.rng.shuffle(order)
            orders.append(order)
    else:   # "once": every pair in one (random) lane of one beat, ceil(65536 / L) beats
        order = list(range(len(pairs)))
        b.rng.shuffle(order)
        beats = -(-len(order) // b.lanes)
        order += [b.rng.randrange(len(pairs)) for _ in range(beats * b.lanes - len(order))]
        orders = [order[lane::b.lanes] for lane in range(b.lanes)]
    a_words, w_words, want = [], [], []
    for i in range(len(orders[0])):
        a = [b.code(pairs[orders[lane][i]][0]) for lane in range(b.lanes)]
        w = [b.code(pairs[orders[lane][i]][1]) for lane in range(b.lanes)]
        a_words.append(b.pack(a))
        w_words.append(b.pack(w))
        want.append(b.beat(0, a, w, first=True))
    dut.ctl_in.value = VALID | FIRST | LAST
    result, done = dut.result, dut.done
    a_in, b_in = dut.a_in, dut.b_in
    edge = FallingEdge(dut.clk)
    bad = []
    n = len(want)
    for t in range(n + b.latency):
        if t < n:
            a_in.value, b_in.value = a_words[t], w_words[t]
        elif t == n:
            dut.ctl_in.value = 0
        await edge
        k = t + 1 - b.latency
        if 0 <= k < n:
            got = b.to_result(result.value.to_unsigned())
            if got != want[k] or not int(done.value):
                bad.append((k, hex(a_words[k]), hex(w_words[k]), hex(got), hex(want[k]), int(done.value)))
    assert not bad, f"{len(bad)} of {n} beats differ (beat, a, w, rtl, model, done): {bad[:3]}"


@cocotb.test()
async def chunk_tiles(dut):
    """Back-to-back tiles with bubbles; every done shows the tile's golden sum; forwarding checked."""
    b = _Beats()
    await _reset(dut)
    tiles = _tiles(b, int(P.get("tiles", 150)))
    expected = [_golden(b, tile) for tile in tiles]
    stream = []
    for tile in tiles:
        for i, (a, w) in enumerate(tile):
            while b.rng.random() < float(P.get("bubble", 0.2)):
                garbage = b.uniform()
                stream.append((b.pack(garbage[0]), b.pack(garbage[1]), b.rng.choice([0, FIRST, LAST, FIRST | LAST])))
            stream.append((b.pack(a), b.pack(w), VALID | (FIRST if i == 0 else 0) | (LAST if i == len(tile) - 1 else 0)))
    stream += [(0, 0, 0)] * (b.latency + 1)
    got = []
    for t, driven in enumerate(stream):
        dut.a_in.value, dut.b_in.value, dut.ctl_in.value = driven
        await FallingEdge(dut.clk)
        forwarded = (dut.a_out.value.to_unsigned(), dut.b_out.value.to_unsigned(), dut.ctl_out.value.to_unsigned())
        assert forwarded == driven, f"cycle {t}: forwarded {forwarded} != inputs {driven}"
        if int(dut.done.value):
            got.append(b.to_result(dut.result.value.to_unsigned()))
            assert int(dut.overflow.value) == 0
    assert len(got) == len(expected), f"{len(got)} done pulses for {len(expected)} tiles"
    bad = [(i, hex(g), hex(w)) for i, (g, w) in enumerate(zip(got, expected)) if g != w]
    assert not bad, f"{len(bad)} of {len(tiles)} tiles differ (index, rtl, model): {bad[:4]}"
    if KIND == "fp8":
        # the constructed ties really were ties, and the two-lane tie differs from lane-by-lane rounding
        ties = _tie_tiles(b)
        k, lsb = ba.fp8_dot_product_lsb(b.fa, b.fw) + 24, ba.fp8_dot_product_lsb(b.fa, b.fw)
        ulp = 2.0 ** (lsb + 1)
        assert expected[0] == _f32_bits(2.0 ** k + 2 * ulp)     # odd + half an ulp: up, to even
        assert expected[1] == _f32_bits(2.0 ** k)               # even + half an ulp: stays
        if b.lanes >= 2:
            a1, w1 = ties[-2][0]
            a2, w2 = ties[-2][1]
            acc = ba.fp8_dot_mac(0, a1, w1, b.fa, b.fw, first=True)
            lane_by_lane = acc
            for lane in range(b.lanes):
                lane_by_lane = ba.fp8_dot_mac(lane_by_lane, [a2[lane]], [w2[lane]], b.fa, b.fw)
            assert lane_by_lane == acc == expected[len(ties) - 2]   # tie to even: both keep acc
            a3, w3 = ties[-1][1]
            lane_by_lane = acc
            for lane in range(b.lanes):
                lane_by_lane = ba.fp8_dot_mac(lane_by_lane, [a3[lane]], [w3[lane]], b.fa, b.fw)
            if b.lanes >= 3:
                assert lane_by_lane == acc != expected[len(ties) - 1], "one rounding per beat must differ here"


@cocotb.test()
async def int8_wraps(dut):
    """A tile of (-128)(-128) beats crosses 2^31: the INT32 accumulator wraps, as the model."""
    b = _Beats()
    await _reset(dut)
    beats = (1 << 31) // (b.lanes << 14) + 3
    a = [-128] * b.lanes
    word = b.pack(a)
    dut.a_in.value, dut.b_in.value = word, word
    for i in range(beats):
        dut.ctl_in.value = VALID | (FIRST if i == 0 else 0) | (LAST if i == beats - 1 else 0)
        await FallingEdge(dut.clk)
    dut.ctl_in.value = 0
    for _ in range(b.latency):
        await FallingEdge(dut.clk)
    want = _golden(b, [(a, a)] * beats)
    assert want < 0 and want == beats * b.lanes * 16384 - (1 << 32)
    assert _signed(dut.result.value.to_unsigned(), 32) == want


# -- FP32WideAdder alone ----------------------------------------------------------------------

def _wide_add_vectors(rng: random.Random, sum_bits: int, lsb: int, n: int) -> list[tuple]:
    guard = 26
    lo_sum, hi_sum = -(1 << (sum_bits - 1)), (1 << (sum_bits - 1)) - 1
    # exponent fields: zero/subnormal, the smallest normals, binades around the sum's window
    # (acc LSB at the window's bottom, q = 0 and q = -25, and at the shortcut boundary), the top
    window_e = [lsb + 150 - guard + d for d in (-30, -26, -25, -24, -1, 0, 1, guard - 1, guard, guard + 1)]
    shortcut_e = [lsb + 150 + sum_bits + d for d in (0, 1, 2, 3)]
    exps = [0, 1, 2, 254, 255] + [e for e in window_e + shortcut_e if 1 <= e <= 254] + list(range(1, 255, 17))
    out = []
    for i in range(n):
        sign = rng.randrange(2)
        e = rng.choice(exps)
        acc = sign << 31 | e << 23 | rng.getrandbits(23)
        if rng.random() < 0.05:
            acc = rng.getrandbits(32)
        total = rng.randint(lo_sum, hi_sum) >> rng.randrange(sum_bits)
        style = i % 7
        if style == 1:
            total = 0
        elif style == 2 and 0 < e < 255:      # the sum cancels acc exactly or but for a few LSBs
            sig, q = (acc & 0x7FFFFF) | 1 << 23, e - 150 - lsb
            if 0 <= q and (sig << q) <= hi_sum:
                total = -(sig << q) if not sign else sig << q
                total += rng.choice([0, 0, -1, 1, rng.randint(-99, 99)])
        elif style == 4:                      # both sides of the shortcut, large sums, acc 2^k or 2^k - ulp
            e = min(254, max(1, lsb + 150 + sum_bits + rng.randrange(-3, 4)))
            acc = sign << 31 | e << 23 | rng.choice([0, 0, 1, 0x7FFFFF, rng.getrandbits(23)])
            total = rng.choice([hi_sum, lo_sum, hi_sum >> 1, lo_sum >> 1]) + rng.randint(-3, 3)
        elif style == 3 and 0 < e < 255:      # a tie: half an ulp of acc, with or without sticky
            q = e - 150 - lsb                 # acc LSB position in sum LSBs
            if q >= 1 and (1 << (q - 1)) <= hi_sum:
                total = (1 << (q - 1)) * rng.choice([1, -1]) + rng.choice([0, 0, 1, -1])
        total = max(lo_sum, min(hi_sum, total))
        flags = [rng.random() < 0.03 for _ in range(3)]
        neg_zero = total == 0 and rng.random() < 0.5
        out.append((acc, total, flags, neg_zero))
    return out


@cocotb.test()
async def wide_add_vectors(dut):
    sum_bits, lsb = P["sum_bits"], P["sum_lsb"]
    rng = random.Random(P.get("seed", 1))
    bad = []
    vectors = _wide_add_vectors(rng, sum_bits, lsb, int(P.get("vectors", 6000)))
    for acc, total, (nan, pos_inf, neg_inf), neg_zero in vectors:
        dut.acc.value, dut.sum.value = acc, total & ((1 << sum_bits) - 1)
        dut.nan.value, dut.pos_inf.value, dut.neg_inf.value, dut.neg_zero.value = nan, pos_inf, neg_inf, neg_zero
        await Timer(1, unit="ns")
        got = dut.o.value.to_unsigned()
        want = ba.fp32_add_exact(acc, total, lsb, nan=nan, pos_inf=pos_inf, neg_inf=neg_inf, neg_zero=neg_zero)
        if got != want:
            bad.append((hex(acc), total, nan, pos_inf, neg_inf, neg_zero, hex(got), hex(want)))
    assert not bad, f"{len(bad)} of {len(vectors)} sums differ (acc, sum, flags, rtl, model): {bad[:3]}"
