"""cocotb tests of MLSDotPE (see test_dot_pe.py): one beat of L element pairs per cycle, checked
bit-exactly against model/.

Every tile is built as ``model.beats`` operands, packed by ``model.beats.pack_beats`` and
checked against ``model.arith.beat_accumulate``.

- code_pairs: one-beat tiles (first = last); ``result`` of beat n is checked
  ``latency`` cycles later. ``isolated``: every code pair alone in every lane (the other lanes
  carry ±0), random g pair; ``dense``: L permutations of all code pairs side by side, so every
  lane sees every pair while the other lanes are busy.
- chunk_tiles: tiles of random chunks (lengths mostly not multiples of L, one g pair per chunk,
  some keeping W's group so only A's changes), packed into zero-padded beats, with random
  bubbles carrying garbage; every tile equals the beat-by-beat saturating reference, and with an
  exact accumulator also the plain sum of all products (independent of the beat structure).
  With a narrow accumulator the run must saturate, and some tiles must differ from what
  per-product saturation would give.

Every cycle also checks the systolic forwarding: ``a_out``, ``b_out``, ``ctl_out`` hold the
previous cycle's inputs while the new ones are already applied.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from model.formats import MLSFormat
from tb.dot_pe_vectors import BeatPacker, Tile, random_codes
from tb.harness import tb_params
from tb.pe_vectors import to_signed

VALID, FIRST, LAST = 1, 2, 4


class _Setup:
    def __init__(self):
        p = self.p = tb_params()
        self.fmt_a, self.fmt_w = MLSFormat.parse(p["fmt_a"]), MLSFormat.parse(p["fmt_w"])
        self.lanes, self.acc_bits, self.latency = p["lanes"], p["acc_bits"], p["latency"]
        self.pack_a, self.pack_w = BeatPacker(self.fmt_a, self.lanes), BeatPacker(self.fmt_w, self.lanes)
        self.rng = random.Random(p["seed"])

    def tile(self, chunks):
        return Tile(self.fmt_a, self.fmt_w, self.lanes, chunks)

    def pack(self, beat):
        a_codes, w_codes, g_a, g_w = beat
        return self.pack_a.pack(a_codes, g_a), self.pack_w.pack(w_codes, g_w)


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.ctl_in.value = 0
    dut.a_in.value = 0
    dut.b_in.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _stream(dut, a_bits, w_bits, ctls, latency):
    """Drive one (a, w, ctl) per cycle; return (result, overflow, done) seen ``latency`` cycles later.

    Right after each new input settles, ``a_out``, ``b_out``, ``ctl_out`` must still show the
    previous cycle's inputs (registered forwarding, not a wire)."""
    n = len(a_bits)
    seen = []
    # the inputs held since the last clock edge (0 after reset, or the last beat of a previous stream)
    previous = (dut.a_in.value.to_unsigned(), dut.b_in.value.to_unsigned(), dut.ctl_in.value.to_unsigned())
    for t in range(n + latency):
        driven = (a_bits[t], w_bits[t], ctls[t]) if t < n else (a_bits[-1], w_bits[-1], 0)
        dut.a_in.value, dut.b_in.value, dut.ctl_in.value = driven
        await ReadOnly()
        forwarded = (dut.a_out.value.to_unsigned(), dut.b_out.value.to_unsigned(), dut.ctl_out.value.to_unsigned())
        assert forwarded == previous, f"cycle {t}: forwarded (a, w, ctl) {forwarded} != previous inputs {previous}"
        previous = driven
        await FallingEdge(dut.clk)
        if t + 1 >= latency:
            seen.append((dut.result.value.to_unsigned(), int(dut.overflow.value), int(dut.done.value)))
    return seen[:n]


def _pair_tiles(s, mode):
    """One-beat tiles (a chunk of exactly L) covering every (code_a, code_w) pair in every lane."""
    rng, lanes = s.rng, s.lanes
    pairs = [(ca, cw) for ca in range(s.fmt_a.code_count) for cw in range(s.fmt_w.code_count)]
    zero_a, zero_w = 1 << (s.fmt_a.exp_bits + s.fmt_a.man_bits), 1 << (s.fmt_w.exp_bits + s.fmt_w.man_bits)
    g = lambda fmt: rng.randrange(fmt.max_group_exp + 1)  # noqa: E731
    chunks = []
    if mode == "isolated":  # the pair in one lane, +0 or -0 in the others
        for lane in range(lanes):
            for ca, cw in pairs:
                a = [rng.choice([0, zero_a]) for _ in range(lanes)]
                w = [rng.choice([0, zero_w]) for _ in range(lanes)]
                a[lane], w[lane] = ca, cw
                chunks.append((a, w, g(s.fmt_a), g(s.fmt_w), True))
    else:  # lane l walks its own permutation of all pairs
        perms = [rng.sample(pairs, len(pairs)) for _ in range(lanes)]
        for index in range(len(pairs)):
            a = [perms[lane][index][0] for lane in range(lanes)]
            w = [perms[lane][index][1] for lane in range(lanes)]
            chunks.append((a, w, g(s.fmt_a), g(s.fmt_w), True))
    rng.shuffle(chunks)
    return [s.tile([chunk]) for chunk in chunks]


@cocotb.test()
async def code_pairs(dut):
    s = _Setup()
    await _reset(dut)
    for mode in s.p["pair_modes"]:
        tiles = _pair_tiles(s, mode)
        assert all(t.stream.beats == 1 for t in tiles)
        packed = [s.pack(t.beats[0]) for t in tiles]
        seen = await _stream(dut, [a for a, _ in packed], [w for _, w in packed],
                             [VALID | FIRST | LAST] * len(tiles), s.latency)
        bad = []
        for index, (tile, (r, o, d)) in enumerate(zip(tiles, seen)):
            expect = tile.reference(s.acc_bits)
            got = (to_signed(r, s.acc_bits), o)
            if got != expect or d != 1 or (s.p["exact"] and got != (tile.exact_sum(), 0)):
                bad.append((index, tile.beats[0], got, expect))
        assert not bad, f"{mode}: {len(bad)} of {len(tiles)} beats wrong, e.g. (index, beat, rtl, model): {bad[:3]}"
        dut._log.info(f"{mode}: {len(tiles)} beats of {s.fmt_a} x {s.fmt_w}, L={s.lanes}, bit-exact")


def _chunk_length(rng, lanes):
    """Mostly not a multiple of L (so the last beat is padded); sometimes exactly L or 2L."""
    if lanes > 1 and rng.random() < 0.15:
        return lanes * rng.choice([1, 2])
    length = rng.randrange(1, 3 * lanes + 2)
    while lanes > 1 and length % lanes == 0:
        length = rng.randrange(1, 3 * lanes + 2)
    return length


def _tile_chunks(s, style):
    """``(a_codes, w_codes, g_a, g_w, new_w_group)`` per chunk of one tile (see ``Tile``).

    ``saturate_then_cancel``: chunks of the largest products of one sign at g = 0 (a narrow
    accumulator saturates per beat), then whole beats whose first half lanes are +max and last
    half -max: each beat sums to 0, but saturating after each product would pull the sum down.
    """
    rng, lanes = s.rng, s.lanes
    top_a, top_w = 1 << (s.fmt_a.exp_bits + s.fmt_a.man_bits), 1 << (s.fmt_w.exp_bits + s.fmt_w.man_bits)
    chunks = []
    n_chunks = rng.choice([1, 1, 2, 3, 5])
    if style == "saturate_then_cancel":
        sign = rng.randrange(2) * top_a
        for _ in range(n_chunks):
            n = _chunk_length(rng, lanes)
            chunks.append(([(top_a - 1) | sign] * n, [top_w - 1] * n, 0, 0, True))
        half = lanes // 2
        lane_codes = [top_a - 1] * half + [0] * (lanes - 2 * half) + [(top_a - 1) | top_a] * half
        n_beats = rng.randrange(1, 3)
        chunks.append((lane_codes * n_beats, [top_w - 1] * (lanes * n_beats), 0, 0, True))
        return chunks
    for index in range(n_chunks):
        n = _chunk_length(rng, lanes)
        new_w_group = index == 0 or rng.random() < 0.7
        g_a = rng.randrange(s.fmt_a.max_group_exp + 1)
        g_w = rng.randrange(s.fmt_w.max_group_exp + 1) if new_w_group else chunks[-1][3]
        a_style = style if style != "mixed" else rng.choice(["uniform", "max", "sparse"])
        w_style = "uniform" if a_style == "max" and rng.random() < 0.5 else a_style
        chunks.append((random_codes(rng, s.fmt_a, n, a_style), random_codes(rng, s.fmt_w, n, w_style), g_a, g_w,
                       new_w_group))
    return chunks


@cocotb.test()
async def chunk_tiles(dut):
    s = _Setup()
    await _reset(dut)
    rng, p = s.rng, s.p
    styles = p["tile_styles"]
    a_bits, w_bits, ctls, tiles = [], [], [], []
    for number in range(p["tiles"]):
        style = styles[number % len(styles)]
        tile = s.tile(_tile_chunks(s, style))
        beats = tile.beats
        assert len(beats) == sum(-(-n // s.lanes) for n in tile.chunk_lengths)
        expect, per_product = tile.reference(s.acc_bits), tile.per_product_reference(s.acc_bits)
        for index, beat in enumerate(beats):
            while rng.random() < p["bubble"]:  # not valid: garbage operands must be ignored
                a_bits.append(rng.getrandbits(s.pack_a.width))
                w_bits.append(rng.getrandbits(s.pack_w.width))
                ctls.append(rng.choice([0, FIRST, LAST, FIRST | LAST]))
            a, w = s.pack(beat)
            a_bits.append(a)
            w_bits.append(w)
            ctls.append(VALID | (FIRST if index == 0 else 0) | (LAST if index == len(beats) - 1 else 0))
        tiles.append((len(ctls) - 1, expect, per_product, tile.exact_sum(), tile.chunk_lengths, style))
    seen = await _stream(dut, a_bits, w_bits, ctls, s.latency)
    done_at = [t for t, (_, _, d) in enumerate(seen) if d]
    assert done_at == [t for t, *_ in tiles], "done pulses do not match the tiles' last beats"
    n_ovf = n_differs = 0
    for t, expect, per_product, exact_sum, lengths, style in tiles:
        r, o, _ = seen[t]
        got = (to_signed(r, s.acc_bits), o)
        assert got == expect, f"{style} tile, chunk lengths {lengths}: rtl {got} != model {expect}"
        if p["exact"]:
            assert got == (exact_sum, 0), f"{style} tile, chunk lengths {lengths}: rtl {got} != sum of products {exact_sum}"
        n_ovf += expect[1]
        n_differs += per_product != expect
    if not p["exact"]:
        assert n_ovf > 0, "a narrow accumulator run saw no overflow: the test does not exercise saturation"
        if s.lanes > 1:
            assert n_differs > 0, "no tile tells per-beat from per-product saturation"
    dut._log.info(f"{len(tiles)} tiles of {s.fmt_a} x {s.fmt_w}, L={s.lanes}, acc_bits {s.acc_bits}: bit-exact, "
                  f"{n_ovf} overflowed, {n_differs} differ from per-product saturation")
