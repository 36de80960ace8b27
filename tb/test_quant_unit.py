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
    return arrays, meta


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
