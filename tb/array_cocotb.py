# amaranth: UnusedElaboratable=no
"""cocotb tests of SystolicArray (see test_array.py), bit-exact against model/ and cycle-exact
against ``hw.array.timing``.

One cycle-driven loop drives both input streams and the output stream: inputs are written at
the falling edge, handshakes are sampled in ReadOnly before the next rising edge (where the
transfer happens). Stalls: each producer holds valid low with probability ``stall`` whenever it
is free to (a presented beat is held until it transfers); the consumer drops ready likewise.
"""

import random

import cocotb
import torch
import torch.nn.functional as F
from cocotb.clock import Clock
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly

from hw.array import SystolicArray
from hw.array.timing import ArrayTiming
from hw.fpga.tiles import array_tile_words
from hw.layout_pack import pack, unpack
from model.arith import exact_conv2d, finite_matmul
from model.formats import MLSFormat
from model.grouping import Grouping
from model.quantize import quantize
from tb.harness import tb_params
from tb.pe_vectors import element_ints


class Tile:
    """One GEMM tile: A [R, K], W [K, C] as ``a``/``w`` payload words (packed from the array's
    layouts, ``last`` on beat K - 1), and the expected rows from model/."""

    def __init__(self, a_t, w_t, acc_bits, arr, expect=None):
        self.k = a_t.shape[1]
        self.a_beats, self.w_beats = array_tile_words(arr, a_t, w_t)
        acc, ovf = finite_matmul(a_t, w_t, acc_bits)
        if expect is not None:  # the real-tensor tile: also equals model.arith.exact_conv2d
            assert torch.equal(acc, expect) and not ovf.any()
        self.acc, self.ovf = acc.tolist(), ovf.tolist()


def random_tile(fmt, R, C, k, acc_bits, arr, gen, style):
    ng = fmt.max_group_exp + 1
    if style == "extreme":  # largest magnitudes of one sign, g = 0: saturates a narrow accumulator
        mag = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
        ca = torch.full((R, k), mag) | (torch.randint(2, (R, 1), generator=gen) << (fmt.exp_bits + fmt.man_bits))
        cw = torch.full((k, C), mag)
        ga, gw = torch.zeros(R, k, dtype=torch.int64), torch.zeros(k, C, dtype=torch.int64)
    else:
        ca = torch.randint(fmt.code_count, (R, k), generator=gen)
        cw = torch.randint(fmt.code_count, (k, C), generator=gen)
        if style == "sparse":  # many zeros and subnormals
            ca = torch.where(torch.rand(R, k, generator=gen) < 0.5, ca & ((1 << fmt.man_bits) - 1), ca)
            cw = torch.where(torch.rand(k, C, generator=gen) < 0.5, torch.zeros_like(cw), cw)
        ga = torch.randint(ng, (R, k), generator=gen)
        gw = torch.randint(ng, (k, C), generator=gen)
        if style == "fine":  # the largest g: small products, exact down to the last bit of every PE
            ga, gw = torch.full_like(ga, ng - 1), torch.full_like(gw, ng - 1)
    return Tile(element_ints(fmt, ca, ga, axis=1), element_ints(fmt, cw, gw, axis=0), acc_bits, arr)


def saturate_return_tile(fmt, R, C, k, acc_bits, arr, gen, parity, stay=False):
    """Rows i with i % 2 == parity: K largest products, the first half positive and the rest
    negative (a narrow accumulator saturates, then comes back into range: the sticky flag must
    stay set); the other rows: small products that never overflow, so neighbouring rows' flags
    and data differ. ``stay``: one largest positive product, then K - 1 small negative ones, so
    a saturated row stays in range for several beats and the flag must survive all of them (a
    flag kept for one in-range beat only is caught here, not by the rows that swing back)."""
    ng = fmt.max_group_exp + 1
    mag = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    sign = 1 << (fmt.exp_bits + fmt.man_bits)
    ca = torch.randint(fmt.code_count, (R, k), generator=gen)
    ga = torch.full((R, k), ng - 1)
    for i in range(R):
        if i % 2 == parity and stay:
            ca[i] = torch.tensor([mag] + [1 | sign] * (k - 1))   # +largest, then the smallest negatives
            ga[i] = torch.tensor([0] + [ng - 1] * (k - 1))
        elif i % 2 == parity:
            ca[i] = torch.tensor([mag if n < (k + 1) // 2 else mag | sign for n in range(k)])
            ga[i] = 0
    cw = torch.full((k, C), mag)
    gw = torch.zeros(k, C, dtype=torch.int64)
    return Tile(element_ints(fmt, ca, ga, axis=1), element_ints(fmt, cw, gw, axis=0), acc_bits, arr)


def conv_tile(fmt, R, C, acc_bits, arr, seed):
    """A tile of a real conv layer's forward GEMM: R output channels x C output positions,
    K = Cin * 3 * 3, from ``quantize`` of the input and weight with channel grouping."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(3, max(R, 4), 3, padding=1, bias=False)
    x = torch.randn(1, 3, 6, 6) * torch.tensor([1.0, 0.05, 8.0]).view(1, 3, 1, 1)  # spread the group exponents
    xq = quantize(x, fmt, Grouping.channel())
    wq = quantize(conv.weight.detach(), fmt, Grouping.channel())
    ref = exact_conv2d(xq, wq, padding=1)[0].reshape(conv.out_channels, -1)[:R, :C]
    # im2col of the codes and per-element group exponents (exact small integers in float64)
    def cols(t):
        return F.unfold(t.double(), 3, padding=1)[0].round().to(torch.int64)  # [Cin*9, L]
    x_codes, x_g = cols(xq.codes()), cols(xq.group_exp_per_element())
    w_t = element_ints(fmt, x_codes[:, :C], x_g[:, :C], axis=0)  # [K, C]
    a_t = element_ints(fmt, wq.codes().reshape(conv.out_channels, -1)[:R],
                       wq.group_exp_per_element().reshape(conv.out_channels, -1)[:R], axis=1)  # [R, K]
    return Tile(a_t, w_t, acc_bits, arr, expect=ref)


async def run_tiles(dut, tiles, R, C, acc_bits, rng, stall_a, stall_w, stall_c, timeout=None):
    """Stream the tiles back to back; return (rows, in_cycles, out_cycles): every output beat
    (data, overflow, last), and the cycle of every input/output transfer. After the last
    expected row, ``c`` must stay invalid for a whole drain (no spurious row). Still short of
    rows after ``timeout`` cycles (default: 50 per beat in and out, plus 1000; the heaviest
    stalls need under 10), the run fails as a deadlock."""
    a_beats = [b for t in tiles for b in t.a_beats]
    w_beats = [b for t in tiles for b in t.w_beats]
    n_out = R * len(tiles)
    if timeout is None:
        timeout = 50 * (len(a_beats) + n_out) + 1000
    arr = array_of(tb_params())
    c_layout, result_shape = arr.c_layout, arr.result_shape
    # a float result (float_layout) is compared as its raw bit pattern
    raw = (lambda x: pack(result_shape, x)) if isinstance(result_shape, data.Layout) else (lambda x: x)
    rows, in_cycles, out_cycles = [], [], []
    pos = 0
    a_valid = w_valid = 0
    cycle = 0
    while len(rows) < n_out:
        await FallingEdge(dut.clk)
        if pos < len(a_beats):
            if not a_valid and rng.random() >= stall_a:
                a_valid = 1
            if not w_valid and rng.random() >= stall_w:
                w_valid = 1
            dut.a__payload.value = a_beats[pos]
            dut.w__payload.value = w_beats[pos]
        else:
            a_valid = w_valid = 0
        dut.a__valid.value = a_valid
        dut.w__valid.value = w_valid
        c_ready = int(rng.random() >= stall_c)
        dut.c__ready.value = c_ready
        await ReadOnly()
        if a_valid and w_valid and int(dut.a__ready.value):
            assert int(dut.w__ready.value), "a transferred without w"
            in_cycles.append(cycle)
            pos += 1
            a_valid = w_valid = 0
        elif (a_valid and int(dut.a__ready.value)) or (w_valid and int(dut.w__ready.value)):
            raise AssertionError(f"cycle {cycle}: one input stream transferred without the other")
        if c_ready and int(dut.c__valid.value):
            payload = dut.c__payload.value
            assert payload.is_resolvable, f"cycle {cycle}: output payload not 0/1: {payload}"
            row = unpack(c_layout, payload.to_unsigned())
            rows.append(([raw(x) for x in row["data"]], [(row["overflow"] >> j) & 1 for j in range(C)], row["last"]))
            out_cycles.append(cycle)
        cycle += 1
        assert cycle < timeout, f"timeout: {len(rows)} of {n_out} output rows after {cycle} cycles"
    await no_spurious_rows(dut, ArrayTiming(R, C, tb_params()["pe_latency"]).drain_cycles + R)
    return rows, in_cycles, out_cycles


async def no_spurious_rows(dut, cycles):
    """With no input, ``c`` stays invalid for ``cycles`` cycles while the consumer is ready."""
    for n in range(cycles):
        await FallingEdge(dut.clk)
        dut.a__valid.value = 0
        dut.w__valid.value = 0
        dut.c__ready.value = 1
        await ReadOnly()
        assert not int(dut.c__valid.value), f"a spurious output row {n} cycles after the last expected one"


def check_rows(tiles, rows, R):
    for n, t in enumerate(tiles):
        for i in range(R):
            data, flags, last = rows[n * R + i]
            assert data == t.acc[i] and flags == [int(f) for f in t.ovf[i]], (
                f"tile {n} (K={t.k}) row {i}: rtl {data} ovf {flags} != model {t.acc[i]} ovf {[int(f) for f in t.ovf[i]]}")
            assert last == int(i == R - 1), f"tile {n} row {i}: last = {last}"


def check_cycles(tiles, in_cycles, out_cycles, timing, R):
    """Without stalls: the whole run and every tile match hw.array.timing exactly."""
    ks = [t.k for t in tiles]
    measured = out_cycles[-1] - in_cycles[0] + 1
    assert measured == timing.tiles_cycles(ks), f"{len(ks)} tiles K={ks}: measured {measured} cycles, timing says {timing.tiles_cycles(ks)}"
    last_in = 0
    for n, t in enumerate(tiles):
        last_in += t.k
        t_last = in_cycles[last_in - 1]
        for i in range(R):
            assert out_cycles[n * R + i] - t_last == timing.drain_cycles - (R - 1 - i), f"tile {n} row {i} timing"
    if len(tiles) == 1:
        assert measured == timing.tile_cycles(ks[0])


def array_of(p):
    """The array the testbench drives, rebuilt from its parameters for its layouts (never
    elaborated): MLS PEs, or the baseline PE ``p["pe"]``."""
    if p.get("pe", "mls") != "mls":
        return SystolicArray(None, p["rows"], p["cols"], max_k=p["max_k"], pe=p["pe"])
    return SystolicArray(p["fmt"], p["rows"], p["cols"], acc_bits=p["acc_bits"], max_k=p["max_k"])


def setup(dut):
    p = tb_params()
    fmt = MLSFormat.parse(p["fmt"])
    timing = ArrayTiming(p["rows"], p["cols"], p["pe_latency"])
    return p, fmt, timing, array_of(p)


async def reset(dut):
    """Reset after a few cycles of activity (beats taken, a tile's last beat among them, the
    output not drained), so every control register holds something; then ``c`` must be idle."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    dut.a__valid.value = 1
    dut.w__valid.value = 1
    dut.c__ready.value = 0
    dut.a__payload.value = (1 << len(dut.a__payload)) - 1  # every field at its maximum, last = 1
    dut.w__payload.value = (1 << len(dut.w__payload)) - 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.a__valid.value = 0
    dut.w__valid.value = 0
    dut.a__payload.value = 0
    dut.w__payload.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await ReadOnly()
    assert not int(dut.c__valid.value), "c is valid right after reset"
    await FallingEdge(dut.clk)


def plan(p, fmt, arr, gen, rng):
    R, C, acc_bits, max_k = p["rows"], p["cols"], p["acc_bits"], p["max_k"]
    ks = [1, rng.randrange(2, 2 * (R + C)) | 1, 3 * (R + C) + 7, max_k, 2, R + C - 1, R + C, R + C + 1]
    styles = ["random", "sparse", "extreme", "fine"]
    return [random_tile(fmt, R, C, k, acc_bits, arr, gen, styles[n % len(styles)]) for n, k in enumerate(ks)]


@cocotb.test()
async def single_tiles(dut):
    """Each tile alone (K = 1, odd K, K = max_k, ...): bit-exact, and cycles == tile_cycles(K)."""
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    gen, rng = torch.Generator().manual_seed(p["seed"]), random.Random(p["seed"])
    for tile in plan(p, fmt, arr, gen, rng)[:4]:
        rows, ins, outs = await run_tiles(dut, [tile], p["rows"], p["cols"], p["acc_bits"], rng, 0, 0, 0)
        check_rows([tile], rows, p["rows"])
        check_cycles([tile], ins, outs, timing, p["rows"])
        for _ in range(3):
            await FallingEdge(dut.clk)


@cocotb.test()
async def back_to_back(dut):
    """Tiles back to back with no stalls: drain overlaps the next tile; cycles == tiles_cycles(ks)."""
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    gen, rng = torch.Generator().manual_seed(p["seed"] + 1), random.Random(p["seed"] + 1)
    tiles = plan(p, fmt, arr, gen, rng)
    rows, ins, outs = await run_tiles(dut, tiles, p["rows"], p["cols"], p["acc_bits"], rng, 0, 0, 0)
    check_rows(tiles, rows, p["rows"])
    check_cycles(tiles, ins, outs, timing, p["rows"])


@cocotb.test()
async def stalls(dut):
    """Random valid/ready stalls on all three streams: still bit-exact, rows in order."""
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    gen, rng = torch.Generator().manual_seed(p["seed"] + 2), random.Random(p["seed"] + 2)
    for stall_a, stall_w, stall_c in ((0.3, 0.0, 0.0), (0.0, 0.3, 0.5), (0.4, 0.4, 0.7)):
        tiles = plan(p, fmt, arr, gen, rng)[: p["stall_tiles"]]
        rows, ins, outs = await run_tiles(dut, tiles, p["rows"], p["cols"], p["acc_bits"], rng, stall_a, stall_w, stall_c)
        check_rows(tiles, rows, p["rows"])
        assert outs[-1] - ins[0] + 1 >= timing.tiles_cycles([t.k for t in tiles])


@cocotb.test()
async def saturation_rows(dut):
    """Tiles where alternate rows saturate and come back while the others stay small (see
    ``saturate_return_tile``), each parity and K = 2 and 5, then rows that saturate once and
    stay in range for three beats (K = 4), back to back."""
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    gen, rng = torch.Generator().manual_seed(p["seed"] + 3), random.Random(p["seed"] + 3)
    tiles = [saturate_return_tile(fmt, p["rows"], p["cols"], k, p["acc_bits"], arr, gen, parity)
             for parity in (0, 1) for k in (2, 5)]
    stay = [saturate_return_tile(fmt, p["rows"], p["cols"], 4, p["acc_bits"], arr, gen, parity, stay=True)
            for parity in (0, 1)]
    if not arr.exact:  # the intended case: saturated, then back in range (below hi) with the flag set
        hi = (1 << (p["acc_bits"] - 1)) - 1
        for parity, t in enumerate(stay):
            row = t.acc[parity]
            assert all(t.ovf[parity]) and all(v < hi for v in row), f"stay tile {parity}: {row} {t.ovf[parity]}"
    tiles += stay
    rows, ins, outs = await run_tiles(dut, tiles, p["rows"], p["cols"], p["acc_bits"], rng, 0, 0, 0)
    check_rows(tiles, rows, p["rows"])
    if not arr.exact:
        assert any(any(map(any, t.ovf)) for t in tiles), "no tile overflowed: saturation is not exercised"


@cocotb.test()
async def conv_layer_tile(dut):
    """A tile of a real conv layer (quantize() of input and weight): equals model.arith.exact_conv2d."""
    p, fmt, timing, arr = setup(dut)
    await reset(dut)
    tile = conv_tile(fmt, p["rows"], p["cols"], p["acc_bits"], arr, p["seed"])
    rng = random.Random(p["seed"])
    rows, ins, outs = await run_tiles(dut, [tile, tile], p["rows"], p["cols"], p["acc_bits"], rng, 0, 0, 0)
    check_rows([tile, tile], rows, p["rows"])
    check_cycles([tile, tile], ins, outs, timing, p["rows"])
