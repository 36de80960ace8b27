# amaranth: UnusedElaboratable=no
"""cocotb: the whole quantization unit (amax pass + convert pass) bit-exact against model/quantize.py.

The pytest side builds the stimulus (corner tensors, multi-scale random tensors, and the
activation and error tensors of a small conv layer after a seeded forward/backward pass) and
writes it to an .npz; ``quant_unit_cocotb`` streams each tensor through both passes with random
stalls on input and outputs and compares the packed bytes with ``MLSTensor.pack()``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from amaranth import Shape

from hw.quant_unit.config import QuantUnitConfig
from hw.quant_unit.top import QuantUnit
from model.formats import MLSFormat
from tb.harness import run_cocotb


# -- stimulus ----------------------------------------------------------------------------------
def conv_layer_tensors(channels: int, spatial: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation (conv -> BN -> ReLU output) and error (its gradient) of a seeded training step."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(channels),
        torch.nn.ReLU(),
    )
    head = torch.nn.Linear(channels * spatial * spatial, 10)
    images = torch.randn(2, 3, spatial, spatial, generator=gen)
    labels = torch.randint(0, 10, (2,), generator=gen)
    act = layer(images)
    act.retain_grad()
    loss = torch.nn.functional.cross_entropy(head(act.flatten(1)), labels)
    loss.backward()
    return act.detach().float(), act.grad.detach().float()


def resnet20_layer_tensors(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input activation and output error of ResNet-20's first stage-3 conv2 (64 ch, 8x8), batch 2."""
    from model.resnet import resnet20

    torch.manual_seed(seed)
    net = resnet20()
    conv = net.layers[6].conv2
    captured = {}

    def hook(module, inputs, output):
        captured["act"] = inputs[0].detach()
        output.register_hook(lambda grad: captured.__setitem__("err", grad.detach()))

    handle = conv.register_forward_hook(hook)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (2,), generator=gen)
    torch.nn.functional.cross_entropy(net(images), labels).backward()
    handle.remove()
    return captured["act"].float(), captured["err"].float()


def corner_tensor(fmt: MLSFormat, group_len: int, rng: np.random.Generator) -> np.ndarray:
    """Groups exercising every g, grid boundaries, FP32 exponent classes and the g clamp.

    The tensor's amax is exactly elem_max, so inv = 1 and y = x: grid values and midpoints
    scaled by 2**-g reach the rounding logic unchanged.
    """
    grid = sorted(set(fmt.grid().tolist()))
    mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]
    groups = []
    for g in range(fmt.max_group_exp + 1):
        pool = []
        for v in grid[1:] + mids:
            f = np.float32(v)
            pool += [f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(0))]
        pick = rng.choice(np.array(pool, dtype=np.float32), group_len)
        pick[0] = np.float32(fmt.elem_max)  # the group max sets g exactly
        vals = np.ldexp(pick.astype(np.float64), -g).astype(np.float32)
        vals *= rng.choice(np.array([-1, 1], dtype=np.float32), group_len)
        groups.append(vals)
    n_zero_groups = 1
    groups.append(np.zeros(group_len, dtype=np.float32))  # all-zero group: g clamps to 2**G - 1
    # FP32 exponent classes: subnormals (DAZ), zeros, tiny normals (clamped g, flushed codes)
    classes = np.array([0.0, -0.0, 1e-45, -1e-40, 2.0**-126, -(2.0**-126), 2.0**-100, 1e-30, 3e-20, 2.0**-60],
                       dtype=np.float32)
    groups.append(np.resize(classes, group_len))
    rand_bits = rng.integers(0, 2**32, group_len, dtype=np.uint64).astype(np.uint32)
    rand_bits &= np.uint32(0x7FFF_FFFF)
    rand = rand_bits.view(np.float32)
    rand = np.where(np.abs(rand) <= fmt.elem_max, rand, np.float32(0.5))  # any exponent class below amax
    groups.append(rand.astype(np.float32))
    del n_zero_groups
    return np.concatenate(groups).astype(np.float32)


def _f32(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


def _bits(value) -> int:
    return int(np.float32(value).view(np.uint32))


def _pad(values, group_len: int) -> np.ndarray:
    """``values`` (float32) followed by zeros up to whole groups (zeros change no group's g)."""
    x = np.asarray(values, dtype=np.float32).reshape(-1)
    return np.concatenate([x, np.zeros(-len(x) % group_len, dtype=np.float32)])


def _both_banks(values, group_len: int) -> np.ndarray:
    """``values`` twice, the second copy an odd number of groups later: the convert pass's two
    buffer banks alternate by group, so every word passes through both banks."""
    x = _pad(values, group_len)
    gap = np.zeros(group_len if (len(x) // group_len) % 2 == 0 else 0, dtype=np.float32)
    return np.concatenate([x, gap, x])


def g_boundary_tensor(fmt: MLSFormat, group_len: int, rng: np.random.Generator) -> np.ndarray:
    """One group per single FP32 mantissa bit k below elem_max's lowest set bit, and sign of the
    step: the group max is ``elem_max * 2**-g0 ± 2**k`` ulps (g0 random, the max at a rotating
    position, so in every lane), the rest at most half of it: each bit of the max alone decides
    g = g0 or g0 - 1 (``GroupExponent``'s mantissa compare)."""
    top = _bits(fmt.elem_max)
    groups = []
    for k in range((top & -top).bit_length() - 1):
        for step in (1 << k, -(1 << k), 0):
            g0 = int(rng.integers(1, fmt.max_group_exp + 1))
            peak = _f32(top + step) * np.float32(2.0 ** -g0)
            grp = (rng.uniform(0, 0.5, group_len) * peak).astype(np.float32)
            grp[len(groups) % group_len] = peak
            groups.append(grp * _signs(group_len, rng))
    return np.concatenate(groups)


def _signs(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array([-1, 1], dtype=np.float32), n)


def boundary_targets(fmt: MLSFormat) -> list[tuple[float, int]]:
    """``(value, lower code)`` of every grid midpoint, and ``(elem_max, max code)``, scaled by
    ``2**-G``: at or below ``elem_max * 2**-G`` every group's g is the clamp ``2**G - 1``
    whatever else is in it, so every lane can carry a boundary value, and ``z = |y| * 2**G``
    sits exactly on the element rounding boundary (or, for elem_max, on the g boundary)."""
    grid = sorted(set(fmt.grid().tolist()))
    g = fmt.max_group_exp
    out = [(float(np.ldexp((a + b) / 2, -g)), code) for code, (a, b) in enumerate(zip(grid, grid[1:]))]
    return out + [(float(np.ldexp(fmt.elem_max, -g)), len(grid) - 1)]


def _significand(value: float) -> tuple[int, int]:
    """``(T, e)`` with ``value == T * 2**e`` and T the 24-bit FP32 significand (hidden bit set)."""
    b = _bits(value)
    return (b & 0x7F_FFFF) | 0x80_0000, ((b >> 23) & 0xFF) - 127 - 23


def product_tie_tensor(fmt: MLSFormat, inv_sig: int, rng: np.random.Generator) -> np.ndarray:
    """Elements x with ``x * inv`` (``inv = inv_sig * 2**-23``) an *exact* FP32 rounding tie next to
    a boundary value T: the exact product of the two significands is ``(2T ± 1) * 2**(22 + top)``,
    so its guard bit is set and every sticky bit is clear, in both normalizations (``top``). RNE
    gives the even T (a midpoint or elem_max, which have trailing zeros); rounding half up, a lost
    guard or a spurious sticky bit gives T ± 1 ulp, on the other side of the element boundary (or
    of the g boundary).  Only products whose significands divide exactly are possible, so each
    inverse scale reaches some of the boundaries; several are used."""
    out = []
    for value, _code in boundary_targets(fmt):
        t_sig, e = _significand(value)
        for d in (1, -1) if t_sig != 1 << 23 else (1,):  # T - 1 of a power of two is in the binade below
            for top in (0, 1):
                prod = (2 * t_sig + d) << (22 + top)
                if prod % inv_sig == 0 and (1 << 23) <= prod // inv_sig < (1 << 24):
                    out.append(np.ldexp(float(prod // inv_sig), e - top))
    x = np.array(out, dtype=np.float32)
    return x * _signs(len(x), rng)


def product_sticky_tensor(fmt: MLSFormat, sticky_bit: int) -> tuple[np.ndarray, int] | None:
    """``(x, inv_bits)``: one x and an inverse scale whose exact significand product is a rounding
    tie next to a midpoint with an even lower code plus the single sticky bit ``sticky_bit``
    (``(2T + 1) * 2**(22 + top) + 2**sticky_bit``): RNE rounds up to T + 1 ulp, so the element
    rounds up; without that one bit it would be a tie, T, and the even code below. None if no
    midpoint's product factors into two FP32 significands."""
    small = np.arange(3, 1 << 21, 2, dtype=np.int64)
    for value, code in boundary_targets(fmt)[:-1]:
        if code % 2:
            continue
        t_sig, e = _significand(value)
        for top in (0, 1):
            prod = ((2 * t_sig + 1) << (22 + top)) + (1 << sticky_bit)
            odd = prod >> sticky_bit
            factors = [int(a) for a in small[odd % small == 0]]
            candidates = [f << i for f in factors + [odd // a for a in factors] for i in range(sticky_bit + 1)]
            for inv_sig in candidates:
                fits = (1 << 23) <= inv_sig < (1 << 24) and (1 << 23) <= prod // inv_sig < (1 << 24)
                if fits and prod % inv_sig == 0:
                    x = np.float32(np.ldexp(float(prod // inv_sig), e - top))
                    return np.array([x]), _bits(np.ldexp(float(inv_sig), -23))
    return None


def midpoint_bit_tensor(fmt: MLSFormat, lanes: int) -> np.ndarray:
    """For inv = 1 (y = x): every boundary value of ``boundary_targets`` exactly, and with each
    single FP32 mantissa bit below its lowest set bit added or subtracted, in every lane: each bit
    of y below the rounding boundary alone decides the element's rounding (and, at elem_max, g)."""
    targets = [_bits(v) for v, _ in boundary_targets(fmt)]
    words = []
    for k in range(23):
        usable = [b for b in targets if (b & -b).bit_length() - 1 > k]
        if not usable:
            continue
        pick = [usable[(k + i) % len(usable)] for i in range(lanes)]
        words.append([b + (1 << k) for b in pick])
        words.append([b - (1 << k) for b in pick])
        exact = list(pick)
        exact[k % lanes] += 1 << k  # a neighbour lane's low bits set while this one is exact
        words.append(exact)
    return np.array([_f32(b) for w in words for b in w], dtype=np.float32)


def multiscale_tensor(n_groups: int, group_len: int, rng: np.random.Generator, spread: int) -> np.ndarray:
    scales = np.exp2(rng.uniform(-spread, 4, n_groups)).astype(np.float32)
    x = rng.standard_normal((n_groups, group_len)).astype(np.float32) * scales[:, None]
    return x.reshape(-1)


def build_cases(cfg: QuantUnitConfig, seed: int, real: tuple[int, int] | None, resnet: bool = False):
    """(arrays, metadata) for the cocotb side."""
    rng = np.random.default_rng(seed)
    fmt, gl = cfg.fmt, cfg.group_len
    arrays, meta = {}, []

    def add(name, x, rounding, *, shape=None, grouping=None, inv_bits=None, invalid=False, stall=True):
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        arrays[name] = x
        meta.append({"name": name, "rounding": rounding, "shape": list(shape or (x.size // gl, gl)),
                     "grouping": grouping or "block:%d" % gl, "inv_bits": inv_bits, "invalid": invalid,
                     "seed": int(rng.integers(0, 2**32)), "stall": stall})

    corner = corner_tensor(fmt, gl, rng)
    add("corner_nearest", corner, "nearest")
    add("corner_stochastic", corner, "stochastic")
    spread = min(fmt.max_group_exp + 8, 100)
    add("multiscale_nearest", multiscale_tensor(8, gl, rng, spread), "nearest")
    add("multiscale_stochastic", multiscale_tensor(8, gl, rng, spread), "stochastic")
    if real is not None:
        channels, spatial = real
        act, err = conv_layer_tensors(channels, spatial, seed)
        assert spatial * spatial == gl
        add("conv_activation", act, "nearest", shape=act.shape, grouping="channel")
        add("conv_error", err, "stochastic", shape=err.shape, grouping="channel")
        add("conv_error_nearest", err, "nearest", shape=err.shape, grouping="channel")
    if resnet:
        act, err = resnet20_layer_tensors(seed)
        assert act.shape[2] * act.shape[3] == gl
        add("resnet20_activation", act, "nearest", shape=act.shape, grouping="channel")
        add("resnet20_error", err, "stochastic", shape=err.shape, grouping="channel")
        add("resnet20_error_nearest", err, "nearest", shape=err.shape, grouping="channel")
    # only zeros and FP32 subnormals: DAZ makes amax 0, so S_t = inv = 1 and every group is zero
    sub = (rng.integers(1, 1 << 23, 2 * gl, dtype=np.uint64).astype(np.uint32)
           | (rng.integers(0, 2, 2 * gl, dtype=np.uint64).astype(np.uint32) << np.uint32(31)))
    sub[::3] = 0
    add("subnormal_only", sub.view(np.float32), "stochastic")
    # every FP32 exponent field 0..254, with max finite as amax: tiny inv, many products flushed
    n_full = -(-255 // gl) * gl
    exps = (np.arange(n_full) % 255).astype(np.uint32)
    full = (exps << np.uint32(23)) | rng.integers(0, 1 << 23, n_full, dtype=np.uint64).astype(np.uint32)
    full |= rng.integers(0, 2, n_full, dtype=np.uint64).astype(np.uint32) << np.uint32(31)
    full[n_full // 2] = 0x7F7F_FFFF
    add("full_range", full.view(np.float32), "nearest")
    # a host inv that is not from this tensor's amax: products underflow (FTZ) or overflow
    tiny = multiscale_tensor(4, gl, rng, 40)
    add("ftz_inv", tiny, "nearest", inv_bits=0x0100_0000)  # inv = 2**-125
    big = np.full(gl, 3e38, dtype=np.float32)
    add("overflow_inv", big, "nearest", inv_bits=0x4000_0000, invalid=True)  # 2 * 3e38 overflows
    bad = multiscale_tensor(2, gl, rng, 4)
    bad[1], bad[gl + 2] = np.inf, np.nan
    add("nan_inf", bad, "nearest", invalid=True)
    add("no_stall", multiscale_tensor(6, gl, rng, 10), "stochastic", stall=False)
    # the corner tensor divided by an inexact inv, converted with that inv: every product x * inv
    # lands on or next to a grid value or midpoint only after the FP32 multiplier's rounding, so
    # its guard, round and sticky bits decide the element codes
    inv = np.float32(1 / 1.37)
    inexact = (corner.astype(np.float64) / float(inv)).astype(np.float32)
    add("corner_inexact_inv", inexact, "nearest", inv_bits=int(inv.view(np.uint32)))
    add("corner_inexact_inv_stochastic", inexact, "stochastic", inv_bits=int(inv.view(np.uint32)))
    boundary_cases(cfg, rng, add)
    return arrays, meta


#: Odd significand factors of the inverse scales of the product-tie tensors: together their
#: exact ties reach midpoints with even and odd lower codes, both product normalizations and
#: the g boundary (``product_tie_tensor``) in the default formats.
TIE_INV_FACTORS = (3, 5, 7, 17, 31)


def boundary_cases(cfg: QuantUnitConfig, rng: np.random.Generator, add) -> None:
    """Corner cases each of which one bit of the datapath decides, in every lane (found with the
    mutation flow, docs/verification.md): the group max in every lane, exact FP32 rounding ties
    and single sticky bits of the scale multiply, single bits of y at element and g boundaries,
    stochastic rounding of the tiniest magnitudes, the amax compare one ulp apart, and NaN, Inf
    and overflow in one lane only."""
    fmt, lanes, gl = cfg.fmt, cfg.lanes, cfg.group_len
    one = _bits(1.0)  # inv = 1: y = x exactly
    # the corner tensor with each group rotated, so that its max (and its grid values) visit every lane
    corner = corner_tensor(fmt, gl, rng).reshape(-1, gl)
    add("corner_rotated", np.concatenate([np.roll(grp, i) for i, grp in enumerate(corner)]), "nearest", stall=False)
    bits = midpoint_bit_tensor(fmt, lanes)
    add("midpoint_bits", _both_banks(bits * _signs(len(bits), rng), gl), "nearest", inv_bits=one, stall=False)
    add("g_boundary_bits", g_boundary_tensor(fmt, gl, rng), "nearest", inv_bits=one, stall=False)
    for factor in TIE_INV_FACTORS:
        inv_sig = factor << (24 - factor.bit_length())
        x = product_tie_tensor(fmt, inv_sig, rng)
        if len(x):
            x = np.float32([x[(w + k) % len(x)] for w in range(len(x)) for k in range(lanes)])  # each in every lane
            add(f"product_ties_{factor}", _pad(x, gl), "nearest", inv_bits=_bits(np.ldexp(float(inv_sig), -23)),
                stall=False)
    for sticky_bit in (3, 12):
        found = product_sticky_tensor(fmt, sticky_bit)
        if found is not None:
            x, inv_bits = found
            add(f"product_sticky_bit{sticky_bit}", _pad(np.repeat(x, lanes), gl), "nearest", inv_bits=inv_bits,
                stall=False)
    # random magnitudes at and below the smallest subnormal step (z down to 2**-(R+2) of it), g clamped
    g_max, b_min, man, r = fmt.max_group_exp, fmt.min_normal_exponent, fmt.man_bits, cfg.sr_bits
    lo, hi = b_min - man - r - 2, np.log2(fmt.elem_max)
    for name, top in (("tiny_stochastic", b_min + 1), ("random_stochastic", hi)):
        z = np.exp2(rng.uniform(lo, top, 32 * lanes)) * _signs(32 * lanes, rng)
        y = np.minimum(np.abs(np.ldexp(z, -g_max)), np.ldexp(fmt.elem_max, -g_max)) * np.sign(z)
        add(name, _pad(y, gl), "stochastic", inv_bits=one, stall=False)
    # amax: per lane, the max grows by one ulp per word from a multiple of 16 ulps (bits 0-3 and 5
    # of the running max each decide a compare), the other lanes smaller, with both signs
    for lane in range(lanes):
        base = (int(rng.integers(100, 140)) << 23) | (int(rng.integers(0, 1 << 23)) & ~0x1F) | 0x20
        words = rng.uniform(0, 1, (13, lanes)).astype(np.float32) * _f32(base - (1 << 23))
        words[:, lane] = [_f32(base + k) for k in range(13)]
        add(f"amax_steps_lane{lane}", _pad(words * _signs(words.size, rng).reshape(words.shape), gl), "nearest")
    # NaN/Inf in one lane only (amax and convert passes), and an overflowing product in one lane only
    for lane in range(lanes):
        x = np.float32(rng.uniform(-2, 2, gl))
        x[lane] = (np.inf, -np.nan, -np.inf, np.nan)[lane % 4]
        add(f"special_lane{lane}", x, "nearest", invalid=True)
        x = np.float32(rng.uniform(-2, 2, gl))
        x[lane] = np.float32(-3e38 if lane % 2 else 3e38)
        add(f"overflow_lane{lane}", x, "nearest", inv_bits=_bits(2.0), invalid=True)
    # the largest host inv: amax just above where elem_max / amax overflows FP32, so inv ~ 2**121 to
    # 2**127, with zeros and subnormals (DAZ) in every lane: they must stay code 0, however large inv
    n = 8 * lanes
    tiny = np.exp2(rng.uniform(np.log2(fmt.elem_max) - 127, np.log2(fmt.elem_max) - 121, n))
    tiny = tiny.astype(np.float32) * _signs(n, rng)
    kind = (np.arange(n) % lanes + np.arange(n) // lanes) % 3  # rotates over the lanes word by word
    tiny[kind == 0] = 0.0
    tiny[kind == 1] = _f32(int(rng.integers(1, 1 << 23))) * _signs(int((kind == 1).sum()), rng)  # subnormal
    add("largest_inv", _pad(tiny, gl), "nearest")
    # every FP32 exponent field 0..254 in every lane
    n = 255 * lanes
    exps = np.repeat(np.arange(255, dtype=np.uint32), lanes)
    full = (exps << np.uint32(23)) | rng.integers(0, 1 << 23, n, dtype=np.uint64).astype(np.uint32)
    full |= rng.integers(0, 2, n, dtype=np.uint64).astype(np.uint32) << np.uint32(31)
    add("full_range_lanes", _pad(full.view(np.float32), gl), "nearest", stall=False)


# -- configurations -----------------------------------------------------------------------------
# (format, lanes, group_len, sr_bits, (channels, spatial) of the conv layer or None)
CONFIGS = {
    "e2m1g3_l4_n64": ("e2m1g3", 4, 64, 8, (8, 8)),    # OCP FP4 elements, channel groups of 8x8
    "e4m3g6_l2_n16": ("e4m3g6", 2, 16, 8, (4, 4)),    # g up to 63: the clamp
    "e3m2g4_l3_n3": ("e3m2g4", 3, 3, 5, None),        # group = one word: back-to-back bank swaps
}
SLOW_CONFIGS = {
    "resnet20_e2m1g3_l4_n64": ("e2m1g3", 4, 64, 8, None, True),  # ResNet-20 stage-3 tensors, 8192 elements
    "e5m10g5_l8_n256": ("e5m10g5", 8, 256, 16, (16, 16)),
    "e2m3g2_l1_n4": ("e2m3g2", 1, 4, 3, (6, 2)),
}


def _run(name, spec, tmp_path, seed):
    fmt, lanes, gl, sr_bits, real, *resnet = spec
    cfg = QuantUnitConfig(MLSFormat.parse(fmt), lanes, gl, sr_bits)
    unit = QuantUnit(cfg)
    arrays, meta = build_cases(cfg, seed, real, bool(resnet and resnet[0]))
    data_path = tmp_path / "cases.npz"
    np.savez(data_path, **arrays)
    run_cocotb(unit, "quant_unit", "quant_unit_cocotb", params={
        "fmt": fmt, "lanes": lanes, "group_len": gl, "sr_bits": sr_bits,
        "latency": unit.latency, "amax_latency": unit.amax_latency, "throughput": unit.throughput,
        "data": str(data_path), "cases": meta, "seed": seed,
    })


@pytest.mark.parametrize("name", list(CONFIGS))
def test_quant_unit(name, tmp_path):
    _run(name, CONFIGS[name], tmp_path, seed=2024)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CONFIGS))
def test_quant_unit_slow(name, tmp_path):
    _run(name, SLOW_CONFIGS[name], tmp_path, seed=int(os.environ.get("MLS_SEED", "7")))


@pytest.mark.parametrize("fmt", ["e3m2g4", "e4m3g6"])
def test_boundary_stimulus(fmt):
    """The boundary tensors hit what they claim: exact FP32 ties that RNE rounds onto a midpoint
    or elem_max (scaled by 2**-G), a single sticky bit above such a tie, single y bits."""
    fmt = MLSFormat.parse(fmt)
    rng = np.random.default_rng(0)
    targets = {v for v, _ in boundary_targets(fmt)}
    fp32 = lambda a, b: (torch.from_numpy(np.float32(a)) * torch.tensor(b, dtype=torch.float32)).numpy()  # noqa: E731
    ties = 0
    for factor in TIE_INV_FACTORS:
        inv_sig = factor << (24 - factor.bit_length())
        inv = np.float32(np.ldexp(float(inv_sig), -23))
        x = np.abs(product_tie_tensor(fmt, inv_sig, rng))
        exact = x.astype(np.float64) * float(inv)  # exact: two 24-bit significands
        y = fp32(x, inv).astype(np.float64)
        assert set(y.tolist()) <= targets
        half_ulp = np.spacing(np.float32(y)).astype(np.float64) / 2
        assert np.all(np.abs(exact - y) == half_ulp), "every product is an exact tie"
        ties += len(x)
    assert ties >= 20
    x, inv_bits = product_sticky_tensor(fmt, 3)
    inv = float(_f32(inv_bits))
    y = abs(float(fp32(x, inv)[0]))
    below = float(np.nextafter(np.float32(y), np.float32(0)))
    above_tie = (abs(float(x[0])) * inv - below) / (y - below) - 0.5  # in ulps of y
    assert below in targets and above_tie in (2.0 ** (3 - 23), 2.0 ** (3 - 24)), (below, above_tie)
    bits = midpoint_bit_tensor(fmt, 2).view(np.uint32).astype(np.int64)
    base = {_bits(v) for v in targets}
    diffs = {abs(int(b) - t) for b in bits for t in base}
    steps = {d for d in diffs if d and not d & (d - 1)}  # single-bit steps from a boundary value
    assert {1 << k for k in range(23)} <= steps, "every single bit below the boundary bits, above and below"


def test_quant_unit_properties():
    unit = QuantUnit(QuantUnitConfig("e2m1g3", lanes=4, group_len=64))
    assert unit.throughput == 4
    assert unit.latency == 64 // 4 + 1
    assert unit.amax_latency == 1
    o_payload = unit.signature.members["o"].signature.members["payload"].shape
    assert Shape.cast(o_payload).width == 4 * (1 + 2 + 1)
    assert Shape.cast(unit.signature.members["g"].signature.members["payload"].shape).width == 3


def test_quant_signature_shared():
    """QuantUnit and ConvertPass have one QuantSignature; the unit's adds exactly mode and amax."""
    from hw.quant_unit.convert import ConvertPass
    from hw.quant_unit.signature import QuantSignature

    cfg = QuantUnitConfig("e3m2g4", lanes=2, group_len=8)
    unit, conv = QuantUnit(cfg), ConvertPass(cfg)
    assert unit.signature == QuantSignature(cfg, amax_pass=True)
    assert conv.signature == QuantSignature(cfg, amax_pass=False)
    assert unit.signature != conv.signature != QuantSignature(QuantUnitConfig("e3m2g4", lanes=4, group_len=8),
                                                              amax_pass=False)
    assert list(unit.signature.members) == ["i", "o", "g", "mode", "start", "stochastic", "inv", "seed", "amax",
                                            "invalid"]
    assert [n for n in unit.signature.members if n not in ("mode", "amax")] == list(conv.signature.members)
    for name, member in conv.signature.members.items():
        assert unit.signature.members[name] == member, name
    with pytest.raises(TypeError, match=r"^config must be a QuantUnitConfig, not 'e2m1g3'$"):
        QuantSignature("e2m1g3", amax_pass=False)


def test_config_errors():
    with pytest.raises(ValueError, match=r"the quantization unit needs group_bits >= 1, got e2m1g0 \(G = 0\)"):
        QuantUnitConfig("e2m1g0")
    with pytest.raises(ValueError, match=r"group_len 10 must be a multiple of lanes 4"):
        QuantUnitConfig("e2m1g3", lanes=4, group_len=10)
    with pytest.raises(ValueError, match=r"lanes must be in \[1, 64\], got 0"):
        QuantUnitConfig("e2m1g3", lanes=0)
    with pytest.raises(TypeError, match=r"lanes must be an int, not 2.5"):
        QuantUnitConfig("e2m1g3", lanes=2.5)
    with pytest.raises(ValueError, match=r"sr_bits must be in \[1, 24\], got 25"):
        QuantUnitConfig("e2m1g3", sr_bits=25)
    with pytest.raises(TypeError, match=r"config must be a QuantUnitConfig, not 'e2m1g3'"):
        QuantUnit("e2m1g3")
