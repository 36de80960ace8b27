"""Workload tracing and GEMM expansion (sim/workloads.py)."""

import random

import pytest
import torch
from torch import nn

from sim.workloads import (
    Gemm,
    Layer,
    gemms_for_layer,
    network_gemms,
    read_gemm_csv,
    trace_layers,
    write_gemm_csv,
)


class _Small(nn.Module):
    """A conv with stride 2, a conv called twice, and a linear: a tracer must see four layers."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.body(self.body(torch.relu(self.stem(x))))
        return self.head(x.mean((2, 3)))


def test_trace_small_module():
    layers = trace_layers(_Small(), (3, 17, 13))
    assert [l.name for l in layers] == ["stem", "body", "body#2", "head"]
    stem = layers[0]
    # (17 + 2*2 - 5) // 2 + 1 = 9, (13 + 4 - 5) // 2 + 1 = 7
    assert stem.in_hw == (17, 13) and stem.out_hw == (9, 7)
    assert stem.kernel == (5, 5) and stem.stride == (2, 2) and stem.padding == (2, 2)
    assert stem.reads_input and not layers[1].reads_input
    head = layers[3]
    assert (head.kind, head.in_channels, head.out_channels) == ("linear", 8, 4)


def test_quantized_subclass_is_traced():
    class QConv(nn.Conv2d):
        pass

    model = nn.Sequential(QConv(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    layers = trace_layers(model, (1, 6, 6))
    assert [l.kind for l in layers] == ["conv", "linear"]


def _resnet20_forward_macs_per_image() -> int:
    """Hand count of He et al.'s CIFAR ResNet-20 (option-B 1x1 shortcuts), independent of tracing."""
    conv = lambda hw, cout, cin, k: hw * hw * cout * cin * k * k  # noqa: E731
    total = conv(32, 16, 3, 3)
    total += 6 * conv(32, 16, 16, 3)
    total += conv(16, 32, 16, 3) + 5 * conv(16, 32, 32, 3) + conv(16, 32, 16, 1)
    total += conv(8, 64, 32, 3) + 5 * conv(8, 64, 64, 3) + conv(8, 64, 32, 1)
    return total + 64 * 10


def test_resnet20_gemms():
    gemms = network_gemms("resnet20")
    by_pass = {p: sum(g.macs for g in gemms if g.pass_ == p) for p in ("forward", "backward-data", "backward-weight")}
    fwd = _resnet20_forward_macs_per_image() * 128
    assert by_pass["forward"] == fwd
    assert by_pass["backward-weight"] == fwd
    # the stem needs no input gradient; every other layer's transposed conv has the forward's MACs
    assert by_pass["backward-data"] == fwd - 32 * 32 * 16 * 3 * 9 * 128
    # docs/numerics.md §3: ResNet-20's backward-weight reduction at batch 128 is K = 131072
    assert max(g.k for g in gemms) == 131072
    assert len([g for g in gemms if g.pass_ == "forward"]) == 22  # 19 convs + 2 shortcuts + fc


def test_resnet18_size():
    gemms = network_gemms("resnet18", batch=1)
    fwd = sum(g.macs for g in gemms if g.pass_ == "forward")
    assert 1.80e9 < fwd < 1.83e9  # the widely quoted 1.8 GMAC of ResNet-18 at 224x224
    assert len([g for g in gemms if g.pass_ == "forward"]) == 21


def _brute_bwd_data_macs(layer: Layer, batch: int) -> int:
    """Dense transposed-conv MACs by direct enumeration of (input pixel, kernel tap) pairs."""
    (h, w), (kh, kw), (sh, sw), (ph, pw) = layer.in_hw, layer.kernel, layer.stride, layer.padding
    rows = sum(1 for i in range(h) for r in range(kh) if (i + ph - r) % sh == 0)
    cols = sum(1 for j in range(w) for c in range(kw) if (j + pw - c) % sw == 0)
    return batch * rows * cols * layer.in_channels * layer.out_channels // layer.groups


@pytest.mark.parametrize("seed", range(12))
def test_backward_data_phases_random(seed):
    rng = random.Random(seed)
    k, s = rng.choice([1, 2, 3, 5, 7]), rng.choice([1, 2, 3])
    p = rng.randrange(0, k)
    h, w = rng.randrange(k, 20), rng.randrange(k, 20)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    groups = rng.choice([1, 2])
    layer = Layer("x", "conv", 4 * groups, 6 * groups, (h, w), (ho, wo), (k, k), (s, s), (p, p), groups)
    gemms = gemms_for_layer(layer, batch=3)
    bwd = [g for g in gemms if g.pass_ == "backward-data"]
    assert sum(g.macs for g in bwd) == _brute_bwd_data_macs(layer, 3)
    assert all(g.n == 4 for g in bwd)  # Cin per group
    fwd = [g for g in gemms if g.pass_ == "forward"]
    assert sum(g.macs for g in fwd) == 3 * layer.macs_per_image
    wgt = [g for g in gemms if g.pass_ == "backward-weight"]
    assert all(g.k == 3 * ho * wo and g.m == 6 and g.n == 4 * k * k for g in wgt)


def test_csv_round_trip(tmp_path):
    gemms = network_gemms("resnet20")[:9]
    path = tmp_path / "g.csv"
    write_gemm_csv(gemms, path)
    assert read_gemm_csv(path) == gemms


def test_csv_minimal_columns():
    gemms = read_gemm_csv("layer,pass,m,n,k\nfc,forward,128,10,64\n")
    assert gemms == [Gemm("fc", "forward", 128, 10, 64, "activation", "weight", 128 * 64, 64 * 10, 1280, 1, "")]


@pytest.mark.parametrize("text, message", [
    ("layer,m,n,k\nx,1,2,3\n", "lacks required column"),
    ("layer,pass,m,n,k\nx,forward,1,two,3\n", "column n must be an integer, got 'two'"),
    ("layer,pass,m,n,k\nx,forward,0,2,3\n", "m must be at least 1, got 0"),
    ("layer,pass,m,n,k\nx,sideways,1,2,3\n", "pass must be one of"),
    ("layer,pass,m,n,k\n", "no GEMM rows"),
    ("\n", "empty"),
])
def test_csv_errors(text, message):
    with pytest.raises(ValueError, match=message):
        read_gemm_csv(text)


@pytest.mark.parametrize("text, message", [
    ("layer,pass,m,n,k\nfc,forward,1,2,3\nx,forward,1,2\n", r"^GEMM CSV line 3: 4 fields, the header has 5$"),
    ("layer,pass,m,n,k\nx,forward,1,2,3,7\n", r"^GEMM CSV line 2: 6 fields, the header has 5$"),
    ("layer,pass,m,n,k\nx,forward,1,2,3,,\n", r"^GEMM CSV line 2: 7 fields, the header has 5$"),
])
def test_csv_field_count(text, message):
    """A short or long row is an error naming the line and both counts, never padded or cut."""
    with pytest.raises(ValueError, match=message):
        read_gemm_csv(text)


def test_csv_header_error_names_the_user_column():
    with pytest.raises(ValueError) as info:
        read_gemm_csv("layer,m,k\nx,1,3\n")
    assert str(info.value) == ("GEMM CSV header 'layer,m,k' lacks required column(s) pass, n; "
                               "expected at least layer,pass,m,n,k")
    assert "pass_" not in str(info.value)
    # what write_gemm_csv writes (pass_) reads back as well as the documented pass
    assert read_gemm_csv("layer,pass_,m,n,k\nx,forward,1,2,3\n") == read_gemm_csv("layer,pass,m,n,k\nx,forward,1,2,3\n")


def test_trace_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        trace_layers(object(), (3, 8, 8))
    with pytest.raises(ValueError, match="no nn.Conv2d or nn.Linear"):
        trace_layers(nn.ReLU(), (3, 8, 8))
    with pytest.raises(ValueError, match="positive"):
        trace_layers(_Small(), (3, 0, 8))
    with pytest.raises(ValueError, match="unknown network"):
        network_gemms("vgg")
    with pytest.raises(ValueError, match="batch size"):
        gemms_for_layer(trace_layers(_Small(), (3, 8, 8))[0], 0)


def test_quantized_resnet20_traces_the_same_layers():
    from model.layers import quantize_model
    from model.resnet import resnet20

    plain = trace_layers(resnet20(), (3, 32, 32))
    model = resnet20()
    assert quantize_model(model, "e2m1g3")
    assert trace_layers(model, (3, 32, 32)) == plain


def test_linear_gemms():
    layer = trace_layers(nn.Sequential(nn.Linear(100, 7)), (100,))[0]
    fwd, bwd_w = gemms_for_layer(layer, 64)  # reads the input: no backward-data
    assert (fwd.m, fwd.n, fwd.k, fwd.k_chunk) == (64, 7, 100, 32)
    assert (bwd_w.m, bwd_w.n, bwd_w.k) == (7, 100, 64)
    assert len(gemms_for_layer(layer, 64, input_grad=True)) == 3
