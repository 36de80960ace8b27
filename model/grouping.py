"""Which elements share one group exponent g (docs/numerics.md §1). Grouping is configuration, never hard-coded.

A ``Grouping`` splits a tensor along one ``axis`` into contiguous blocks of ``block`` indices.
Every index of the axes before ``axis`` is its own group. With ``span_trailing`` the axes after
``axis`` belong to the group too (channel-wise conv grouping); without it they stay separate
(MX-style blocks along a reduction axis of a matrix).

=============================  =================================================================
``Grouping.channel(gc)``       NCHW activation/error: one group per (n, block of gc channels);
                               OIHW weight: one group per (cout, block of gc input channels).
``Grouping.blocks(size, ax)``  one group per ``size`` contiguous elements along ``ax`` (OCP MX).
``Grouping.per_tensor()``      one group for the whole tensor.
=============================  =================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Grouping"]


@dataclass(frozen=True)
class Grouping:
    axis: int = 1
    block: int | None = 1  # None: the whole axis is one block
    span_trailing: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"grouping axis must be an int, not {self.axis!r}")
        if self.block is not None and (isinstance(self.block, bool) or not isinstance(self.block, int)):
            raise TypeError(f"grouping block must be an int or None, not {self.block!r}")
        if self.block is not None and self.block < 1:
            raise ValueError(f"grouping block must be at least 1, got {self.block}")

    # -- named constructors -----------------------------------------------------------------
    @classmethod
    def channel(cls, block: int = 1) -> Grouping:
        return cls(axis=1, block=block, span_trailing=True)

    @classmethod
    def blocks(cls, size: int, axis: int = -1) -> Grouping:
        return cls(axis=axis, block=size, span_trailing=False)

    @classmethod
    def per_tensor(cls) -> Grouping:
        return cls(axis=0, block=None, span_trailing=True)

    @classmethod
    def parse(cls, text: str | Grouping) -> Grouping:
        """Parse ``channel``, ``channel:4``, ``block:32``, ``block:32@0`` or ``tensor``."""
        if isinstance(text, Grouping):
            return text
        spec = text.strip().lower()
        kind, _, arg = spec.partition(":")
        try:
            if kind == "channel":
                return cls.channel(int(arg) if arg else 1)
            if kind == "block" and arg:
                size, _, axis = arg.partition("@")
                return cls.blocks(int(size), int(axis) if axis else -1)
            if kind == "tensor" and not arg:
                return cls.per_tensor()
        except ValueError as error:
            raise ValueError(f"grouping {text!r}: {error}") from None
        raise ValueError(f"grouping {text!r} is not one of 'channel[:Gc]', 'block:SIZE[@AXIS]', 'tensor'")

    def __str__(self) -> str:
        if self == Grouping.per_tensor():
            return "tensor"
        if self.span_trailing and self.axis == 1 and self.block is not None:
            return "channel" if self.block == 1 else f"channel:{self.block}"
        if not self.span_trailing and self.block is not None:
            return f"block:{self.block}" + ("" if self.axis == -1 else f"@{self.axis}")
        return repr(self)

    # -- geometry ---------------------------------------------------------------------------
    def _split(self, shape: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        """(axis, pre, length, block, post) for a tensor shape, validated."""
        if len(shape) == 0:
            raise ValueError(f"cannot group a 0-d tensor with {self}; reshape it to 1-d")
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"grouping axis {self.axis} is out of range for a tensor of shape {tuple(shape)}")
        axis = self.axis % len(shape)
        pre = math.prod(shape[:axis])
        length = shape[axis]
        post = math.prod(shape[axis + 1 :])
        block = length if self.block is None else self.block
        return axis, pre, length, max(block, 1), post

    def group_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        axis, _, length, block, _ = self._split(tuple(shape))
        n_blocks = -(-length // block)
        tail = () if self.span_trailing else tuple(shape[axis + 1 :])
        return tuple(shape[:axis]) + (n_blocks,) + tail

    def group_amax(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Max of a non-negative tensor over each group; result has ``group_shape``."""
        shape = tuple(magnitude.shape)
        axis, pre, length, block, post = self._split(shape)
        n_blocks = -(-length // block)
        view = magnitude.reshape(pre, length, post)
        pad = n_blocks * block - length
        if pad:
            view = torch.nn.functional.pad(view, (0, 0, 0, pad))
        view = view.reshape(pre, n_blocks, block, post)
        reduced = view.amax(dim=(2, 3)) if self.span_trailing else view.amax(dim=2)
        return reduced.reshape(self.group_shape(shape))

    def expand(self, per_group: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Broadcast a ``group_shape`` tensor back to one value per element of ``shape``."""
        shape = tuple(shape)
        expected = self.group_shape(shape)
        if tuple(per_group.shape) != expected:
            raise ValueError(f"group tensor has shape {tuple(per_group.shape)}, expected {expected} for {shape}")
        axis, pre, length, block, post = self._split(shape)
        n_blocks = expected[axis]
        view = per_group.reshape(pre, n_blocks, 1, 1 if self.span_trailing else post)
        view = view.expand(pre, n_blocks, block, post).reshape(pre, n_blocks * block, post)
        return view[:, :length, :].reshape(shape)
