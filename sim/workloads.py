"""Training workloads as GEMM lists, traced from real torch networks (docs/cost_model.md §1).

Every ``nn.Conv2d`` / ``nn.Linear`` call of a network's forward pass (found with forward hooks,
so quantized subclasses count too) becomes a :class:`Layer`, and every layer expands into the
three GEMMs of one training step, ``C[M, N] = A[M, K] @ B[K, N]``:

==============  ==================  ===========  =====================  =================
pass            A (M x K)           B (K x N)    M                      K
==============  ==================  ===========  =====================  =================
forward         activation (im2col)  weight      batch*Ho*Wo            Cin*kh*kw
backward-data   error (transposed)   weight^T    batch*H*W (per phase)  Cout*taps(phase)
backward-weight error^T              act (im2col) Cout                  batch*Ho*Wo
==============  ==================  ===========  =====================  =================

(N is Cout, Cin and Cin*kh*kw respectively.) Backward-data of a stride-s convolution is the
transposed convolution; it is split into its s*s sub-pixel phases, each a dense GEMM whose
kernel keeps only the taps of that phase, so no multiply by an inserted zero is counted and
the MAC count equals the forward pass (exactly, up to padding at the borders). Grouped
convolutions are split per group. Linear layers are the kh = kw = H = W = 1 case.

``k_chunk`` is the run length along K over which both operands' group exponents stay constant
with channel-wise grouping of channel-block size ``gc`` (docs/numerics.md §1, §3.1), from
``model.beats.conv_k_chunk``: kh*kw*gc (taps of a block of gc input channels) for the forward
pass, the taps of one output channel for backward-data (the weight's group changes with every
output channel, whatever gc) and Ho*Wo positions of one image for backward-weight; for linear
layers the MX-style block of ``model.config.DEFAULT_LINEAR_BLOCK`` (gc does not apply). K is a
whole number of chunks except for a ragged last block (channels not a multiple of gc), which
``model.beats.count_beats`` counts as a shorter last chunk. The energy model charges one G-bit
group exponent per chunk read; the cycle model counts an L-lane PE's beats from it.

A GEMM list can also come from a CSV (``read_gemm_csv``) so users can bring their own network.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from model.beats import conv_k_chunk

from .report_io import csv_text, write_csv

__all__ = [
    "PASSES",
    "Gemm",
    "Layer",
    "NETWORKS",
    "gemms_for_layer",
    "network_gemms",
    "read_gemm_csv",
    "trace_layers",
    "training_gemms",
    "write_gemm_csv",
]

PASSES = ("forward", "backward-data", "backward-weight")

#: Default networks of the report: (builder, input shape per image, training batch size).
NETWORKS = {
    "resnet20": ("resnet20", (3, 32, 32), 128),
    "resnet18": ("resnet18", (3, 224, 224), 256),
}


@dataclass(frozen=True)
class Layer:
    """One conv or linear call of a traced network (shapes per image; batch kept separately)."""

    name: str
    kind: str  # "conv" or "linear"
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int = 1
    #: The layer reads the network input, so training needs no backward-data GEMM for it.
    reads_input: bool = False

    @property
    def macs_per_image(self) -> int:
        kh, kw = self.kernel
        return (self.out_hw[0] * self.out_hw[1] * self.out_channels
                * (self.in_channels // self.groups) * kh * kw)


@dataclass(frozen=True)
class Gemm:
    """One GEMM ``C[M, N] = A[M, K] @ B[K, N]`` of a training step.

    ``a_elems``/``b_elems``/``c_elems`` count the distinct elements of the operand tensors in
    memory (before im2col expansion); the array streams ``M*K`` and ``K*N`` elements per pass
    over the output, which the cycle model turns into traffic.
    """

    layer: str
    pass_: str
    m: int
    n: int
    k: int
    a_role: str
    b_role: str
    a_elems: int
    b_elems: int
    c_elems: int
    k_chunk: int = 1
    phase: str = ""

    def __post_init__(self) -> None:
        for name in ("m", "n", "k", "a_elems", "b_elems", "c_elems", "k_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GEMM {self.layer!r} {self.pass_}: {name} must be an int, not {value!r}")
            if value < 1:
                raise ValueError(f"GEMM {self.layer!r} {self.pass_}: {name} must be at least 1, got {value}")
        if self.pass_ not in PASSES:
            raise ValueError(f"GEMM {self.layer!r}: pass must be one of {PASSES}, got {self.pass_!r}")

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


# -- tracing ---------------------------------------------------------------------------------
def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def trace_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[Layer]:
    """Run one image of ``input_shape`` (C, H, W) or (features,) through ``model`` and record
    every ``nn.Conv2d`` / ``nn.Linear`` call in execution order (hooks, so subclasses count)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, not {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input shape must be non-empty positive sizes per image, got {input_shape!r}")
    names = {module: name for name, module in model.named_modules()}
    layers: list[Layer] = []
    calls: dict[str, int] = {}

    def hook(module, inputs, output):
        name = names.get(module, type(module).__name__) or "model"
        calls[name] = calls.get(name, 0) + 1
        if calls[name] > 1:  # a module called twice is two layers of work
            name = f"{name}#{calls[name]}"
        x = inputs[0]
        reads_input = x is image
        if isinstance(module, nn.Conv2d):
            # (left, right, top, bottom); also covers padding="same"/"valid"
            rp = module._reversed_padding_repeated_twice
            pad = (int(rp[2]), int(rp[0]))
            if _pair(module.dilation) != (1, 1):
                raise ValueError(f"layer {name!r}: dilated convolutions are not modelled")
            layers.append(Layer(
                name, "conv", module.in_channels, module.out_channels,
                (int(x.shape[-2]), int(x.shape[-1])), (int(output.shape[-2]), int(output.shape[-1])),
                _pair(module.kernel_size), _pair(module.stride), pad, module.groups, reads_input))
        else:
            rows = math.prod(x.shape[1:-1]) if x.dim() > 2 else 1  # extra leading dims fold into M
            layers.append(Layer(name, "linear", module.in_features, module.out_features,
                                (rows, 1), (rows, 1), (1, 1), (1, 1), (0, 0), 1, reads_input))

    # the image lives where the model does: a model built on the "meta" device traces shapes only
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    image = torch.zeros((1,) + shape, device=first.device if first is not None else "cpu")
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(image)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d or nn.Linear layer to trace")
    return layers


# -- GEMM expansion ----------------------------------------------------------------------------
def _phase_taps(size_in: int, pad: int, stride: int, kernel: int) -> list[tuple[int, int, int]]:
    """Sub-pixel phases of a transposed conv along one axis: (phase, rows, taps) with rows > 0.

    Input row i receives kernel taps r with (i + pad - r) divisible by the stride; grouping the
    rows by (i + pad) mod stride gives stride dense sub-convolutions."""
    out = []
    for phase in range(stride):
        rows = sum(1 for i in range(size_in) if (i + pad) % stride == phase)
        taps = sum(1 for r in range(kernel) if r % stride == phase)
        if rows and taps:
            out.append((phase, rows, taps))
    return out


def gemms_for_layer(layer: Layer, batch: int, input_grad: bool = False, gc: int = 1) -> list[Gemm]:
    """The training GEMMs of one layer at a batch size (backward-data split into phases), with
    ``k_chunk`` for channel grouping of channel-block size ``gc``.

    A layer that reads the network input gets no backward-data GEMM unless ``input_grad``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch size must be a positive int, got {batch!r}")
    if isinstance(gc, bool) or not isinstance(gc, int) or gc < 1:
        raise ValueError(f"channel block gc must be a positive int, got {gc!r}")
    if layer.kind == "conv" and layer.groups > 1 and (layer.in_channels // layer.groups) % gc:
        raise ValueError(f"layer {layer.name!r}: gc = {gc} does not divide its {layer.in_channels // layer.groups} "
                         f"input channels per group, so channel blocks would straddle its groups")
    (h, w), (ho, wo), (kh, kw) = layer.in_hw, layer.out_hw, layer.kernel
    g = layer.groups
    cin, cout = layer.in_channels // g, layer.out_channels // g
    act = batch * layer.in_channels * h * w
    err = batch * layer.out_channels * ho * wo
    wgt = layer.out_channels * cin * kh * kw
    gemms = []
    suffix = lambda i: f"/g{i}" if g > 1 else ""  # noqa: E731
    if layer.kind == "linear":
        return _linear_gemms(layer, batch, input_grad)
    for gi in range(g):
        tag = suffix(gi)
        gemms.append(Gemm(layer.name, "forward", batch * ho * wo, cout, cin * kh * kw,
                          "activation", "weight", act // g, wgt // g, err // g,
                          conv_k_chunk("forward", taps=kh * kw, gc=gc), tag))
        if layer.reads_input and not input_grad:
            rows = cols = []
        else:
            rows = _phase_taps(h, layer.padding[0], layer.stride[0], kh)
            cols = _phase_taps(w, layer.padding[1], layer.stride[1], kw)
        multi = len(rows) * len(cols) > 1
        for pr, nr, tr in rows:
            for pc, nc, tc in cols:
                phase = tag + (f"/p{pr}{pc}" if multi else "")
                gemms.append(Gemm(layer.name, "backward-data", batch * nr * nc, cin, cout * tr * tc,
                                  "error", "weight", err // g, wgt // g, act // g,
                                  conv_k_chunk("backward-data", taps=tr * tc, gc=gc), phase))
        gemms.append(Gemm(layer.name, "backward-weight", cout, cin * kh * kw, batch * ho * wo,
                          "error", "activation", err // g, act // g, wgt // g,
                          conv_k_chunk("backward-weight", taps=kh * kw, gc=gc, out_positions=ho * wo), tag))
    return gemms


def _linear_gemms(layer: Layer, batch: int, input_grad: bool) -> list[Gemm]:
    """A linear layer (extra leading dims folded into the batch); MX-style groups of
    ``model.config.DEFAULT_LINEAR_BLOCK`` elements along each reduction."""
    from model.config import DEFAULT_LINEAR_BLOCK

    rows = batch * layer.in_hw[0]
    fin, fout = layer.in_channels, layer.out_channels
    act, err, wgt = rows * fin, rows * fout, fin * fout
    chunk = lambda k: min(k, DEFAULT_LINEAR_BLOCK) if DEFAULT_LINEAR_BLOCK else k  # noqa: E731
    gemms = [Gemm(layer.name, "forward", rows, fout, fin, "activation", "weight", act, wgt, err, chunk(fin))]
    if input_grad or not layer.reads_input:
        gemms.append(Gemm(layer.name, "backward-data", rows, fin, fout, "error", "weight", err, wgt, act, chunk(fout)))
    gemms.append(Gemm(layer.name, "backward-weight", fout, fin, rows, "error", "activation", err, act, wgt, chunk(rows)))
    return gemms


def training_gemms(layers: list[Layer], batch: int, input_grad: bool = False, gc: int = 1) -> list[Gemm]:
    """All GEMMs of one training step of a traced network (channel-block size ``gc``)."""
    return [gemm for layer in layers for gemm in gemms_for_layer(layer, batch, input_grad, gc)]


@functools.lru_cache(maxsize=None)
def _network_layers(name: str) -> tuple[Layer, ...]:
    from model import resnet

    builder, shape, _ = NETWORKS[name]
    model = getattr(resnet, builder)()
    return tuple(trace_layers(model, shape))


def network_gemms(name: str, batch: int | None = None, gc: int = 1) -> list[Gemm]:
    """GEMMs of a default network (``resnet20`` at batch 128, ``resnet18`` at batch 256) with
    channel-block size ``gc``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)} or use a GEMM CSV")
    return training_gemms(list(_network_layers(name)), NETWORKS[name][2] if batch is None else batch, gc=gc)


# -- CSV I/O -----------------------------------------------------------------------------------
CSV_FIELDS = [f.name for f in fields(Gemm)]
_REQUIRED = ("layer", "pass_", "m", "n", "k")


def _field_of(column: str) -> str:
    """The Gemm field a CSV column fills: ``pass`` (and ``pass_``, what write_gemm_csv writes) -> ``pass_``."""
    return "pass_" if column == "pass" else column


def _user_column(field: str) -> str:
    """The column name an error message shows for a Gemm field (``pass``, not ``pass_``)."""
    return "pass" if field == "pass_" else field


def write_gemm_csv(gemms: list[Gemm], path: str | Path | None = None) -> str:
    """Write a GEMM list as CSV (columns of :class:`Gemm`); returns the text."""
    rows = [asdict(gemm) for gemm in gemms]
    return csv_text(rows, CSV_FIELDS) if path is None else write_csv(path, rows, CSV_FIELDS)


def read_gemm_csv(source: str | Path) -> list[Gemm]:
    """Read a user GEMM list. Required columns: layer, pass (or pass_), m, n, k. Optional:
    a_role, b_role, a_elems, b_elems, c_elems (default: the dense matrix sizes), k_chunk, phase.

    ``source`` is a path or the CSV text itself (if it contains a newline)."""
    text = source if isinstance(source, str) and "\n" in source else Path(source).read_text()
    reader = csv.DictReader(io.StringIO(text))
    required = ",".join(_user_column(c) for c in _REQUIRED)
    if not reader.fieldnames:
        raise ValueError(f"GEMM CSV is empty: expected a header with {required}")
    header = [h.strip() for h in reader.fieldnames]
    missing = [_user_column(c) for c in _REQUIRED if c not in {_field_of(h) for h in header}]
    if missing:
        raise ValueError(f"GEMM CSV header {','.join(header)!r} lacks required column(s) {', '.join(missing)}; "
                         f"expected at least {required}")
    gemms = []
    for line, raw in enumerate(reader, start=2):
        # DictReader files surplus fields under the key None and fills missing ones with None.
        if None in raw or any(v is None for v in raw.values()):
            fields = len(header) - sum(v is None for v in raw.values()) + len(raw.get(None) or ())
            raise ValueError(f"GEMM CSV line {line}: {fields} fields, the header has {len(header)}")
        row = {_field_of(k.strip()): v.strip() for k, v in raw.items()}

        def number(col: str, default: int | None = None) -> int:
            value = row.get(col, "")
            if value == "" and default is not None:
                return default
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"GEMM CSV line {line}: column {col} must be an integer, got {value!r}") from None

        m, n, k = number("m"), number("n"), number("k")
        try:
            gemms.append(Gemm(
                layer=row["layer"] or f"gemm{line - 1}", pass_=row["pass_"] or "forward",
                m=m, n=n, k=k, a_role=row.get("a_role") or "activation", b_role=row.get("b_role") or "weight",
                a_elems=number("a_elems", m * k), b_elems=number("b_elems", k * n),
                c_elems=number("c_elems", m * n), k_chunk=number("k_chunk", 1), phase=row.get("phase", "")))
        except (ValueError, TypeError) as error:
            raise ValueError(f"GEMM CSV line {line}: {error}") from None
    if not gemms:
        raise ValueError("GEMM CSV has a header but no GEMM rows")
    return gemms
