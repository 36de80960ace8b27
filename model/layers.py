"""Drop-in MLS layers (docs/training.md): every GEMM input of a conv/linear layer is quantized.

A layer's three GEMMs and their operands:

- forward          ``Y  = A  * W``   quantizes A (role ``a``) and W (role ``w``);
- backward-data    ``dA = E  * W^T`` quantizes E (role ``e``) and W (role ``w_bd``);
- backward-weight  ``dW = A^T * E``  quantizes E (role ``e_bw``) and A (role ``a_bw``).

The fast path runs FP32 GEMMs on ``model.quantize.fake_quantize`` outputs, which are
bit-identical to ``quantize(...).dequantize()`` (the golden quantizer). Bias, batch norm,
activations, the loss, the optimizer and the master weights stay FP32.

Grouping (which elements share a group exponent):

- conv: the role's grouping (default channel-wise: A/E per (n, c), W per (cout, cin)). With it every
  GEMM reduction splits into chunks with constant exponents, so one quantized copy of each tensor
  serves both GEMMs that use it.
- linear: blocks of ``block`` elements along *each GEMM's* reduction axis (OCP MX layout):
  forward reduces over in-features (A and W blocked along dim 1), backward-data over
  out-features (E along dim 1, W along dim 0), backward-weight over the batch (E and A along
  dim 0). So each linear operand is quantized once per GEMM that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from .config import QuantConfig, RoleConfig
from .grouping import Grouping
from .fake_quantize import fake_quantize

__all__ = ["LayerQuant", "MLSConv2d", "MLSLinear", "quantize_model", "mls_layers"]


@dataclass(frozen=True)
class LayerQuant:
    """The six resolved operand settings of one layer (from a ``QuantConfig``)."""

    a: RoleConfig
    w: RoleConfig
    e: RoleConfig
    w_bd: RoleConfig
    a_bw: RoleConfig
    e_bw: RoleConfig

    @classmethod
    def from_config(cls, config: QuantConfig) -> LayerQuant:
        return cls(*(config.role(r) for r in ("a", "w", "e", "w_bd", "a_bw", "e_bw")))


def _q(t: torch.Tensor, role: RoleConfig, grouping: Grouping, generator: torch.Generator | None = None) -> torch.Tensor:
    if role.fmt is None:
        return t
    out = fake_quantize(t.detach(), role.fmt, grouping, role.rounding, sr_bits=role.sr_bits, generator=generator)
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)  # keep NHWC for the conv kernels (--channels-last)
    return out


class _MLSConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lq: LayerQuant, stride, padding, dilation, groups, wgen):
        xq = _q(x, lq.a, lq.a.grouping)
        wq = _q(weight, lq.w, lq.w.grouping, wgen)
        ctx.lq, ctx.conv, ctx.wgen = lq, (stride, padding, dilation, groups), wgen
        ctx.has_bias = bias is not None
        # Reuse the forward copies when a backward operand has the same setting (quantize once).
        ctx.save_for_backward(x if lq.a_bw != lq.a else None, xq if lq.a_bw == lq.a else None,
                              weight if lq.w_bd != lq.w else None, wq if lq.w_bd == lq.w else None)
        ctx.x_shape, ctx.w_shape = x.shape, weight.shape
        return F.conv2d(xq, wq, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, xq, weight, wq = ctx.saved_tensors
        lq = ctx.lq
        stride, padding, dilation, groups = ctx.conv
        grad_x = grad_w = grad_b = None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        eq = w_bd = None
        if need_x:
            eq = _q(grad_out, lq.e, lq.e.grouping)
            w_bd = wq if wq is not None else _q(weight, lq.w_bd, lq.w_bd.grouping, ctx.wgen)
        if need_w:
            e_bw = eq if (eq is not None and lq.e_bw == lq.e) else _q(grad_out, lq.e_bw, lq.e_bw.grouping)
            a_bw = xq if xq is not None else _q(x, lq.a_bw, lq.a_bw.grouping)
        if need_x and need_w and e_bw is eq:
            # Both GEMMs read the same quantized E: one convolution_backward computes both, as
            # the FP32 layer's backward does (same kernels, same bits as the two calls below).
            grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
                eq, a_bw, w_bd, None, _pair(stride), _pair(padding), _pair(dilation), False, [0, 0], groups,
                [True, True, False])
        else:
            if need_x:
                grad_x = torch.nn.grad.conv2d_input(ctx.x_shape, w_bd, eq, stride, padding, dilation, groups)
            if need_w:
                grad_w = torch.nn.grad.conv2d_weight(a_bw, ctx.w_shape, e_bw, stride, padding, dilation, groups)
        if need_b and ctx.has_bias:
            grad_b = grad_out.sum(dim=(0, 2, 3))  # not a GEMM: FP32
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


class _MLSLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lq: LayerQuant, wgen):
        x2 = x.reshape(-1, x.shape[-1])
        xq = _q(x2, lq.a, lq.a.linear_grouping(1))
        wq = _q(weight, lq.w, lq.w.linear_grouping(1), wgen)
        ctx.lq, ctx.x_shape, ctx.has_bias, ctx.wgen = lq, x.shape, bias is not None, wgen
        ctx.save_for_backward(x2, weight)
        out = F.linear(xq, wq, bias)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x2, weight = ctx.saved_tensors
        lq = ctx.lq
        e2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if need_x:  # dA[N, in] = E[N, out] @ W[out, in]: reduces over out
            eq = _q(e2, lq.e, lq.e.linear_grouping(1))
            wq = _q(weight, lq.w_bd, lq.w_bd.linear_grouping(0), ctx.wgen)
            grad_x = (eq @ wq).reshape(ctx.x_shape)
        if need_w:  # dW[out, in] = E^T[out, N] @ A[N, in]: reduces over the batch
            eq = _q(e2, lq.e_bw, lq.e_bw.linear_grouping(0))
            aq = _q(x2, lq.a_bw, lq.a_bw.linear_grouping(0))
            grad_w = eq.t() @ aq
        if need_b and ctx.has_bias:
            grad_b = e2.sum(dim=0)
        return grad_x, grad_w, grad_b, None, None


class MLSConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose three GEMMs take MLS-quantized inputs (see the module doc)."""

    def __init__(self, *args, quant: QuantConfig | LayerQuant, weight_generator: torch.Generator | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError(f"MLSConv2d needs padding_mode='zeros' and integer padding, "
                             f"got padding_mode={self.padding_mode!r}, padding={self.padding!r}")
        self.quant = quant if isinstance(quant, LayerQuant) else LayerQuant.from_config(quant)
        self.weight_generator = weight_generator

    @classmethod
    def from_float(cls, conv: nn.Conv2d, quant: QuantConfig | LayerQuant,
                   weight_generator: torch.Generator | None = None) -> MLSConv2d:
        """A quantized twin sharing ``conv``'s parameters (same Parameter objects).

        ``weight_generator``: where the weight's stochastic-rounding bits come from (None: torch's
        global generator); data-parallel training gives every rank the same one (model.distributed).
        """
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update({k: v for k, v in conv.__dict__.items() if k not in ("_parameters", "_buffers", "_modules")})
        new._parameters = dict(conv._parameters)
        new._buffers = dict(conv._buffers)
        new._modules = dict(conv._modules)
        if new.padding_mode != "zeros" or isinstance(new.padding, str):
            raise ValueError(f"MLSConv2d needs padding_mode='zeros' and integer padding, "
                             f"got padding_mode={new.padding_mode!r}, padding={new.padding!r}")
        new.quant = quant if isinstance(quant, LayerQuant) else LayerQuant.from_config(quant)
        new.weight_generator = weight_generator
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MLSConv2dFunction.apply(x, self.weight, self.bias, self.quant, self.stride, self.padding,
                                        self.dilation, self.groups, self.weight_generator)

    def extra_repr(self) -> str:
        q = self.quant
        return super().extra_repr() + f", a={q.a}, w={q.w}, e={q.e}"


class MLSLinear(nn.Linear):
    """``nn.Linear`` whose three GEMMs take MLS-quantized inputs (block grouping, see module doc)."""

    def __init__(self, *args, quant: QuantConfig | LayerQuant, weight_generator: torch.Generator | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.quant = quant if isinstance(quant, LayerQuant) else LayerQuant.from_config(quant)
        self.weight_generator = weight_generator

    @classmethod
    def from_float(cls, linear: nn.Linear, quant: QuantConfig | LayerQuant,
                   weight_generator: torch.Generator | None = None) -> MLSLinear:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update({k: v for k, v in linear.__dict__.items() if k not in ("_parameters", "_buffers", "_modules")})
        new._parameters = dict(linear._parameters)
        new._buffers = dict(linear._buffers)
        new._modules = dict(linear._modules)
        new.quant = quant if isinstance(quant, LayerQuant) else LayerQuant.from_config(quant)
        new.weight_generator = weight_generator
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MLSLinearFunction.apply(x, self.weight, self.bias, self.quant, self.weight_generator)

    def extra_repr(self) -> str:
        q = self.quant
        return super().extra_repr() + f", a={q.a}, w={q.w}, e={q.e}"


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def quantize_model(model: nn.Module, config: QuantConfig | str, skip=(),
                   weight_generator: torch.Generator | None = None) -> list[str]:
    """Swap every ``nn.Conv2d``/``nn.Linear`` of ``model`` (in place) for its MLS twin.

    Left in FP32: names in ``skip``, the first conv if ``config.first_fp32``, the last linear
    if ``config.last_fp32``. An all-FP32 config swaps nothing. Returns the swapped module names
    (in module order); parameters are shared, so an optimizer built before still works.
    ``weight_generator`` (default: torch's global generator) feeds the stochastic rounding of
    weights only (W forward and backward-data), so data-parallel ranks can share one stream for
    them while activations and errors draw from each rank's own.
    """
    config = QuantConfig.parse(config)
    if isinstance(skip, str):
        skip = (skip,)
    skip = set(skip)
    names = {name for name, _ in model.named_modules()}
    unknown = skip - names
    if unknown:
        raise ValueError(f"skip names {sorted(unknown)} are not modules of the model")
    if config.is_fp32:
        return []
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, (MLSConv2d, MLSLinear))]
    convs = [n for n, m in layers if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    if config.first_fp32 and convs:
        skip.add(convs[0])
    if config.last_fp32 and linears:
        skip.add(linears[-1])
    if weight_generator is not None and not isinstance(weight_generator, torch.Generator):
        raise TypeError(f"weight_generator must be a torch.Generator or None, not {weight_generator!r}")
    lq = LayerQuant.from_config(config)
    swapped = []
    for name, module in layers:
        if name in skip:
            continue
        cls = MLSConv2d if isinstance(module, nn.Conv2d) else MLSLinear
        _set_submodule(model, name, cls.from_float(module, lq, weight_generator))
        swapped.append(name)
    return swapped


def mls_layers(model: nn.Module) -> list[str]:
    """Names of the MLS layers in a model."""
    return [n for n, m in model.named_modules() if isinstance(m, (MLSConv2d, MLSLinear))]
