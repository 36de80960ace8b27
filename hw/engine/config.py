"""Configuration of the engine (``hw.engine.Engine``): a frozen dataclass validated up front."""

from __future__ import annotations

from dataclasses import dataclass

from model.formats import MLSFormat
from model.random_bits import DEFAULT_SR_BITS, MAX_SR_BITS

__all__ = ["EngineConfig", "MAX_DEPTH", "MAX_DIM", "MAX_PSUM_DEPTH", "MAX_SPLIT_K"]

#: Most beat rows one operand buffer bank holds.
MAX_DEPTH = 1 << 16
#: Largest array side (``hw.array.MAX_DIM``).
MAX_DIM = 64
#: Most rows of the partial-sum buffer.
MAX_PSUM_DEPTH = 1 << 20
#: Longest K of a split GEMM (a sanity bound; the accumulator is the real limit).
MAX_SPLIT_K = 1 << 32
_MAX_LANES = 64
_MAX_GROUP_LEN = 1 << 12


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine's gateware depends on.

    fmt_a, fmt_w : the MLS element formats of A and W (G >= 1: the quantization unit needs a
        group exponent).
    rows, cols : the array, R x C, each in [1, 64].
    lanes : element pairs per beat L (1: the scalar PE when the formats agree).
    group_len : elements of a group along K (the chunk); K must be a multiple of it.
    quant_lanes : FP32 elements per cycle into each quantization unit, q; divides
        ``group_len``, and divides ``lanes`` or is a multiple of it (then a word is q / L beats,
        written into q / L sub-banks at once; the depths must be multiples of q / L).
    a_depth, w_depth : beat rows per bank of the A and W buffers (bank i of A holds rows
        m = i (mod R), bank j of W columns n = j (mod C)).
    acc_bits : accumulator width; None: exact for K up to ``max(max_k, split_k_max)``.
    sr_bits : random bits per element for stochastic rounding.
    psum_depth : rows of C (``cols`` accumulators each) the partial-sum buffer holds; 0: no
        buffer, K must fit one line. With one, a longer K runs as one GEMM command per K
        segment (docs/engine.md, "Split K").
    split_k_max : the longest K a split GEMM may have with the default (exact) accumulator;
        None: ``max_k``. Only with ``psum_depth`` > 0.
    double_buffer : two slots per operand buffer (each of ``a_depth`` / ``w_depth`` beat rows)
        and decoupled commands: a load fills one slot while a GEMM reads the other
        (docs/engine.md, "Double buffering").
    """

    fmt_a: MLSFormat
    fmt_w: MLSFormat
    rows: int = 4
    cols: int = 4
    lanes: int = 1
    group_len: int = 8
    quant_lanes: int = 1
    a_depth: int = 256
    w_depth: int = 256
    acc_bits: int | None = None
    sr_bits: int = DEFAULT_SR_BITS
    psum_depth: int = 0
    split_k_max: int | None = None
    double_buffer: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.double_buffer, bool):
            raise TypeError(f"double_buffer must be a bool, not {self.double_buffer!r}")
        for name in ("fmt_a", "fmt_w"):
            fmt = MLSFormat.parse(getattr(self, name))
            if fmt.group_bits < 1:
                raise ValueError(f"{name} needs group_bits >= 1 (the quantization unit), got {fmt}")
            object.__setattr__(self, name, fmt)
        _int("rows", self.rows, 1, MAX_DIM)
        _int("cols", self.cols, 1, MAX_DIM)
        _int("lanes", self.lanes, 1, _MAX_LANES)
        _int("group_len", self.group_len, 1, _MAX_GROUP_LEN)
        _int("quant_lanes", self.quant_lanes, 1, _MAX_LANES)
        _int("a_depth", self.a_depth, 1, MAX_DEPTH)
        _int("w_depth", self.w_depth, 1, MAX_DEPTH)
        _int("sr_bits", self.sr_bits, 1, MAX_SR_BITS)
        if (self.lanes % self.quant_lanes and self.quant_lanes % self.lanes) or self.group_len % self.quant_lanes:
            raise ValueError(f"quant_lanes {self.quant_lanes} must divide group_len {self.group_len} and divide "
                             f"or be a multiple of lanes {self.lanes}")
        if self.quant_lanes > self.lanes:
            k = self.quant_lanes // self.lanes
            for name in ("a_depth", "w_depth"):
                if getattr(self, name) % k:
                    raise ValueError(f"{name} {getattr(self, name)} must be a multiple of quant_lanes / lanes = {k} "
                                     f"(a word of {self.quant_lanes} codes is {k} beats, one per sub-bank)")
        if self.a_depth < self.beats_per_chunk or self.w_depth < self.beats_per_chunk:
            raise ValueError(f"a_depth {self.a_depth} and w_depth {self.w_depth} must hold one chunk "
                             f"({self.beats_per_chunk} beats)")
        _int("psum_depth", self.psum_depth, 0, MAX_PSUM_DEPTH)
        if self.split_k_max is not None:
            if not self.psum_depth:
                raise ValueError(f"split_k_max {self.split_k_max} needs a partial-sum buffer (psum_depth > 0)")
            _int("split_k_max", self.split_k_max, 1, MAX_SPLIT_K)
        if self.acc_bits is not None:
            _int("acc_bits", self.acc_bits, 2, 63)
        elif self.fmt_a.acc_bits_exact(self.exact_k, self.fmt_w) > 63:
            raise ValueError(f"the exact accumulator for K = {self.exact_k} needs "
                             f"{self.fmt_a.acc_bits_exact(self.exact_k, self.fmt_w)} bits, more than 63; "
                             f"give acc_bits, smaller buffers or a smaller split_k_max")

    # -- derived -------------------------------------------------------------------------------
    @property
    def beats_per_chunk(self) -> int:
        """Beats of one chunk: ceil(group_len / lanes) (the last one zero-padded, docs/numerics.md §3.1)."""
        return -(-self.group_len // self.lanes)

    @property
    def max_chunks(self) -> int:
        """Most chunks along K: one line of A and of W must fit one bank."""
        return min(self.a_depth, self.w_depth) // self.beats_per_chunk

    @property
    def max_k(self) -> int:
        """Longest K of one GEMM command (one line per buffer bank)."""
        return self.max_chunks * self.group_len

    @property
    def exact_k(self) -> int:
        """The K the default accumulator is exact for: ``max(max_k, split_k_max)``."""
        return max(self.max_k, self.split_k_max or 0)

    def padded_k(self, k: int) -> int:
        """K rounded up to a multiple of ``group_len``: the host streams zeros past K (a zero
        element changes neither a group's exponent nor any sum, docs/engine.md)."""
        _int("k", k, 1, MAX_SPLIT_K)
        return -(-k // self.group_len) * self.group_len

    def segment_k(self, m: int, n: int) -> int:
        """The longest K (a multiple of ``group_len``) one GEMM command over ``m`` rows of A and
        ``n`` columns of W holds: every bank holds ``ceil(lines / banks)`` lines of it (0: not
        even one chunk fits)."""
        chunks = min(self.a_depth // -(-m // self.rows), self.w_depth // -(-n // self.cols)) // self.beats_per_chunk
        return min(chunks, self.max_chunks) * self.group_len

    def segments(self, k: int, m: int = 1, n: int = 1) -> list[int]:
        """The K segments of a GEMM of ``m x n`` over K ``k`` (padded to ``group_len``): ``[k]``
        when it fits one command, else segments of ``segment_k(m, n)`` and a shorter last one."""
        k, step = self.padded_k(k), self.segment_k(m, n)
        if k <= step:
            return [k]
        if step == 0:
            raise ValueError(f"{m} x {n} does not fit the buffers with even one chunk of K")
        return [min(step, k - start) for start in range(0, k, step)]

    def psum_rows(self, m: int, n: int) -> int:
        """Partial-sum rows a split GEMM of ``m x n`` needs: one per row of every array tile."""
        return -(-m // self.rows) * -(-n // self.cols) * self.rows

    @property
    def a_gdepth(self) -> int:
        return self.a_depth // self.beats_per_chunk

    @property
    def w_gdepth(self) -> int:
        return self.w_depth // self.beats_per_chunk

    @property
    def max_m(self) -> int:
        return self.rows * self.a_gdepth

    @property
    def max_n(self) -> int:
        return self.cols * self.w_gdepth

    @property
    def accumulator_bits(self) -> int:
        return self.fmt_a.acc_bits_exact(self.exact_k, self.fmt_w) if self.acc_bits is None else self.acc_bits

    @property
    def lsb_exponent(self) -> int:
        return self.fmt_a.lsb_exponent + self.fmt_w.lsb_exponent

    def beats_per_line(self, k: int) -> int:
        return (k // self.group_len) * self.beats_per_chunk

    def check_gemm(self, m: int, n: int, k: int) -> None:
        """ValueError naming the value and the limit when a GEMM of ``m x n`` over a K of ``k``
        (a multiple of ``group_len``; the host pads) does not fit the engine's buffers: in one
        command when ``k <= max_k``, else in segments through the partial-sum buffer."""
        _int("m", m, 1, self.max_m)
        _int("n", n, 1, self.max_n)
        _int("k", k, 1, MAX_SPLIT_K)
        if k % self.group_len:
            raise ValueError(f"k {k} must be a multiple of group_len {self.group_len}")
        if self.psum_depth and k > self.segment_k(m, n):
            if self.acc_bits is None and k > self.exact_k:
                raise ValueError(f"k {k} is longer than split_k_max {self.exact_k}, the K the default "
                                 f"accumulator is exact for; give acc_bits or a larger split_k_max")
            if self.psum_rows(m, n) > self.psum_depth:
                raise ValueError(f"a split GEMM of {m} x {n} needs {self.psum_rows(m, n)} partial-sum rows, "
                                 f"more than the {self.psum_depth} of the buffer")
            k = max(self.segment_k(m, n), self.group_len)   # the segments' K (one chunk at least)
        elif k > self.max_k:
            raise ValueError(f"k {k} is longer than one buffer line (max_k {self.max_k}) and the engine has "
                             f"no partial-sum buffer (psum_depth 0)")
        bpl = self.beats_per_line(k)
        for name, lines, banks, depth in (("A", m, self.rows, self.a_depth), ("W", n, self.cols, self.w_depth)):
            need = -(-lines // banks) * bpl
            if need > depth:
                raise ValueError(f"{name} of {lines} lines x K={k} needs {need} beat rows per bank, "
                                 f"more than the {depth} of the {name} buffer")

    def __str__(self) -> str:
        return (f"{self.fmt_a}x{self.fmt_w}_{self.rows}x{self.cols}_l{self.lanes}_g{self.group_len}"
                f"_q{self.quant_lanes}_d{self.a_depth}x{self.w_depth}"
                + (f"_p{self.psum_depth}" if self.psum_depth else "") + ("_db" if self.double_buffer else ""))

    @property
    def slots(self) -> int:
        """Slots per operand buffer: 2 with ``double_buffer``."""
        return 2 if self.double_buffer else 1
