"""R x C output-stationary systolic array of MLS PEs, of L-lane MLS dot-product PEs (``lanes=L``),
or of any PE a ``PEFactory`` makes, with valid/ready stream boundaries."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.baseline_arith import INT8_MAX_K_EXACT
from model.formats import DEFAULT_MAX_K, MLSFormat

from ..baseline.dot_pe_factory import DOT_KINDS, BaselineDotPEFactory
from ..baseline.systolic_pe import BaselinePEFactory
from ..pe.dot_pe import MLSDotPE, MLSDotPEFactory
from ..pe.pe import MLSPEFactory
from ..pe.signature import PEFactory, control_layout
from .timing import ArrayTiming

__all__ = ["SystolicArray", "DEFAULT_MAX_K", "MAX_DIM", "MAX_LANES", "PE_KINDS", "BASELINE_ACC_BITS", "INT8_MAX_K_EXACT"]

MAX_DIM = 64
#: Largest ``lanes`` (element pairs per beat) of a dot-product PE array.
MAX_LANES = MLSDotPE.MAX_LANES

#: Values of ``SystolicArray(pe=...)`` by name: the MLS PE (None: ``MLSPEFactory(fmt, acc_bits)``
#: from the array's ``fmt`` and ``acc_bits``), or the factory of a baseline PE
#: (``hw.baseline.BaselinePE``). FP8 names give the A format first, then the W format.
PE_KINDS = {"mls": None, **{f.name: f for f in (
    BaselinePEFactory("fp32"),
    BaselinePEFactory("fp8", "e4m3", "e4m3"),
    BaselinePEFactory("fp8", "e5m2", "e5m2"),
    BaselinePEFactory("fp8", "e4m3", "e5m2"),
    BaselinePEFactory("fp8", "e5m2", "e4m3"),
    BaselinePEFactory("int8"),
)}}
#: Width of every baseline accumulator and result word: an FP32 word or a wrapping INT32.
BASELINE_ACC_BITS = 32
# DEFAULT_MAX_K (model.formats) and INT8_MAX_K_EXACT (model.baseline_arith: the largest K for which
# the INT32 accumulator of pe="int8" cannot wrap) are re-exported here for the array's users.


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_pe(pe):
    if not isinstance(pe, str):
        raise TypeError(f"pe must be a str or a PEFactory, not {pe!r}")
    if pe not in PE_KINDS:
        raise ValueError(f"pe must be one of {', '.join(repr(k) for k in PE_KINDS)}, got {pe!r}")
    return pe


def _mls_formats(fmt, fmt_w) -> tuple[MLSFormat, MLSFormat]:
    """``(fmt_a, fmt_w)`` from ``fmt`` (one format, or a pair A, W) and ``fmt_w`` (W's format, or None)."""
    if isinstance(fmt, (tuple, list)):
        if len(fmt) != 2:
            raise ValueError(f"fmt must be one format or a pair (A format, W format), got {fmt!r}")
        if fmt_w is not None:
            raise ValueError(f"give the W format either in fmt={fmt!r} or as fmt_w={fmt_w!r}, not both")
        fmt, fmt_w = fmt
    fmt_a = MLSFormat.parse(fmt)
    return fmt_a, fmt_a if fmt_w is None else MLSFormat.parse(fmt_w)


def _result_bits(factory: PEFactory) -> int:
    return Shape.cast(factory.signature.result_shape).width


class SystolicArray(wiring.Component):
    """Output-stationary ``rows x cols`` array: A streams from the left, W from the top, skewed.

    PE(i, j) accumulates ``C[i, j] = sum_k int(A[i, k]) * int(W[k, j])`` (docs/numerics.md §3), one beat per
    PE per cycle at steady state. The tile protocol and the exact cycle counts are defined in
    ``hw/array/timing.py`` (``self.timing``).

    With ``lanes = L > 1`` (or A and W formats that differ) every PE is an ``hw.pe.MLSDotPE``
    (``MLSDotPEFactory``): one beat carries, per A row and per W column, L element codes of one
    chunk of the reduction and the chunk's one group exponent (``hw.pe.beat_layout``), as
    ``model.beats.pack_beats`` packs them (docs/numerics.md §3.1). A tile is then ``beats`` input beats,
    not K; the skew, the double buffering and the drain are the same, only ``pe_latency`` grows
    with the dot PE's adder tree. ``lanes = 1`` with one format keeps the scalar ``MLSPE``
    (the default Verilog of ``python -m hw.build``); an A operand of that array is bit for bit a
    one-lane beat.

    Every PE comes from one ``hw.pe.PEFactory`` (``pe``): the array reads the PE's
    ``PESignature`` (operand and result shapes), latency and exactness from it, so any PE with
    that signature drops in. With ``pe`` other than ``"mls"`` every PE is a
    ``hw.baseline.BaselinePE``: the same ports, control, pipeline and latency (2), so the skew,
    the tile protocol, the drain and every cycle count are identical; only the operand and result
    shapes and the arithmetic differ (``model.baseline_arith``, k ascending, the first beat of a
    tile loads the product).

    Parameters
    ----------
    fmt : MLSFormat or str or pair of them, or None
        Element format of A and W for ``pe="mls"`` (required there), or ``(A format, W
        format)``; must be None for a baseline PE, whose operand formats are fixed by ``pe``.
    rows, cols : int
        Array size R x C, each in [1, 64].
    acc_bits : int or None
        MLS: accumulator width; default ``fmt.acc_bits_exact(max_k)`` (never saturates for
        K <= max_k). Baselines: must be None; the accumulator is always a 32-bit word (FP32, or
        INT32 wrapping modulo 2^32 for ``"int8"``), ``acc_bits == 32``.
    max_k : int
        MLS: largest reduction length the default accumulator holds exactly (default 2**20).
        Baselines: only sets ``exact`` (the INT32 accumulator is exact for K <= 131071; a float
        accumulator rounds, so never exact) and the tile length host code accepts.
    pe : str or PEFactory
        A name of ``PE_KINDS``: ``"mls"`` (default; ``MLSPEFactory(fmt, acc_bits)``), ``"fp32"``
        (FP32 x FP32, FP32 accumulate), ``"fp8-e4m3"``, ``"fp8-e5m2"``, ``"fp8-e4m3-e5m2"``,
        ``"fp8-e5m2-e4m3"`` (FP8 A format, then W format; exact product, FP32 accumulate) or
        ``"int8"`` (INT8 x INT8, INT32 wrapping accumulate). Or a ``PEFactory`` itself (then
        ``fmt`` and ``acc_bits`` must be None: the factory has them).
    lanes : int, keyword-only
        Element pairs per beat, in [1, ``MAX_LANES``] (default 1, the scalar PE). ``lanes > 1``
        with an MLS format: ``MLSDotPE``; with ``pe="fp8-..."`` or ``"int8"``: the same-lane
        ``FP8DotPE`` / ``INT8DotPE`` (``hw.baseline.dot_pe_factory``); the FP32 baseline has one lane.
    fmt_w : MLSFormat or str or None, keyword-only
        W's element format when it differs from A's (``fmt``); an MLS dot-product PE.

    Members
    -------
    a : In(stream.Signature(a_layout))
        ``data``: ArrayLayout(a_shape, rows), column k of the A tile (row i at index i);
        ``last``: this is beat k = K - 1. ``a_shape`` is ``operand_layout(fmt)`` (MLS),
        ``beat_layout(fmt_a, lanes)`` (MLS dot PE: one beat of row i),
        ``float_layout(FP32 | E4M3 | E5M2)`` (IEEE bit order: man, exp, sign) or ``signed(8)``.
        With lanes, ``last`` marks the tile's last beat.
    w : In(stream.Signature(w_layout))
        ``data``: ArrayLayout(w_shape, cols), row k (beat k) of the W tile. Joined with ``a``.
    c : Out(stream.Signature(c_layout))
        One row of a finished tile per beat, row 0 first: ``data`` ArrayLayout(result_shape, cols)
        (``signed(acc_bits)`` for MLS, ``float_layout(FP32)`` for the float baselines,
        ``signed(32)`` for INT8), ``overflow`` one sticky flag per column (always 0 for the
        baselines), ``last`` on row ``rows - 1``.
    """

    def __init__(self, fmt=None, rows: int = 8, cols: int = 8, acc_bits: int | None = None,
                 max_k: int = DEFAULT_MAX_K, *, pe: str | PEFactory = "mls", lanes: int = 1, fmt_w=None):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        _check_int("lanes", lanes, 1, MAX_LANES)
        if isinstance(pe, PEFactory):
            if fmt is not None or acc_bits is not None:
                raise ValueError(f"fmt and acc_bits must be None when pe is a PEFactory (it has them), "
                                 f"got fmt={fmt!r}, acc_bits={acc_bits!r}")
            if fmt_w is not None:
                raise ValueError(f"fmt_w must be None when pe is a PEFactory (it has the formats), got {fmt_w!r}")
            if lanes != 1 and lanes != getattr(pe, "lanes", 1):
                raise ValueError(f"lanes={lanes} disagrees with the PEFactory's {getattr(pe, 'lanes', 1)} lanes "
                                 f"(leave lanes out: the factory has them)")
            factory = pe
        else:
            factory = PE_KINDS[_check_pe(pe)]
            if factory is None:
                if fmt is None:
                    raise TypeError("fmt is required for pe='mls' (an MLSFormat or a name like 'e2m1g3')")
                fmt, fmt_w = _mls_formats(fmt, fmt_w)
            elif fmt is not None or fmt_w is not None:
                raise ValueError(f"fmt must be None for pe={pe!r} (a baseline PE's operand formats are fixed), "
                                 f"got {fmt if fmt is not None else fmt_w!r}")
            elif lanes != 1:
                if factory.kind not in DOT_KINDS:
                    raise ValueError(f"lanes must be 1 for pe={pe!r} (no {lanes}-lane dot-product PE of that kind), "
                                     f"got {lanes}")
                factory = BaselineDotPEFactory(factory.kind, factory.fmt_a, factory.fmt_b, lanes)
        _check_int("rows", rows, 1, MAX_DIM)
        _check_int("cols", cols, 1, MAX_DIM)
        _check_int("max_k", max_k, 1, 1 << 40)
        if factory is None:
            if lanes == 1 and fmt == fmt_w:   # the scalar PE (today's array, bit for bit)
                factory = MLSPEFactory(fmt, fmt.acc_bits_exact(max_k) if acc_bits is None else acc_bits)
            else:
                factory = MLSDotPEFactory(fmt, fmt_w, lanes,
                                          fmt.acc_bits_exact(max_k, fmt_w) if acc_bits is None else acc_bits)
        elif acc_bits is not None:
            raise ValueError(f"acc_bits must be None for pe={pe!r} (its accumulator is a fixed "
                             f"{_result_bits(factory)}-bit word), got {acc_bits!r}")
        self._factory, self._rows, self._cols, self._max_k = factory, rows, cols, max_k
        super().__init__({
            "a": In(stream.Signature(self.a_layout)),
            "w": In(stream.Signature(self.w_layout)),
            "c": Out(stream.Signature(self.c_layout)),
        })
        del self._MustUse__silence

    # -- configuration ---------------------------------------------------------------------
    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    max_k = property(lambda self: self._max_k)

    @property
    def pe_factory(self) -> PEFactory:
        """What makes every PE of this array (``MLSPEFactory``, a ``BaselinePEFactory``, ...)."""
        return self._factory

    @property
    def pe(self) -> str:
        """The PE kind: ``"mls"``, a baseline name of ``PE_KINDS``, or the factory's ``name``."""
        return self._factory.name

    @property
    def fmt(self):
        """The MLS element format of both operands, or None (a baseline PE's formats are fixed; or
        A and W formats differ: ``fmt_a``, ``fmt_w``)."""
        return getattr(self._factory, "fmt", None)

    @property
    def fmt_a(self):
        """The MLS element format of A, or None for a baseline PE."""
        return getattr(self._factory, "fmt_a", getattr(self._factory, "fmt", None))

    @property
    def fmt_w(self):
        """The MLS element format of W, or None for a baseline PE."""
        return getattr(self._factory, "fmt_w", getattr(self._factory, "fmt", None))

    @property
    def lanes(self) -> int:
        """Element pairs per beat: the factory's ``lanes`` (1 for a scalar PE)."""
        return getattr(self._factory, "lanes", 1)

    @property
    def is_dot(self) -> bool:
        """Whether the PEs are dot-product PEs (beats of ``lanes`` pairs; true even at one lane)."""
        return hasattr(self._factory, "lanes")

    @property
    def acc_bits(self) -> int:
        """Width of one result: the MLS accumulator, or the baselines' 32-bit word."""
        return _result_bits(self._factory)

    @property
    def is_baseline(self) -> bool:
        return isinstance(self._factory, BaselinePEFactory)

    @property
    def pe_formats(self) -> tuple:
        """``(kind, A format, W format)`` of a baseline PE (FP8 names or None); None for MLS."""
        return self._factory.formats if self.is_baseline else None

    @property
    def a_shape(self):
        """Shape of one A operand (one element of ``a.payload.data``)."""
        return self._factory.signature.a_shape

    @property
    def w_shape(self):
        """Shape of one W operand (one element of ``w.payload.data``)."""
        return self._factory.signature.b_shape

    @property
    def result_shape(self):
        """Shape of one result (one element of ``c.payload.data``): ``signed(acc_bits)`` for MLS
        and INT8, ``float_layout(FP32)`` for the float baselines."""
        return self._factory.signature.result_shape

    @property
    def a_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": data.ArrayLayout(self.a_shape, self._rows), "last": 1})

    @property
    def w_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": data.ArrayLayout(self.w_shape, self._cols)})

    @property
    def c_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": data.ArrayLayout(self.result_shape, self._cols),
                                  "overflow": self._cols, "last": 1})

    @property
    def timing(self) -> ArrayTiming:
        """Exact cycle counts of this array (``hw.array.timing``), in beats of ``lanes`` pairs."""
        return ArrayTiming(self._rows, self._cols, self.pe_latency, self.lanes)

    @property
    def pe_latency(self) -> int:
        return self._factory.latency

    @property
    def latency(self) -> int:
        """Cycles from a tile's last input beat to its first output row (row 0)."""
        return self.timing.drain_cycles - (self._rows - 1)

    @property
    def exact(self) -> bool:
        """Whether the accumulator is exact for every K <= max_k (``PEFactory.exact``: never for a
        float accumulator; for INT8 while the INT32 sum cannot wrap, K <= ``INT8_MAX_K_EXACT``)."""
        return self._factory.exact(self._max_k)

    def make_pe(self):
        """A new PE of this array's kind (``MLSPE``, ``BaselinePE``, ...), checked to have the
        factory's signature."""
        pe = self._factory()
        if pe.signature != self._factory.signature:
            raise TypeError(f"{self._factory!r} made a PE with signature {pe.signature!r}, "
                            f"not {self._factory.signature!r}")
        return pe

    # -- gateware --------------------------------------------------------------------------
    def elaborate(self, platform):
        R, C = self._rows, self._cols
        a_op, w_op = self.a_shape, self.w_shape
        pes = [[self.make_pe() for _ in range(C)] for _ in range(R)]   # a PE of the wrong signature raises here

        m = Module()
        for i in range(R):
            for j in range(C):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]

        # Join the two input streams. Only a tile's last beat can wait: for the previous tile's
        # results to leave the result registers it would overwrite (double buffer).
        busy = Signal()          # results of a tile are waiting in, or draining from, the PEs
        first = Signal(init=1)   # the next beat starts a tile
        row = Signal(range(R))   # next row to drain
        full = Signal(R)         # row r of the result registers holds an undrained tile
        drain_final = Signal()
        can_take = Signal()
        fire = Signal()
        last = self.a.payload.last
        m.d.comb += [
            drain_final.eq(self.c.valid & self.c.ready & (row == R - 1)),
            can_take.eq(~last | ~busy | drain_final),
            self.a.ready.eq(self.w.valid & can_take),
            self.w.ready.eq(self.a.valid & can_take),
            fire.eq(self.a.valid & self.w.valid & can_take),
        ]
        with m.If(fire):
            m.d.sync += first.eq(last)
        with m.If(drain_final):
            m.d.sync += busy.eq(0)
        with m.If(fire & last):
            m.d.sync += busy.eq(1)

        # Skew: row i's A (with the control) and column j's W are delayed by i and j cycles.
        ctl0 = Signal(control_layout())
        m.d.comb += [ctl0.valid.eq(fire), ctl0.first.eq(first), ctl0.last.eq(last)]
        for i in range(R):
            a_sig, c_sig = self.a.payload.data[i], ctl0
            for d in range(i):
                a_next, c_next = Signal(a_op, name=f"a_skew_{i}_{d}"), Signal(control_layout(), name=f"ctl_skew_{i}_{d}")
                m.d.sync += [a_next.eq(a_sig), c_next.eq(c_sig)]
                a_sig, c_sig = a_next, c_next
            m.d.comb += [pes[i][0].a_in.eq(a_sig), pes[i][0].ctl_in.eq(c_sig)]
            for j in range(1, C):
                m.d.comb += [pes[i][j].a_in.eq(pes[i][j - 1].a_out), pes[i][j].ctl_in.eq(pes[i][j - 1].ctl_out)]
        for j in range(C):
            w_sig = self.w.payload.data[j]
            for d in range(j):
                w_next = Signal(w_op, name=f"w_skew_{j}_{d}")
                m.d.sync += w_next.eq(w_sig)
                w_sig = w_next
            m.d.comb += pes[0][j].b_in.eq(w_sig)
            for i in range(1, R):
                m.d.comb += pes[i][j].b_in.eq(pes[i - 1][j].b_out)

        # Drain: row r is complete when its last column's PE holds the result; rows complete
        # one per cycle, in order, so they leave as a stream without any extra buffering.
        # An AND-OR row select (not an Array/case): continuous assigns, so event-driven
        # simulators see defined outputs from time 0.
        row_data, row_flags = 0, 0
        for i in range(R):
            hit = (row == i).replicate(C * self.acc_bits)
            row_data = row_data | (Cat(pe.result for pe in pes[i]) & hit)
            row_flags = row_flags | (Cat(pe.overflow for pe in pes[i]) & (row == i).replicate(C))
        m.d.comb += [
            self.c.valid.eq(full.bit_select(row, 1)),
            self.c.payload.data.eq(row_data),
            self.c.payload.overflow.eq(row_flags),
            self.c.payload.last.eq(row == R - 1),
        ]
        done = Cat(pes[i][C - 1].done for i in range(R))
        taken = Signal(R)
        with m.If(self.c.valid & self.c.ready):
            m.d.comb += taken.eq(1 << row)
            m.d.sync += row.eq(Mux(row == R - 1, 0, row + 1))
        m.d.sync += full.eq((full & ~taken) | done)
        return m
