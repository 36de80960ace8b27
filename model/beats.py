"""Host-side beat packer for the L-lane dot-product PE (docs/numerics.md §3.1).

The dot-product PE consumes *beats*: per A row and per W column of an array tile, L element
codes of one *chunk* of the reduction plus that chunk's ONE group exponent. A chunk is a run of
K over which every line's group stays the same; its boundaries are the positions where the
group of any A row or W column of the tile changes. A chunk whose length is not a multiple of L
is padded with zero elements in its last beat, so a beat never mixes two chunks.

- :class:`GemmOperand` is one GEMM operand as the array streams it: one *line* per A row or W
  column, K elements each, with each element's code, group exponent and group identity.
- :func:`pack_beats` turns two operands (or two ``MLSTensor`` matrices) and L into a
  :class:`BeatStream`, which reports beats and lane utilization.
- :func:`forward_gemm`, :func:`backward_data_gemms`, :func:`backward_weight_gemm` form the three
  GEMMs of a conv layer's training step from its quantized tensors (the orientation of
  ``sim.workloads``), so testbenches can pack a real layer.
- :func:`chunk_lengths`, :func:`count_beats` and :func:`conv_k_chunk` give the chunk structure
  and beat count of a GEMM from its sizes alone, for the cycle model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .formats import MLSFormat
from .mls_tensor import MLSTensor

__all__ = [
    "BeatStream",
    "ConvGemm",
    "GemmOperand",
    "backward_data_gemms",
    "backward_weight_gemm",
    "chunk_bounds",
    "chunk_lengths",
    "conv_gemms",
    "conv_k_chunk",
    "count_beats",
    "forward_gemm",
    "pack_beats",
]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _pair(name: str, value: int | tuple[int, int], low: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in pair):
        raise ValueError(f"{name} must be an int >= {low} or a pair of them, got {value!r}")
    return pair


# -- chunk structure from sizes alone (the cycle model) --------------------------------------------
def chunk_lengths(k: int, k_chunk: int) -> tuple[int, ...]:
    """Chunk lengths of a reduction of length ``k`` whose groups change every ``k_chunk``
    elements from k = 0: ``k // k_chunk`` full chunks, then the ragged rest if any."""
    _check_positive_int("reduction length k", k)
    _check_positive_int("k_chunk", k_chunk)
    full, rest = divmod(k, k_chunk)
    return (k_chunk,) * full + ((rest,) if rest else ())


def count_beats(k: int, k_chunk: int, lanes: int) -> int:
    """Beats an L-lane PE spends on one output of that reduction: sum of ceil(chunk / L).

    Equals ``pack_beats(...).beats`` for operands whose groups change every ``k_chunk``
    elements (tested), without building any data."""
    _check_positive_int("reduction length k", k)
    _check_positive_int("k_chunk", k_chunk)
    _check_positive_int("lanes", lanes)
    full, rest = divmod(k, k_chunk)
    return full * -(-k_chunk // lanes) + -(-rest // lanes)


def conv_k_chunk(pass_: str, *, taps: int, gc: int = 1, out_positions: int = 1) -> int:
    """Chunk length of one conv GEMM when activation, error and weight use channel grouping with
    channel-block size ``gc`` (``Grouping.channel(gc)``: A/E per (n, block of gc channels),
    W per (cout, block of gc input channels)).

    - ``forward``: ``taps * gc`` (K runs over input channel, then kernel taps);
    - ``backward-data``: ``taps`` of the phase: K runs over output channel, then taps, and the
      weight's group changes with every output channel, so a block of gc output channels of the
      error does not lengthen the chunk (docs/numerics.md);
    - ``backward-weight``: ``out_positions`` = Ho * Wo (K runs over sample, then position).

    A ragged last block (channels not a multiple of gc) gives a shorter last chunk, which
    :func:`count_beats` handles.
    """
    _check_positive_int("taps", taps)
    _check_positive_int("gc", gc)
    _check_positive_int("out_positions", out_positions)
    if pass_ == "forward":
        return taps * gc
    if pass_ == "backward-data":
        return taps
    if pass_ == "backward-weight":
        return out_positions
    raise ValueError(f"pass must be 'forward', 'backward-data' or 'backward-weight', got {pass_!r}")


# -- operands ------------------------------------------------------------------------------------
def _group_ids(t: MLSTensor) -> torch.Tensor:
    """A distinct integer per group of ``t``, broadcast to every element."""
    group_shape = t.grouping.group_shape(t.shape)
    ids = torch.arange(math.prod(group_shape)).reshape(group_shape)
    return t.grouping.expand(ids, t.shape)


@dataclass(frozen=True, eq=False)
class GemmOperand:
    """One GEMM operand in streaming order: ``lines`` lines (A rows or W columns) of ``k``
    elements along the reduction.

    ``codes`` are signed element codes ``s << (E+M) | e << M | m``; ``group_exp`` is each
    element's group exponent g; ``group_id`` names each element's group (any integers: only
    where it changes along a line matters). All three are int64 ``[lines, k]``. Zero padding
    elements (of a convolution) have code 0 and the group of the nearest element of the same
    channel, so they never split a chunk.
    """

    fmt: MLSFormat
    codes: torch.Tensor
    group_exp: torch.Tensor
    group_id: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.fmt, MLSFormat):
            raise TypeError(f"fmt must be an MLSFormat, not {self.fmt!r}")
        for name in ("codes", "group_exp", "group_id"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch tensor, not {type(value).__name__}")
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise TypeError(f"{name} must hold integers, got dtype {value.dtype}")
            object.__setattr__(self, name, value.to(torch.int64))
        if self.codes.dim() != 2:
            raise ValueError(f"codes must be [lines, k], got shape {tuple(self.codes.shape)}")
        for name in ("group_exp", "group_id"):
            if getattr(self, name).shape != self.codes.shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, codes has {tuple(self.codes.shape)}")
        if self.codes.shape[1] < 1:
            raise ValueError("an operand needs at least one element along k, got k = 0")
        if self.codes.numel() and (int(self.codes.min()) < 0 or int(self.codes.max()) >= self.fmt.code_count):
            raise ValueError(f"codes must lie in [0, {self.fmt.code_count}) for {self.fmt}, "
                             f"got [{int(self.codes.min())}, {int(self.codes.max())}]")
        if self.group_exp.numel() and (int(self.group_exp.min()) < 0 or int(self.group_exp.max()) > self.fmt.max_group_exp):
            raise ValueError(f"group_exp must lie in [0, {self.fmt.max_group_exp}] for {self.fmt}, "
                             f"got [{int(self.group_exp.min())}, {int(self.group_exp.max())}]")
        changes = self.group_id[:, 1:] != self.group_id[:, :-1]
        same_group_new_exp = (~changes) & (self.group_exp[:, 1:] != self.group_exp[:, :-1])
        if bool(same_group_new_exp.any()):
            line, k = (int(v) for v in same_group_new_exp.nonzero()[0])
            raise ValueError(f"line {line}: group exponent changes at k = {k + 1} inside one group")

    @property
    def lines(self) -> int:
        return self.codes.shape[0]

    @property
    def k(self) -> int:
        return self.codes.shape[1]

    @classmethod
    def rows(cls, a: MLSTensor) -> GemmOperand:
        """The A operand ``[M, K]`` of a GEMM: one line per row."""
        if not isinstance(a, MLSTensor) or len(a.shape) != 2:
            raise ValueError(f"the A operand must be a 2-D MLSTensor [M, K], got {_describe(a)}")
        return cls(a.fmt, a.codes(), a.group_exp_per_element().to(torch.int64), _group_ids(a))

    @classmethod
    def columns(cls, w: MLSTensor) -> GemmOperand:
        """The W operand ``[K, N]`` of a GEMM: one line per column."""
        if not isinstance(w, MLSTensor) or len(w.shape) != 2:
            raise ValueError(f"the W operand must be a 2-D MLSTensor [K, N], got {_describe(w)}")
        return cls(w.fmt, w.codes().T, w.group_exp_per_element().to(torch.int64).T, _group_ids(w).T)

    def select(self, lines: slice | list[int] | torch.Tensor) -> GemmOperand:
        """The operand restricted to some lines (the rows or columns of one array tile)."""
        index = torch.arange(self.lines)[lines] if isinstance(lines, slice) else torch.as_tensor(lines, dtype=torch.int64)
        if index.numel() == 0:
            raise ValueError(f"select({lines!r}) keeps no line of {self.lines}")
        return GemmOperand(self.fmt, self.codes[index], self.group_exp[index], self.group_id[index])

    def fields(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sign, exp, man)`` of every element (int64)."""
        fmt = self.fmt
        magnitude = self.codes & ((1 << (fmt.exp_bits + fmt.man_bits)) - 1)
        return self.codes >> (fmt.exp_bits + fmt.man_bits), magnitude >> fmt.man_bits, magnitude & ((1 << fmt.man_bits) - 1)

    def to_int(self) -> torch.Tensor:
        """The §3 integers ``[lines, k]`` (int64); refuses formats whose integers exceed 63 bits."""
        if self.fmt.int_bits > 63:
            raise ValueError(f"{self.fmt} integers need {self.fmt.int_bits} bits, more than the 63 int64 holds")
        sign, exp, man = self.fields()
        sig = torch.where(exp > 0, man + (1 << self.fmt.man_bits), man) if self.fmt.exp_bits else man
        value = sig << (exp.clamp(min=1) - 1 + self.fmt.max_group_exp - self.group_exp)
        return torch.where(sign.bool(), -value, value)


def _describe(value: object) -> str:
    if isinstance(value, MLSTensor):
        return f"an MLSTensor of shape {value.shape}"
    return type(value).__name__


def _as_operand(value: GemmOperand | MLSTensor, role: str) -> GemmOperand:
    if isinstance(value, GemmOperand):
        return value
    if isinstance(value, MLSTensor):
        return GemmOperand.rows(value) if role == "A" else GemmOperand.columns(value)
    raise TypeError(f"the {role} operand must be a GemmOperand or an MLSTensor, not {type(value).__name__}")


# -- the packer ----------------------------------------------------------------------------------
def chunk_bounds(a: GemmOperand, w: GemmOperand) -> tuple[tuple[int, int], ...]:
    """``(start, length)`` of every chunk: K splits wherever any line of ``a`` or ``w`` changes group."""
    if a.k != w.k:
        raise ValueError(f"A has K = {a.k} but W has K = {w.k}")
    changes = torch.cat([a.group_id[:, 1:] != a.group_id[:, :-1], w.group_id[:, 1:] != w.group_id[:, :-1]]).any(0)
    starts = [0] + [int(k) + 1 for k in changes.nonzero().reshape(-1)]
    ends = starts[1:] + [a.k]
    return tuple((start, end - start) for start, end in zip(starts, ends))


@dataclass(frozen=True, eq=False)
class BeatStream:
    """The beats of one array tile, in the order the PE consumes them (chunks by ascending k;
    inside a chunk, k ascending over lanes 0..L-1; padding lanes carry code 0).

    ``a_codes [beats, a_lines, L]``, ``a_group [beats, a_lines]``, ``w_codes [beats, w_lines, L]``
    and ``w_group [beats, w_lines]`` are what the A and W streams carry; ``lane_k [beats, L]`` is
    each lane's k (-1 for padding); ``beat_chunk [beats]`` the chunk index of each beat.
    """

    fmt_a: MLSFormat
    fmt_w: MLSFormat
    lanes: int
    k: int
    chunks: tuple[tuple[int, int], ...]
    a_codes: torch.Tensor
    a_group: torch.Tensor
    w_codes: torch.Tensor
    w_group: torch.Tensor
    lane_k: torch.Tensor
    beat_chunk: torch.Tensor

    @property
    def beats(self) -> int:
        return self.lane_k.shape[0]

    @property
    def useful_pairs(self) -> int:
        """Element pairs per PE that belong to the reduction (K; padding lanes excluded)."""
        return self.k

    @property
    def utilization(self) -> float:
        """Lane utilization, useful element pairs / (L * beats)."""
        return self.useful_pairs / (self.lanes * self.beats)

    @property
    def padding_lanes(self) -> int:
        return self.lanes * self.beats - self.k


def pack_beats(a: GemmOperand | MLSTensor, w: GemmOperand | MLSTensor, lanes: int) -> BeatStream:
    """Pack A (``[M, K]`` MLSTensor, or a ``GemmOperand`` of rows) and W (``[K, N]`` MLSTensor,
    or a ``GemmOperand`` of columns) into the beat stream of an L-lane PE tile."""
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise TypeError(f"lanes must be an int, not {lanes!r}")
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    a, w = _as_operand(a, "A"), _as_operand(w, "W")
    chunks = chunk_bounds(a, w)
    lane_k, beat_chunk = [], []
    for index, (start, length) in enumerate(chunks):
        for first in range(start, start + length, lanes):
            lane_k.append([k if k < start + length else -1 for k in range(first, first + lanes)])
            beat_chunk.append(index)
    lane_k_t = torch.tensor(lane_k, dtype=torch.int64)
    pad = lane_k_t < 0
    gather = lane_k_t.clamp(min=0)
    first_k = torch.tensor([start for start, _ in chunks], dtype=torch.int64)[torch.tensor(beat_chunk)]

    def stream(op: GemmOperand) -> tuple[torch.Tensor, torch.Tensor]:
        codes = op.codes[:, gather].permute(1, 0, 2)  # [beats, lines, L]
        codes = torch.where(pad[:, None, :], torch.zeros_like(codes), codes)
        return codes.contiguous(), op.group_exp[:, first_k].T.contiguous()

    a_codes, a_group = stream(a)
    w_codes, w_group = stream(w)
    return BeatStream(a.fmt, w.fmt, lanes, a.k, chunks, a_codes, a_group, w_codes, w_group,
                      lane_k_t, torch.tensor(beat_chunk, dtype=torch.int64))


# -- the three GEMMs of a conv layer -------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ConvGemm:
    """One GEMM ``C[M, N] = A[M, K] @ W[K, N]`` of a conv layer's training step.

    ``a`` holds the M rows of A, ``w`` the N columns of W (as :class:`GemmOperand`); ``out_index
    [M, N]`` is the flat index of each C element in the layer result of shape ``out_shape``
    (output y, input gradient dX or weight gradient dW). ``pack_beats`` finds the chunks from
    the operands' groups; for channel grouping they follow :func:`conv_k_chunk`.
    """

    pass_: str
    phase: str
    a: GemmOperand
    w: GemmOperand
    out_shape: tuple[int, ...]
    out_index: torch.Tensor

    @property
    def m(self) -> int:
        return self.a.lines

    @property
    def n(self) -> int:
        return self.w.lines

    @property
    def k(self) -> int:
        return self.a.k

    def scatter(self, c: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Add a ``[M, N]`` result of this GEMM into the layer result (new zeros if ``out`` is None)."""
        if tuple(c.shape) != (self.m, self.n):
            raise ValueError(f"result has shape {tuple(c.shape)}, this GEMM gives {(self.m, self.n)}")
        out = torch.zeros(self.out_shape, dtype=c.dtype) if out is None else out
        out.view(-1).index_add_(0, self.out_index.reshape(-1), c.reshape(-1))
        return out


def _tensor_fields(t: MLSTensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return t.codes(), t.group_exp_per_element().to(torch.int64), _group_ids(t)


def _gather(t: MLSTensor, index: torch.Tensor, valid: torch.Tensor) -> GemmOperand:
    """Operand lines from flat element indices of ``t`` (out-of-range elements are zeros that
    keep the group of the clamped index)."""
    codes, group_exp, group_id = (f.reshape(-1) for f in _tensor_fields(t))
    return GemmOperand(t.fmt, torch.where(valid, codes[index], 0), group_exp[index], group_id[index])


def _check_conv(name: str, t: MLSTensor, dims: int = 4) -> None:
    if not isinstance(t, MLSTensor):
        raise TypeError(f"{name} must be an MLSTensor, not {type(t).__name__}")
    if len(t.shape) != dims:
        raise ValueError(f"{name} must be 4-D (NCHW or OIHW), got shape {t.shape}")


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def forward_gemm(act: MLSTensor, weight: MLSTensor, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0) -> ConvGemm:
    """``y = conv2d(act, weight)`` as A = im2col(act) ``[N*Ho*Wo, Cin*kh*kw]`` times
    W ``[Cin*kh*kw, Cout]`` (K runs over input channel, then kernel row, then kernel column)."""
    _check_conv("act", act)
    _check_conv("weight", weight)
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    n, c, h, wd = act.shape
    co, ci, kh, kw = weight.shape
    if ci != c:
        raise ValueError(f"act has {c} channels but weight expects {ci} (shapes {act.shape} x {weight.shape})")
    ho, wo = _out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)
    if ho < 1 or wo < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{wd} input with padding {(ph, pw)}")
    b, oy, ox, ch, dy, dx = torch.meshgrid(*(torch.arange(s) for s in (n, ho, wo, c, kh, kw)), indexing="ij")
    y, x = oy * sh - ph + dy, ox * sw - pw + dx
    valid = (y >= 0) & (y < h) & (x >= 0) & (x < wd)
    index = ((b * c + ch) * h + y.clamp(0, h - 1)) * wd + x.clamp(0, wd - 1)
    a = _gather(act, index.reshape(n * ho * wo, c * kh * kw), valid.reshape(n * ho * wo, c * kh * kw))
    codes, group_exp, group_id = (f.reshape(co, c * kh * kw) for f in _tensor_fields(weight))
    w = GemmOperand(weight.fmt, codes, group_exp, group_id)
    rb, ry, rx, oc = torch.meshgrid(*(torch.arange(s) for s in (n, ho, wo, co)), indexing="ij")
    out_index = (((rb * co + oc) * ho + ry) * wo + rx).reshape(n * ho * wo, co)
    return ConvGemm("forward", "", a, w, (n, co, ho, wo), out_index)


def backward_data_gemms(error: MLSTensor, weight: MLSTensor, in_hw: tuple[int, int],
                        stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> list[ConvGemm]:
    """``dX = conv_transpose2d(error, weight)`` as one dense GEMM per sub-pixel phase (as in
    ``sim.workloads``): for rows i with (i + pad) mod s = p the taps r with r mod s = p
    contribute; A ``[N*rows, Cout*taps]`` gathers the error, W ``[Cout*taps, Cin]`` the weight
    (K runs over output channel, then the phase's taps). Phases with no row or no tap are
    dropped; the GEMMs' results scattered together give dX."""
    _check_conv("error", error)
    _check_conv("weight", weight)
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    h, wd = _pair("in_hw", in_hw, 1)
    n, co, ho, wo = error.shape
    co_w, ci, kh, kw = weight.shape
    if co_w != co:
        raise ValueError(f"error has {co} channels but weight has {co_w} output channels (shapes {error.shape} x {weight.shape})")
    if (_out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)) != (ho, wo):
        raise ValueError(f"error is {ho}x{wo} but a {h}x{wd} input gives "
                         f"{_out_size(h, kh, sh, ph)}x{_out_size(wd, kw, sw, pw)} with this kernel, stride and padding")
    e_codes, e_group, e_id = (f.reshape(-1) for f in _tensor_fields(error))
    w_codes, w_group, w_id = (f for f in _tensor_fields(weight))
    gemms = []
    multi = sh * sw > 1
    for pr in range(sh):
        rows_i = [i for i in range(h) if (i + ph) % sh == pr]
        taps_r = [r for r in range(kh) if r % sh == pr]
        for pc in range(sw):
            rows_j = [j for j in range(wd) if (j + pw) % sw == pc]
            taps_s = [s for s in range(kw) if s % sw == pc]
            if not (rows_i and taps_r and rows_j and taps_s):
                continue
            ri, rj, tr, ts = (torch.tensor(v) for v in (rows_i, rows_j, taps_r, taps_s))
            b, i, j, oc, r, s = torch.meshgrid(torch.arange(n), ri, rj, torch.arange(co), tr, ts, indexing="ij")
            y, x = (i + ph - r) // sh, (j + pw - s) // sw  # exact divisions inside a phase
            valid = (y >= 0) & (y < ho) & (x >= 0) & (x < wo)
            index = ((b * co + oc) * ho + y.clamp(0, ho - 1)) * wo + x.clamp(0, wo - 1)
            m, k = n * len(rows_i) * len(rows_j), co * len(taps_r) * len(taps_s)
            index, valid = index.reshape(m, k), valid.reshape(m, k)
            a = GemmOperand(error.fmt, torch.where(valid, e_codes[index], 0), e_group[index], e_id[index])
            sel = (slice(None), slice(None), tr[:, None], ts[None, :])
            # W lines per input channel: weight[oc, cin, r, s] over (oc, r, s)
            w = GemmOperand(weight.fmt, *(f[sel].permute(1, 0, 2, 3).reshape(ci, k) for f in (w_codes, w_group, w_id)))
            ob, oi, oj, oc2 = torch.meshgrid(torch.arange(n), ri, rj, torch.arange(ci), indexing="ij")
            out_index = (((ob * ci + oc2) * h + oi) * wd + oj).reshape(m, ci)
            gemms.append(ConvGemm("backward-data", f"p{pr}{pc}" if multi else "", a, w, (n, ci, h, wd), out_index))
    return gemms


def backward_weight_gemm(error: MLSTensor, act: MLSTensor, kernel: tuple[int, int],
                         stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> ConvGemm:
    """``dW = conv2d_weight(act, error)`` as A = error ``[Cout, N*Ho*Wo]`` times
    W = im2col(act) ``[N*Ho*Wo, Cin*kh*kw]`` (K runs over sample, then output position)."""
    _check_conv("error", error)
    _check_conv("act", act)
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    kh, kw = _pair("kernel", kernel, 1)
    n, co, ho, wo = error.shape
    n_a, c, h, wd = act.shape
    if n_a != n:
        raise ValueError(f"error has batch {n} but act has batch {n_a}")
    if (_out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)) != (ho, wo):
        raise ValueError(f"error is {ho}x{wo} but act {h}x{wd} gives "
                         f"{_out_size(h, kh, sh, ph)}x{_out_size(wd, kw, sw, pw)} with this kernel, stride and padding")
    codes, group_exp, group_id = (f.permute(1, 0, 2, 3).reshape(co, n * ho * wo) for f in _tensor_fields(error))
    a = GemmOperand(error.fmt, codes, group_exp, group_id)
    ch, dy, dx, b, oy, ox = torch.meshgrid(*(torch.arange(s) for s in (c, kh, kw, n, ho, wo)), indexing="ij")
    y, x = oy * sh - ph + dy, ox * sw - pw + dx
    valid = (y >= 0) & (y < h) & (x >= 0) & (x < wd)
    index = ((b * c + ch) * h + y.clamp(0, h - 1)) * wd + x.clamp(0, wd - 1)
    w = _gather(act, index.reshape(c * kh * kw, n * ho * wo), valid.reshape(c * kh * kw, n * ho * wo))
    out_index = torch.arange(co * c * kh * kw).reshape(co, c * kh * kw)
    return ConvGemm("backward-weight", "", a, w, (co, c, kh, kw), out_index)


def conv_gemms(act: MLSTensor, weight: MLSTensor, error: MLSTensor, stride: int | tuple[int, int] = 1,
               padding: int | tuple[int, int] = 0) -> list[ConvGemm]:
    """All GEMMs of one conv layer's training step: forward, backward-data (per phase),
    backward-weight, from the quantized activation, weight and output error."""
    _check_conv("act", act)
    _check_conv("weight", weight)
    kernel = weight.shape[2:]
    return ([forward_gemm(act, weight, stride, padding)]
            + backward_data_gemms(error, weight, act.shape[2:], stride, padding)
            + [backward_weight_gemm(error, act, kernel, stride, padding)])
