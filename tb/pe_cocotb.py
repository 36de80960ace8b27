"""cocotb tests of MLSPE (see test_pe.py): one operand pair per cycle, checked bit-exactly.

- products: K = 1 tiles (first = last = 1) back to back; ``result`` of pair n is checked
  ``latency`` cycles later against ``int(a) * int(b)`` from ``MLSTensor.to_int()``;
- accumulate: random tiles (K from 1 to ~60, random bubbles) against ``model.arith.accumulate``
  with the PE's accumulator width (saturation and the sticky overflow flag when narrow);
  ``result``/``overflow`` hold between ``done`` pulses;
- saturation_boundaries: tiles whose exact sum is the accumulator's limit, one off it, and
  2**j inside it (for an exact accumulator: the largest sums 63 products reach);
- every cycle, right after the new inputs settle, ``a_out``/``b_out``/``ctl_out`` still show the
  previous cycle's inputs; every output is 0 after a reset that follows a cycle of activity.
"""

import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from model.arith import accumulate
from model.formats import MLSFormat
from tb.harness import tb_params
from tb.pe_vectors import OperandPacker, element_ints, to_signed

VALID, FIRST, LAST = 1, 2, 4


def _params():
    p = tb_params()
    return MLSFormat.parse(p["fmt"]), p["acc_bits"], p["latency"], p


async def _reset(dut):
    """Reset after a cycle of activity (so every register holds something), then check that
    every output is 0."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    dut.ctl_in.value = VALID | FIRST | LAST
    dut.a_in.value = (1 << len(dut.a_in)) - 1
    dut.b_in.value = (1 << len(dut.b_in)) - 1
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.ctl_in.value = 0
    dut.a_in.value = 0
    dut.b_in.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    outputs = {name: int(getattr(dut, name).value) for name in ("result", "overflow", "done", "a_out", "b_out", "ctl_out")}
    assert not any(outputs.values()), f"after reset every output must be 0: {outputs}"


async def _stream(dut, a_ops, b_ops, ctls, latency):
    """Drive one (a, b, ctl) per cycle; return (result, overflow, done) seen ``latency`` cycles later.

    Right after each new input settles, ``a_out``, ``b_out``, ``ctl_out`` must still show the
    previous cycle's inputs (registered forwarding to the systolic neighbours, not a wire)."""
    n = len(a_ops)
    seen = []
    # the inputs held since the last clock edge (0 after reset, or the last beat of a previous stream)
    previous = (dut.a_in.value.to_unsigned(), dut.b_in.value.to_unsigned(), dut.ctl_in.value.to_unsigned())
    for t in range(n + latency):
        driven = (a_ops[t], b_ops[t], ctls[t]) if t < n else (previous[0], previous[1], 0)
        dut.a_in.value, dut.b_in.value, dut.ctl_in.value = driven
        await ReadOnly()
        forwarded = (dut.a_out.value.to_unsigned(), dut.b_out.value.to_unsigned(), dut.ctl_out.value.to_unsigned())
        assert forwarded == previous, f"cycle {t}: forwarded (a, b, ctl) {forwarded} != previous inputs {previous}"
        previous = driven
        await FallingEdge(dut.clk)
        if t + 1 >= latency:
            seen.append((dut.result.value.to_unsigned(), int(dut.overflow.value), int(dut.done.value)))
    return seen[:n]


def _pairs(fmt, mode, seed):
    """Code and group-exponent pairs: every code pair; g pairs exhaustive or cycled through."""
    codes = torch.arange(fmt.code_count)
    ca, cb = torch.meshgrid(codes, codes, indexing="ij")
    ca, cb = ca.reshape(-1), cb.reshape(-1)
    ng = fmt.max_group_exp + 1
    if mode == "exhaustive":
        ga, gb = torch.meshgrid(torch.arange(ng), torch.arange(ng), indexing="ij")
        ga, gb = ga.reshape(-1), gb.reshape(-1)
        ca, cb, ga, gb = (ca.repeat_interleave(ng * ng), cb.repeat_interleave(ng * ng),
                          ga.repeat(len(codes) ** 2), gb.repeat(len(codes) ** 2))
    else:
        # every code pair once; the g pair walks all ng*ng pairs (each seen code_count**2/ng**2 times),
        # then all g pairs with the extreme codes (largest magnitudes and smallest subnormal)
        idx = torch.arange(len(ca))
        ga, gb = idx % ng, (idx // ng + idx * 7 // (ng * ng)) % ng
        mag = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
        extreme = torch.tensor([mag, mag | (1 << (fmt.exp_bits + fmt.man_bits)), 1, 0])
        ex_a, ex_b = torch.meshgrid(extreme, extreme, indexing="ij")
        g_a, g_b = torch.meshgrid(torch.arange(ng), torch.arange(ng), indexing="ij")
        ca = torch.cat([ca, ex_a.reshape(-1).repeat_interleave(ng * ng)])
        cb = torch.cat([cb, ex_b.reshape(-1).repeat_interleave(ng * ng)])
        ga = torch.cat([ga, g_a.reshape(-1).repeat(16)])
        gb = torch.cat([gb, g_b.reshape(-1).repeat(16)])
    perm = torch.randperm(len(ca), generator=torch.Generator().manual_seed(seed))
    return ca[perm], cb[perm], ga[perm], gb[perm]


@cocotb.test()
async def products(dut):
    fmt, acc_bits, latency, p = _params()
    await _reset(dut)
    ca, cb, ga, gb = _pairs(fmt, p["mode"], p["seed"])
    a = element_ints(fmt, ca[None, :], ga[None, :])
    b = element_ints(fmt, cb[None, :], gb[None, :])
    pack = OperandPacker(fmt)
    expect, ovf = accumulate((a.to_int() * b.to_int()).reshape(-1, 1), acc_bits)
    seen = await _stream(dut, pack.pack(a)[0].tolist(), pack.pack(b)[0].tolist(), [VALID | FIRST | LAST] * len(ca), latency)
    bad = [(i, to_signed(r, acc_bits), int(expect[i])) for i, (r, o, d) in enumerate(seen)
           if to_signed(r, acc_bits) != int(expect[i]) or o != int(ovf[i]) or d != 1]
    assert not bad, f"{len(bad)} of {len(ca)} products wrong, e.g. (index, rtl, model): {bad[:5]}"
    dut._log.info(f"{len(ca)} products of {fmt} bit-exact (acc_bits {acc_bits})")


@cocotb.test()
async def accumulate_tiles(dut):
    fmt, acc_bits, latency, p = _params()
    await _reset(dut)
    rng = random.Random(p["seed"])
    gen = torch.Generator().manual_seed(p["seed"])
    pack = OperandPacker(fmt)
    a_ops, b_ops, ctls, tiles = [], [], [], []
    for tile in range(p["tiles"]):
        k = rng.choice([1, 2, 3, rng.randrange(1, 64)])
        style = tile % 4
        ng = fmt.max_group_exp + 1
        if style == 0:    # uniform random codes and g
            ca, cb = (torch.randint(fmt.code_count, (k,), generator=gen) for _ in range(2))
            ga, gb = (torch.randint(ng, (k,), generator=gen) for _ in range(2))
        elif style == 1:  # largest magnitudes, g = 0, one sign: drives a narrow accumulator into saturation
            big = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
            s = rng.randrange(2) << (fmt.exp_bits + fmt.man_bits)
            ca = torch.full((k,), big | s)
            cb = torch.full((k,), big)
            ga = gb = torch.zeros(k, dtype=torch.int64)
        elif style == 2:  # sign mixes of large values: saturate, then come back
            big = (1 << (fmt.exp_bits + fmt.man_bits)) - 1
            signs = torch.tensor([1 if (i // 5) % 2 else 0 for i in range(k)]) << (fmt.exp_bits + fmt.man_bits)
            ca = big | signs
            cb = torch.randint(fmt.code_count // 2, (k,), generator=gen)
            ga, gb = torch.zeros(k, dtype=torch.int64), torch.randint(ng, (k,), generator=gen)
        else:             # constant g per tile (channel grouping)
            ca, cb = (torch.randint(fmt.code_count, (k,), generator=gen) for _ in range(2))
            ga, gb = torch.full((k,), rng.randrange(ng)), torch.full((k,), rng.randrange(ng))
        a = element_ints(fmt, ca[None, :], ga[None, :])
        b = element_ints(fmt, cb[None, :], gb[None, :])
        acc, ovf = accumulate((a.to_int() * b.to_int()), acc_bits)
        pa, pb = pack.pack(a)[0].tolist(), pack.pack(b)[0].tolist()
        for i in range(k):
            while rng.random() < p["bubble"]:
                a_ops.append(rng.getrandbits(pack.width)); b_ops.append(rng.getrandbits(pack.width))
                ctls.append(rng.choice([0, FIRST, LAST, FIRST | LAST]))  # not valid: must be ignored
            a_ops.append(pa[i]); b_ops.append(pb[i])
            ctls.append(VALID | (FIRST if i == 0 else 0) | (LAST if i == k - 1 else 0))
            if i == k - 1:
                tiles.append((len(ctls) - 1, int(acc[0]), int(ovf[0]), k))
    seen = await _stream(dut, a_ops, b_ops, ctls, latency)
    done_at = [t for t, (_, _, d) in enumerate(seen) if d]
    assert done_at == [t for t, *_ in tiles], "done pulses do not match the tiles' last beats"
    n_ovf = 0
    for t, acc, ovf, k in tiles:
        r, o, _ = seen[t]
        assert (to_signed(r, acc_bits), o) == (acc, ovf), f"tile of K={k}: rtl ({to_signed(r, acc_bits)}, {o}) != model ({acc}, {ovf})"
        n_ovf += ovf
    # result and overflow are a double buffer: they hold the last tile's values until the next done
    for (t, *_), (t_next, *_) in zip(tiles, tiles[1:] + [(len(seen),)]):
        held = {seen[u][:2] for u in range(t, t_next)}
        assert held == {seen[t][:2]}, f"cycles {t}..{t_next - 1}: result/overflow changed between done pulses: {held}"
    if p["expect_overflow"]:
        assert n_ovf > 0, "a narrow accumulator run saw no overflow: the test does not exercise saturation"
    dut._log.info(f"{len(tiles)} tiles of {fmt} bit-exact, {n_ovf} overflowed (acc_bits {acc_bits})")


def _boundary_tiles(fmt, acc_bits, rng):
    """Tiles of one sign whose exact sum lands on the accumulator's limits and next to them
    (hi - 3 .. hi + 3, lo - 3 .. lo + 3) and a few values 2**j below hi and above lo, built
    greedily from the largest products that still fit (the element integers include 1)."""
    codes = torch.arange(fmt.code_count // 2)  # sign 0
    ng = fmt.max_group_exp + 1
    c, g = (x.reshape(-1) for x in torch.meshgrid(codes, torch.arange(ng), indexing="ij"))
    ints = element_ints(fmt, c[None, :], g[None, :]).to_int()[0].tolist()
    elem = {}
    for value, code, gexp in zip(ints, c.tolist(), g.tolist()):
        elem.setdefault(value, (code, gexp))
    products = sorted({(x * y, x, y) for x in elem for y in elem if x and y}, reverse=True)
    # an exact accumulator is out of reach: then the largest sums a tile of 63 products reaches
    hi = min((1 << (acc_bits - 1)) - 1, 63 * products[0][0])
    targets = [hi + d for d in range(-3, 4)] + [hi - rng.randrange(1 << j, 2 << j) for j in range(2, acc_bits - 2)]
    tiles = []
    for target in targets:
        for negative in (False, True):
            magnitude = target + 1 if negative else target  # lo = -(hi + 1)
            terms, rest = [], magnitude
            for p, x, y in products:
                while p <= rest and len(terms) < 63:
                    terms.append((x, y))
                    rest -= p
            if rest or not terms:
                continue  # out of reach in 63 products (an exact accumulator)
            rng.shuffle(terms)
            sign = 1 << (fmt.exp_bits + fmt.man_bits) if negative else 0
            tiles.append(([elem[x][0] | sign for x, _ in terms], [elem[x][1] for x, _ in terms],
                          [elem[y][0] for _, y in terms], [elem[y][1] for _, y in terms]))
    return tiles


@cocotb.test()
async def saturation_boundaries(dut):
    """Sums exactly at, just inside and just outside the accumulator's range: the clamp and the
    overflow comparisons are exact to the last bit (random tiles almost never land there)."""
    fmt, acc_bits, latency, p = _params()
    await _reset(dut)
    rng = random.Random(p["seed"] + 9)
    pack = OperandPacker(fmt)
    a_ops, b_ops, ctls, tiles = [], [], [], []
    for ca, ga, cb, gb in _boundary_tiles(fmt, acc_bits, rng):
        a = element_ints(fmt, torch.tensor([ca]), torch.tensor([ga]))
        b = element_ints(fmt, torch.tensor([cb]), torch.tensor([gb]))
        acc, ovf = accumulate(a.to_int() * b.to_int(), acc_bits)
        k = len(ca)
        a_ops += pack.pack(a)[0].tolist()
        b_ops += pack.pack(b)[0].tolist()
        ctls += [VALID | (FIRST if i == 0 else 0) | (LAST if i == k - 1 else 0) for i in range(k)]
        tiles.append((len(ctls) - 1, int(acc[0]), int(ovf[0]), int((a.to_int() * b.to_int()).sum())))
    assert len(tiles) >= 8, f"only {len(tiles)} boundary sums reachable: the test checks too little"
    seen = await _stream(dut, a_ops, b_ops, ctls, latency)
    for t, acc, ovf, total in tiles:
        r, o, d = seen[t]
        assert d == 1 and (to_signed(r, acc_bits), o) == (acc, ovf), (
            f"sum {total}: rtl ({to_signed(r, acc_bits)}, {o}) != model ({acc}, {ovf}) (acc_bits {acc_bits})")
    dut._log.info(f"{len(tiles)} boundary sums of {fmt} bit-exact (acc_bits {acc_bits})")
