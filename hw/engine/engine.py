"""The accelerator as one design: FP32 A and W in, quantized on chip, one GEMM on the array, FP32 C out."""

from __future__ import annotations

import enum

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from ..array.array import SystolicArray
from ..convert.converter import OutputConverter
from ..pe.layout import beat_layout
from .config import EngineConfig
from .loader import OperandLoader
from .psum import PartialSumBuffer

__all__ = ["Engine", "Op", "command_layout", "flags_layout"]


class Op(enum.IntEnum):
    """Engine commands (``cmd.op``); each runs to ``done``."""
    CLEAR = 0    #: clear the sticky flags
    AMAX_A = 1   #: amax pass over A on stream ``a`` ([M, K] row-major); result on ``amax``
    AMAX_W = 2   #: amax pass over W on stream ``w`` (W^T: [N, K] row-major)
    LOAD_A = 3   #: convert pass over A with ``inv``/``seed``/``cmd.stochastic``: fills the A buffer
    LOAD_W = 4   #: convert pass over W: fills the W buffer
    GEMM = 5     #: C = A x W from the buffers with ``scale_a``/``scale_w``; rows of C on ``c``


def command_layout(config: EngineConfig) -> data.StructLayout:
    """``op``, the GEMM shape (``m``, ``n``, ``chunks`` = K / group_len of the command's K
    segment), ``stochastic`` (loads) and the split-K controls ``psum_add``/``psum_store`` (GEMM)."""
    return data.StructLayout({
        "op": 3,
        "m": range(config.max_m + 1).stop.bit_length(),
        "n": range(config.max_n + 1).stop.bit_length(),
        "chunks": range(config.max_chunks + 1).stop.bit_length(),
        "stochastic": 1,
        "psum_add": 1,     # GEMM: add the partial-sum buffer's rows (every K segment but the first)
        "psum_store": 1,   # GEMM: store the sums there instead of sending C (every segment but the last)
    })


def flags_layout() -> data.StructLayout:
    """Sticky status, cleared by ``Op.CLEAR`` (and reset).

    overflow: an accumulator saturated (a finite ``acc_bits``); infinite: an output is +-inf
    (past the FP32 range); invalid: an FP32 input was NaN/Inf (or a wrong ``inv`` overflowed a
    product), or an output is NaN; refused: a command had a zero dimension, came while busy,
    or its operand did not fit the buffers (nothing past them was written or read)."""
    return data.StructLayout({"overflow": 1, "infinite": 1, "invalid": 1, "refused": 1})


class Engine(wiring.Component):
    """Two quantization units, two banked operand buffers, the array and the output converter.

    A GEMM ``C[M, N] = A[M, K] x W[K, N]`` is five commands: ``AMAX_A`` and ``AMAX_W`` (stream
    the FP32 operand, read ``amax``), the host computes ``S_t, inv = tensor_scale(amax, fmt)``,
    ``LOAD_A`` and ``LOAD_W`` (stream the operand again with ``inv``), then ``GEMM`` with both
    ``S_t``. The sequencer walks the folds (M tiles outer, N tiles inner) and, per tile, the
    ``chunks * ceil(group_len / L)`` beats along K; every tile's rows go through the converter.
    Rows of C leave tile by tile (``hw.engine.host.output_order``); rows past M are dropped,
    columns past N are +0. See docs/engine.md.

    Members
    -------
    a, w : In(stream.Signature(ArrayLayout(32, quant_lanes)))
        FP32 bit patterns of A (row-major) and of W^T (row-major); ready only during a pass.
    c : Out(stream.Signature(StructLayout({"data": ArrayLayout(32, cols), "last": 1})))
        One row of C per transfer (columns ``nt*C .. nt*C + C - 1``); ``last`` on the final row.
    cmd : In(command_layout(config)); start : In(1)
        A command starts in the cycle ``start`` is high (ignored and flagged while busy).
    inv, seed : In(32)
        For ``LOAD_A``/``LOAD_W``: the FP32 inverse scale and the LFSR seed.
    scale_a, scale_w : In(32)
        For ``GEMM``: the FP32 tensor scales (latched by ``start``).
    busy, done : Out(1)
        ``done`` is high from the end of a command until the next ``start``.
    amax : Out(32)
        FP32 amax of the operand of the last amax pass.
    flags : Out(flags_layout())
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        q, C = config.quant_lanes, config.cols
        super().__init__({
            "a": In(stream.Signature(data.ArrayLayout(FP32.bits, q))),
            "w": In(stream.Signature(data.ArrayLayout(FP32.bits, q))),
            "c": Out(stream.Signature(data.StructLayout({"data": data.ArrayLayout(FP32.bits, C), "last": 1}))),
            "cmd": In(command_layout(config)),
            "start": In(1),
            "inv": In(FP32.bits), "seed": In(32),
            "scale_a": In(FP32.bits), "scale_w": In(FP32.bits),
            "busy": Out(1), "done": Out(1),
            "amax": Out(FP32.bits),
            "flags": Out(flags_layout()),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    def make_array(self) -> SystolicArray:
        cfg = self._config
        return SystolicArray((cfg.fmt_a, cfg.fmt_w), cfg.rows, cfg.cols, acc_bits=cfg.accumulator_bits,
                             max_k=cfg.max_k, lanes=cfg.lanes)

    def make_converter(self) -> OutputConverter:
        cfg = self._config
        return OutputConverter(cfg.accumulator_bits, cfg.lsb_exponent, cfg.cols)

    def make_psum(self) -> PartialSumBuffer | None:
        cfg = self._config
        return PartialSumBuffer(cfg.accumulator_bits, cfg.cols, cfg.psum_depth) if cfg.psum_depth else None

    @staticmethod
    def psum_latency_of(config: EngineConfig) -> int:
        """Register stages the partial-sum buffer adds between the array and the converter (0 without one)."""
        return PartialSumBuffer.LATENCY if config.psum_depth else 0

    def make_loaders(self) -> tuple[OperandLoader, OperandLoader]:
        cfg = self._config
        return (OperandLoader(cfg.fmt_a, cfg.rows, cfg.lanes, cfg.quant_lanes, cfg.group_len, cfg.a_depth, cfg.sr_bits),
                OperandLoader(cfg.fmt_w, cfg.cols, cfg.lanes, cfg.quant_lanes, cfg.group_len, cfg.w_depth, cfg.sr_bits))

    @staticmethod
    def pe_latency_of(config: EngineConfig) -> int:
        """The array's PE latency for ``config``, without building the array."""
        from ..pe.dot_pe import MLSDotPEFactory
        from ..pe.pe import MLSPEFactory
        if config.lanes == 1 and config.fmt_a == config.fmt_w:
            return MLSPEFactory(config.fmt_a, config.accumulator_bits).latency
        return MLSDotPEFactory(config.fmt_a, config.fmt_w, config.lanes, config.accumulator_bits).latency

    #: Cycles from the GEMM's start to its first beat transfer into the array: the command
    #: register, then the synchronous buffer read.
    ISSUE_LATENCY = 2

    def elaborate(self, platform):
        cfg = self._config
        R, C, L, bpc = cfg.rows, cfg.cols, cfg.lanes, cfg.beats_per_chunk
        m = Module()
        load_a, load_w = self.make_loaders()
        m.submodules.load_a, m.submodules.load_w = load_a, load_w
        m.submodules.array = arr = self.make_array()
        m.submodules.convert = conv = self.make_converter()

        # -- command ------------------------------------------------------------------------
        op = Signal(3)
        busy, done = Signal(), Signal()
        m_, n_, chunks = Signal.like(self.cmd.m), Signal.like(self.cmd.n), Signal.like(self.cmd.chunks)
        psum_add, psum_store = Signal(), Signal()
        scale_a, scale_w = Signal(32), Signal(32)
        flags = Signal(flags_layout())
        set_flags = Signal(flags_layout())
        finish = Signal()
        cmd = self.cmd
        zero_dim = (cmd.m == 0) | (cmd.n == 0) | (cmd.chunks == 0)
        takes = Signal()
        m.d.comb += takes.eq(self.start & ~busy)
        # a split-K GEMM on an engine without the partial-sum buffer is refused
        no_psum = Signal()
        if not cfg.psum_depth:
            m.d.comb += no_psum.eq((cmd.op == Op.GEMM) & (cmd.psum_add | cmd.psum_store))
        with m.If(self.start & busy):
            m.d.comb += set_flags.refused.eq(1)
        with m.If(takes):
            m.d.sync += [op.eq(cmd.op), m_.eq(cmd.m), n_.eq(cmd.n), chunks.eq(cmd.chunks), done.eq(0),
                         scale_a.eq(self.scale_a), scale_w.eq(self.scale_w),
                         psum_add.eq(cmd.psum_add), psum_store.eq(cmd.psum_store)]
            with m.If((cmd.op == Op.CLEAR) | (cmd.op > Op.GEMM) | ((cmd.op != Op.CLEAR) & zero_dim) | no_psum):
                m.d.sync += done.eq(1)
                with m.If(cmd.op != Op.CLEAR):
                    m.d.comb += set_flags.refused.eq(1)
            with m.Else():
                m.d.sync += busy.eq(1)
        with m.If(finish):
            m.d.sync += [busy.eq(0), done.eq(1)]
        with m.If(takes & (cmd.op == Op.CLEAR)):
            m.d.sync += flags.eq(0)
        with m.Else():
            m.d.sync += flags.eq(flags.as_value() | set_flags.as_value())
        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.flags.eq(flags)]

        # -- quantization passes -----------------------------------------------------------
        valid_cmd = takes & ~zero_dim & ~no_psum
        for loader, stream_in, amax_op, load_op, lines in ((load_a, self.a, Op.AMAX_A, Op.LOAD_A, cmd.m),
                                                          (load_w, self.w, Op.AMAX_W, Op.LOAD_W, cmd.n)):
            mine = (cmd.op == amax_op) | (cmd.op == load_op)
            running = busy & ((op == amax_op) | (op == load_op))
            m.d.comb += [
                loader.start.eq(valid_cmd & mine), loader.mode.eq(cmd.op == load_op),
                loader.stochastic.eq(cmd.stochastic), loader.inv.eq(self.inv), loader.seed.eq(self.seed),
                loader.lines.eq(lines), loader.chunks.eq(cmd.chunks),
            ]
            wiring.connect(m, wiring.flipped(stream_in), loader.i)
            with m.If(running):
                m.d.comb += [set_flags.invalid.eq(loader.invalid), set_flags.refused.eq(loader.overrun)]
                with m.If(loader.done):
                    m.d.comb += finish.eq(1)
        m.d.comb += self.amax.eq(Mux((op == Op.AMAX_W) | (op == Op.LOAD_W), load_w.amax, load_a.amax))

        # -- GEMM sequencer: folds over M (outer) and N, beats along K ----------------------
        gemm_start = valid_cmd & (cmd.op == Op.GEMM)
        bpl = Signal(range(cfg.max_chunks * bpc + 1))
        m.d.comb += bpl.eq(chunks * bpc)
        issuing = Signal()
        t, bic, c = Signal.like(bpl), Signal(range(bpc + 1)), Signal.like(chunks)
        mt, nt = Signal(range(cfg.max_m + R + 1)), Signal(range(cfg.max_n + C + 1))
        wide_a = range(cfg.a_gdepth * cfg.a_gdepth * bpc + cfg.a_depth + 1)
        wide_w = range(cfg.w_gdepth * cfg.w_gdepth * bpc + cfg.w_depth + 1)
        a_base, w_base = Signal(wide_a), Signal(wide_w)
        ga_base, gw_base = Signal(wide_a), Signal(wide_w)
        a_addr, w_addr = Signal(wide_a), Signal(wide_w)
        ga_addr, gw_addr = Signal(wide_a), Signal(wide_w)
        m.d.comb += [a_addr.eq(a_base + t), w_addr.eq(w_base + t), ga_addr.eq(ga_base + c), gw_addr.eq(gw_base + c)]

        beat_valid, beat_last = Signal(), Signal()
        row_mask, col_mask = Signal(R), Signal(C)
        advance = Signal()
        m.d.comb += advance.eq(~beat_valid | arr.a.ready)
        m.d.comb += [
            load_a.rd_en.eq(advance), load_w.rd_en.eq(advance),
            load_a.rd_addr.eq(a_addr), load_w.rd_addr.eq(w_addr),
            load_a.rd_gaddr.eq(ga_addr), load_w.rd_gaddr.eq(gw_addr),
        ]
        out_of_range = (a_addr >= cfg.a_depth) | (w_addr >= cfg.w_depth) | \
                       (ga_addr >= load_a.gdepth) | (gw_addr >= load_w.gdepth)
        last_beat = t + 1 == bpl
        last_nt = nt + C >= n_
        last_mt = mt + R >= m_
        with m.If(gemm_start):
            m.d.sync += [issuing.eq(1), t.eq(0), bic.eq(0), c.eq(0), mt.eq(0), nt.eq(0),
                         a_base.eq(0), w_base.eq(0), ga_base.eq(0), gw_base.eq(0)]
        with m.Elif(advance):
            m.d.sync += beat_valid.eq(issuing)
            with m.If(issuing):
                with m.If(out_of_range):
                    m.d.comb += set_flags.refused.eq(1)
                m.d.sync += [
                    beat_last.eq(last_beat),
                    row_mask.eq(Cat((mt + i < m_) & ~out_of_range for i in range(R))),
                    col_mask.eq(Cat((nt + j < n_) & ~out_of_range for j in range(C))),
                ]
                with m.If(last_beat):
                    m.d.sync += [t.eq(0), bic.eq(0), c.eq(0)]
                    with m.If(last_nt):
                        m.d.sync += [nt.eq(0), w_base.eq(0), gw_base.eq(0),
                                     mt.eq(mt + R), a_base.eq(a_base + bpl), ga_base.eq(ga_base + chunks)]
                        with m.If(last_mt):
                            m.d.sync += issuing.eq(0)
                    with m.Else():
                        m.d.sync += [nt.eq(nt + C), w_base.eq(w_base + bpl), gw_base.eq(gw_base + chunks)]
                with m.Else():
                    m.d.sync += t.eq(t + 1)
                    with m.If(bic == bpc - 1):
                        m.d.sync += [bic.eq(0), c.eq(c + 1)]
                    with m.Else():
                        m.d.sync += bic.eq(bic + 1)

        # the beats: L codes per line from the buffers, lines past M / N zeroed
        def beat_of(codes, g, fmt, keep):
            layout = beat_layout(fmt, L)
            beat = Signal(layout)
            M, E, eb = fmt.man_bits, fmt.exp_bits, fmt.elem_bits
            for lane in range(L):
                code = codes[lane * eb:(lane + 1) * eb]
                elem = beat.elems[lane]
                stmts = [elem.sign.eq(code[M + E] & keep)]
                if M:
                    stmts.append(elem.man.eq(Mux(keep, code[:M], 0)))
                if E:
                    stmts.append(elem.exp.eq(Mux(keep, code[M:M + E], 0)))
                m.d.comb += stmts
            m.d.comb += beat.g.eq(g)
            return beat

        for i in range(R):
            m.d.comb += arr.a.payload.data[i].eq(beat_of(load_a.rd_codes[i], load_a.rd_g[i], cfg.fmt_a, row_mask[i]))
        for j in range(C):
            m.d.comb += arr.w.payload.data[j].eq(beat_of(load_w.rd_codes[j], load_w.rd_g[j], cfg.fmt_w, col_mask[j]))
        m.d.comb += [arr.a.payload.last.eq(beat_last), arr.a.valid.eq(beat_valid), arr.w.valid.eq(beat_valid)]

        # -- array -> [partial sums] -> converter -> C rows -----------------------------------
        psum = self.make_psum()
        stored = Signal()   # a row went into the partial-sum buffer (psum_store)
        if psum is None:
            m.d.comb += [conv.i.payload.eq(arr.c.payload.data), conv.i.valid.eq(arr.c.valid),
                         arr.c.ready.eq(conv.i.ready)]
        else:
            m.submodules.psum = psum
            m.d.comb += [
                psum.i.payload.eq(arr.c.payload.data), psum.i.valid.eq(arr.c.valid), arr.c.ready.eq(psum.i.ready),
                conv.i.payload.eq(psum.o.payload), conv.i.valid.eq(psum.o.valid), psum.o.ready.eq(conv.i.ready),
                psum.start.eq(gemm_start), psum.add.eq(psum_add), psum.store.eq(psum_store),
                stored.eq(psum.stored),
            ]
            with m.If(psum.overflow):
                m.d.comb += set_flags.overflow.eq(1)
            with m.If(psum.refused):
                m.d.comb += set_flags.refused.eq(1)
        m.d.comb += [conv.scale_a.eq(scale_a), conv.scale_b.eq(scale_w)]
        with m.If(arr.c.valid & arr.c.ready & arr.c.payload.overflow.any()):
            m.d.comb += set_flags.overflow.eq(1)

        out_row = Signal(range(R + 1))   # + 1: never zero-width
        out_mt, out_nt = Signal.like(mt), Signal.like(nt)
        row_ok = out_mt + out_row < m_
        out_last_nt = out_nt + C >= n_
        out_last_mt = out_mt + R >= m_
        m.d.comb += [
            self.c.valid.eq(conv.o.valid & row_ok),
            conv.o.ready.eq(self.c.ready | ~row_ok),
            self.c.payload.data.eq(conv.o.payload),
            self.c.payload.last.eq(out_last_nt & (out_mt + out_row + 1 == m_)),
        ]
        infinite = 0
        for j in range(C):
            word = conv.o.payload[j]
            infinite = infinite | ((word[23:31] == 0xFF) & (word[:23] == 0))
        # a row of the command is done when it leaves the converter, or (psum_store) when it is
        # written into the partial-sum buffer
        converted = conv.o.valid & conv.o.ready
        with m.If(gemm_start):
            m.d.sync += [out_row.eq(0), out_mt.eq(0), out_nt.eq(0)]
        with m.Elif(converted | stored):
            with m.If(converted & row_ok):
                m.d.comb += [set_flags.infinite.eq(infinite), set_flags.invalid.eq(conv.nan)]
            with m.If(out_row == R - 1):
                m.d.sync += out_row.eq(0)
                with m.If(out_last_nt):
                    m.d.sync += [out_nt.eq(0), out_mt.eq(out_mt + R)]
                    with m.If(out_last_mt & busy & (op == Op.GEMM)):
                        m.d.comb += finish.eq(1)
                with m.Else():
                    m.d.sync += out_nt.eq(out_nt + C)
            with m.Else():
                m.d.sync += out_row.eq(out_row + 1)
        return m
