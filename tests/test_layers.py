"""MLS layers: each GEMM of the fast path is the FP32 op on golden-quantized operands, every role
setting reaches exactly the gradient it should, and the fast path agrees with the exact path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.arith import mls_conv2d
from model.config import QuantConfig, RoleConfig
from model.formats import MLSFormat
from model.grouping import Grouping
from model.layers import LayerQuant, MLSConv2d, MLSLinear, mls_layers, quantize_model
from model.mls_tensor import MLSTensor
from model.quantize import quantize
from model.random_bits import random_bits_like
from model.resnet import digits_cnn, resnet18, resnet20


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _assert_bit_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert torch.equal(_bits(a), _bits(b)), f"max |diff| {float((a - b).abs().max())}"


def _deq(t, role: RoleConfig, grouping: Grouping, bits=None):
    return quantize(t, role.fmt, grouping, role.rounding, bits, sr_bits=role.sr_bits).dequantize()


CONFIGS = [
    "a=e2m1g3,w=e2m1g3,e=e2m1g3",
    "a=e4m3g3,w=e3m3g0,e=e5m2g3,e_bw=e2m3g3,w_bd=e2m1g3/stochastic,a_bw=e1m1g3",
    "a=e2m1g3,w=e2m1g3,e=e2m1g3,a.grouping=channel:2,w.grouping=tensor,e.sr_bits=11",
]


def _run_layer(layer: nn.Module, x: torch.Tensor, grad_seed: int, grad_out: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    torch.manual_seed(grad_seed)
    out.backward(grad_out)
    return out.detach(), x.grad, layer.weight.grad


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_passes_equal_fp32_ops_on_dequantized_operands(config, stride):
    gen = torch.Generator().manual_seed(3)
    cfg = QuantConfig.parse(config)
    conv = nn.Conv2d(4, 6, 3, stride=stride, padding=1, bias=True)
    layer = MLSConv2d.from_float(conv, cfg)
    lq = layer.quant
    x = torch.randn(3, 4, 7, 7, generator=gen)
    out_shape = F.conv2d(x, conv.weight, None, stride, 1).shape
    grad_out = torch.randn(out_shape, generator=gen)
    out, gx, gw = _run_layer(layer, x, 11, grad_out)

    w = conv.weight.detach()
    fwd = F.conv2d(_deq(x, lq.a, lq.a.grouping), _deq(w, lq.w, lq.w.grouping), conv.bias.detach(), stride, 1)
    _assert_bit_equal(out, fwd)
    # Backward draws random bits in this order: E (backward-data), W (backward-data, unless it
    # reuses the forward copy), E (backward-weight, unless it reuses), A (backward-weight, unless it reuses).
    torch.manual_seed(11)

    def draw(rc, shape):
        return random_bits_like(shape, rc.sr_bits) if rc.rounding == "stochastic" else None

    e_bits = draw(lq.e, grad_out.shape)
    w_bits = draw(lq.w_bd, w.shape) if lq.w_bd != lq.w else None
    ebw_bits = draw(lq.e_bw, grad_out.shape) if lq.e_bw != lq.e else e_bits
    abw_bits = draw(lq.a_bw, x.shape) if lq.a_bw != lq.a else None
    e_bd = _deq(grad_out, lq.e, lq.e.grouping, e_bits)
    e_bw = _deq(grad_out, lq.e_bw, lq.e_bw.grouping, ebw_bits)
    ref_gx = torch.nn.grad.conv2d_input(x.shape, _deq(w, lq.w_bd, lq.w_bd.grouping, w_bits), e_bd, stride, 1)
    ref_gw = torch.nn.grad.conv2d_weight(_deq(x, lq.a_bw, lq.a_bw.grouping, abw_bits), w.shape, e_bw, stride, 1)
    _assert_bit_equal(gx, ref_gx)
    _assert_bit_equal(gw, ref_gw)
    _assert_bit_equal(conv.bias.grad, grad_out.sum(dim=(0, 2, 3)))


@pytest.mark.parametrize("config", ["a=e2m1g3,w=e2m1g3,e=e2m1g3,a.block=4,w.block=8,e.block=2",
                                    "a=e4m3g3,w=e2m1g3,e=e5m2g3/nearest,e_bw=e3m3g3,a_bw=e2m3g3,a.block=0"])
def test_linear_passes_equal_fp32_ops_on_block_quantized_operands(config):
    gen = torch.Generator().manual_seed(5)
    cfg = QuantConfig.parse(config)
    lin = nn.Linear(16, 6)
    layer = MLSLinear.from_float(lin, cfg)
    lq = layer.quant
    x = torch.randn(8, 16, generator=gen)
    grad_out = torch.randn(8, 6, generator=gen)
    out, gx, gw = _run_layer(layer, x, 17, grad_out)
    w = lin.weight.detach()
    _assert_bit_equal(out, F.linear(_deq(x, lq.a, lq.a.linear_grouping(1)), _deq(w, lq.w, lq.w.linear_grouping(1)),
                                    lin.bias.detach()))
    torch.manual_seed(17)
    bits_e = random_bits_like(grad_out.shape, lq.e.sr_bits) if lq.e.rounding == "stochastic" else None
    bits_ebw = random_bits_like(grad_out.shape, lq.e_bw.sr_bits) if lq.e_bw.rounding == "stochastic" else None
    ref_gx = _deq(grad_out, lq.e, lq.e.linear_grouping(1), bits_e) @ _deq(w, lq.w_bd, lq.w_bd.linear_grouping(0))
    ref_gw = _deq(grad_out, lq.e_bw, lq.e_bw.linear_grouping(0), bits_ebw).t() @ _deq(x, lq.a_bw, lq.a_bw.linear_grouping(0))
    _assert_bit_equal(gx, ref_gx)
    _assert_bit_equal(gw, ref_gw)


def test_linear_groups_follow_each_gemm_reduction_axis():
    rc = RoleConfig(MLSFormat.parse("e2m1g3"), block=4)
    assert rc.linear_grouping(1) == Grouping.blocks(4, 1)
    assert rc.linear_grouping(0) == Grouping.blocks(4, 0)
    assert dataclasses.replace(rc, block=0).linear_grouping(0) == Grouping.per_tensor()


# -- every setting reaches exactly its own gradient -------------------------------------------
# Secondary roles inherit unset attributes from their primary, so the base pins them all.
BASE = ("a=e3m3g3,w=e3m3g3,e=e3m3g3/nearest,w_bd=e3m3g3,a_bw=e3m3g3,e_bw=e3m3g3/nearest,"
        "w_bd.grouping=channel,a_bw.grouping=channel,e_bw.grouping=channel,w_bd.block=32,a_bw.block=32,e_bw.block=32")
# (change, which of (output, grad_input, grad_weight) must change)
CHANGES = [
    ("a=e2m1g3", (True, False, False)),
    ("w=e2m1g3", (True, False, False)),
    ("e=e2m1g3/nearest", (False, True, False)),
    ("w_bd=e2m1g3", (False, True, False)),
    ("a_bw=e2m1g3", (False, False, True)),
    ("e_bw=e2m1g3/nearest", (False, False, True)),
    ("e.rounding=stochastic", (False, True, False)),
    ("e_bw.rounding=stochastic", (False, False, True)),
    ("w_bd.rounding=stochastic", (False, True, False)),
    ("a_bw.rounding=stochastic", (False, False, True)),
    ("e.grouping=tensor", (False, True, False)),
    ("a_bw.grouping=tensor", (False, False, True)),
    ("e=fp32", (False, True, False)),
    ("e_bw=fp32", (False, False, True)),
]


def _with(change: str) -> QuantConfig:
    base = dict(item.split("=", 1) for item in BASE.split(","))
    key, value = change.split("=", 1)
    base[key] = value
    return QuantConfig.parse(",".join(f"{k}={v}" for k, v in base.items()))


@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("change,expected", CHANGES, ids=[c for c, _ in CHANGES])
def test_each_role_setting_changes_exactly_its_gradient(kind, change, expected):
    if kind == "linear" and "grouping" in change:
        change = change.replace("grouping=tensor", "block=2")
    gen = torch.Generator().manual_seed(7)
    if kind == "conv":
        base_layer = nn.Conv2d(4, 5, 3, padding=1, bias=False)
        # Channels of very different ranges, so that group exponents matter.
        x = torch.randn(2, 4, 6, 6, generator=gen) * torch.exp2(-2.0 * torch.arange(4)).view(1, 4, 1, 1)
        grad_out = torch.randn(2, 5, 6, 6, generator=gen) * torch.exp2(-2.0 * torch.arange(5)).view(1, 5, 1, 1)
        make = MLSConv2d.from_float
    else:
        base_layer = nn.Linear(12, 5, bias=False)
        x = torch.randn(6, 12, generator=gen) * torch.exp2(-2.0 * torch.arange(12))
        grad_out = torch.randn(6, 5, generator=gen) * torch.exp2(-2.0 * torch.arange(5))
        make = MLSLinear.from_float
    results = []
    for cfg in (QuantConfig.parse(BASE), _with(change)):
        base_layer.weight.grad = None
        results.append(_run_layer(make(base_layer, cfg), x, 0, grad_out))
    changed = tuple(not torch.equal(a, b) for a, b in zip(*results))
    assert changed == expected, f"{change}: (out, grad_x, grad_w) changed = {changed}"


# -- fine formats track FP32; the exact path agrees with the fast path ------------------------
def _train_steps(quant: str, steps: int = 6) -> tuple[list[float], list[torch.Tensor]]:
    from model.data import load_digits

    train, _ = load_digits()
    torch.manual_seed(0)
    model = digits_cnn()
    quantize_model(model, quant)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step, (x, y) in enumerate(train.batches(64, shuffle=True, seed=0)):
        if step == steps:
            break
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().clone() for p in model.parameters()]


def test_fine_format_training_tracks_fp32_and_coarse_does_not():
    ref_losses, ref_params = _train_steps("fp32")
    fine_losses, fine_params = _train_steps("a=e5m10g4,w=e5m10g4,e=e5m10g4/nearest,last=mls")
    coarse_losses, coarse_params = _train_steps("a=e1m1g3,w=e1m1g3,e=e1m1g3,last=mls")
    for ref, fine in zip(ref_losses, fine_losses):
        assert abs(ref - fine) <= 2e-3 * abs(ref)
    flat = [torch.cat([p.flatten() for p in ps]) for ps in (ref_params, fine_params, coarse_params)]
    assert float((flat[1] - flat[0]).norm() / flat[0].norm()) < 1e-2
    for ref, fine, coarse in zip(ref_params, fine_params, coarse_params):  # every tensor, BN included
        assert (fine - ref).norm() < 0.1 * (coarse - ref).norm()


def _transpose01(t: MLSTensor, flip: bool = False) -> MLSTensor:
    def tr(f):
        f = f.transpose(0, 1)
        return (f.flip(2, 3) if flip else f).contiguous()

    return MLSTensor(t.fmt, t.grouping, tr(t.sign), tr(t.exp), tr(t.man), t.group_exp.transpose(0, 1).contiguous(), t.scale)


@pytest.mark.parametrize("fmt", ["e2m1g3", "e4m3g3"])
def test_exact_path_gradients_agree_with_fast_path(fmt):
    gen = torch.Generator().manual_seed(9)
    cfg = QuantConfig.parse(f"a={fmt},w={fmt},e={fmt}/nearest")
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    layer = MLSConv2d.from_float(conv, cfg)
    x = torch.randn(2, 3, 6, 6, generator=gen)
    grad_out = torch.randn(2, 4, 6, 6, generator=gen)
    out, gx, gw = _run_layer(layer, x, 0, grad_out)
    xq, wq, eq = (quantize(t, fmt, Grouping.channel()) for t in (x, conv.weight.detach(), grad_out))
    exact_out = mls_conv2d(xq, wq, 1, 1)
    # backward-data: conv of E with the flipped, transposed weight; backward-weight: conv of A^T with E^T.
    exact_gx = mls_conv2d(eq, _transpose01(wq, flip=True), 1, 1)
    exact_gw = mls_conv2d(_transpose01(xq), _transpose01(eq), 1, 1).transpose(0, 1)
    for fast, exact in ((out, exact_out), (gx, exact_gx), (gw, exact_gw)):
        assert fast.shape == exact.shape
        # FP32 accumulation error of a K-term sum: a few ulps of the sum of |terms| (K <= 72 here).
        tol = 1e-5 * float(exact.abs().max())
        assert torch.allclose(fast, exact, rtol=1e-5, atol=tol), float((fast - exact).abs().max())
        assert not torch.equal(exact, torch.zeros_like(exact))


# -- quantize_model ---------------------------------------------------------------------------
def test_quantize_model_swaps_every_gemm_layer_and_reports_it():
    model = resnet20()
    weights = {n: m.weight for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    swapped = quantize_model(model, "e2m1g3")
    assert swapped == [n for n in weights if n != "fc"]  # last linear stays FP32 by default
    assert mls_layers(model) == swapped
    for name in swapped:
        module = model.get_submodule(name)
        assert isinstance(module, MLSConv2d) and isinstance(module, nn.Conv2d)
        assert module.weight is weights[name]  # shared parameters
    assert type(model.fc) is nn.Linear


def test_quantize_model_first_last_and_skip_options():
    model = digits_cnn()
    assert quantize_model(model, "a=e2m1g3,w=e2m1g3,e=e2m1g3,first=fp32,last=mls", skip=["convs.2"]) == \
        ["convs.1", "convs.3", "fc"]
    assert isinstance(model.fc, MLSLinear)
    assert quantize_model(digits_cnn(), "fp32") == []
    with pytest.raises(ValueError, match=r"skip names \['nope'\] are not modules of the model"):
        quantize_model(digits_cnn(), "e2m1g3", skip="nope")


def test_quantized_resnets_train_a_step():
    for build, shape in ((resnet20, (2, 3, 16, 16)), (digits_cnn, (4, 1, 8, 8))):
        model = build()
        quantize_model(model, "a=e2m1g3,w=e2m1g3,e=e2m1g3,last=mls")
        model(torch.randn(shape)).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(isinstance(m, nn.Conv2d) for m in resnet18().modules()) == 20


def test_mls_conv_rejects_unsupported_padding():
    with pytest.raises(ValueError, match=r"MLSConv2d needs padding_mode='zeros' and integer padding, got padding_mode='reflect'"):
        MLSConv2d(2, 2, 3, padding=1, padding_mode="reflect", quant=QuantConfig.parse("e2m1g3"))


def test_layer_quant_resolves_secondary_roles():
    lq = LayerQuant.from_config(QuantConfig.parse("a=e2m1g3,w=e4m3g3,e=e5m2g3,e_bw=e3m3g3"))
    assert (str(lq.a_bw.fmt), str(lq.w_bd.fmt), str(lq.e_bw.fmt)) == ("e2m1g3", "e4m3g3", "e3m3g3")
    assert lq.e_bw.rounding == "stochastic" and lq.a.rounding == "nearest"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_forward():
    cfg = QuantConfig.parse("e2m1g3")
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.randn(2, 4, 8, 8)
    cpu = MLSConv2d.from_float(conv, cfg)(x)
    gpu = MLSConv2d.from_float(conv.cuda(), cfg)(x.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


def test_compiled_fake_quantize_is_bit_identical_and_used_by_layers():
    """The opt-in torch.compile kernel gives the eager path's bits (or falls back to it)."""
    from model import fake_quantize as qmod

    gen = torch.Generator().manual_seed(21)
    x = torch.randn(4, 6, 5, 5, generator=gen) * torch.exp2(torch.randint(-12, 12, (4, 6, 5, 5), generator=gen).float())
    x.view(-1)[::7] = 0.0
    x.view(-1)[1] = -0.0
    bits = random_bits_like(x.shape, 8, gen)
    eager = {r: qmod.fake_quantize(x, "e2m1g3", "channel", r, bits if r == "stochastic" else None)
             for r in ("nearest", "stochastic")}
    try:
        qmod.use_compiled_fake_quantize(True)
        for rounding, ref in eager.items():
            fused = qmod._fake_quantize_compiled(x, MLSFormat.parse("e2m1g3"), Grouping.channel(), rounding,
                                                 bits if rounding == "stochastic" else None, 8, None)
            assert fused is not None
            _assert_bit_equal(fused, ref)
        # ragged blocks are not fused: the public function falls back to the eager path
        y = torch.randn(3, 10, generator=gen)
        assert qmod._fake_quantize_compiled(y, MLSFormat.parse("e2m1g3"), Grouping.blocks(4), "nearest", None, 8, None) is None
        layer = MLSConv2d.from_float(nn.Conv2d(6, 3, 3, padding=1, bias=False), QuantConfig.parse("a=e2m1g3,w=e2m1g3,e=e2m1g3/nearest"))
        compiled_out = layer(x)
    finally:
        qmod.use_compiled_fake_quantize(False)
    _assert_bit_equal(compiled_out, layer(x))


def test_compiled_stochastic_kernel_splits_the_random_words_like_random_bits_like():
    """The fused stochastic kernel drawing its own bits (64-bit words split in the kernel) gives
    quantize()'s bits for the same seed, and leaves the generator where random_bits_like does."""
    from model import fake_quantize as qmod

    gen = torch.Generator().manual_seed(23)
    fmt = MLSFormat.parse("e2m1g3")
    try:
        qmod.use_compiled_fake_quantize(True)
        for grouping, shape in ((Grouping.channel(), (3, 4, 4, 6)), (Grouping.blocks(4, 0), (8, 6))):
            x = torch.randn(shape, generator=gen) * torch.exp2(torch.randint(-12, 12, shape, generator=gen).float())
            x.view(-1)[::5] = 0.0
            torch.manual_seed(4)
            fused, after = qmod._fake_quantize_compiled(x, fmt, grouping, "stochastic", None, 8, None), torch.rand(2)
            torch.manual_seed(4)
            exact, exact_after = quantize(x, fmt, grouping, "stochastic").dequantize(), torch.rand(2)
            assert fused is not None
            _assert_bit_equal(fused, exact)
            assert torch.equal(after, exact_after)
    finally:
        qmod.use_compiled_fake_quantize(False)
