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
        # double buffering: the slot LOAD_A / LOAD_W fills and the slots a GEMM reads
        **({"slot_a": 1, "slot_w": 1} if config.double_buffer else {}),
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
            **({"units_busy": Out(3)} if config.double_buffer else {}),
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
        return (OperandLoader(cfg.fmt_a, cfg.rows, cfg.lanes, cfg.quant_lanes, cfg.group_len, cfg.a_depth, cfg.sr_bits,
                              cfg.slots),
                OperandLoader(cfg.fmt_w, cfg.cols, cfg.lanes, cfg.quant_lanes, cfg.group_len, cfg.w_depth, cfg.sr_bits,
                              cfg.slots))

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
        # three units run commands: loader A (AMAX_A, LOAD_A), loader W (AMAX_W, LOAD_W) and the
        # GEMM sequencer. Without double buffering one command runs at a time; with it, a command
        # is taken whenever its own unit is idle and it does not touch the slot another running
        # command uses (a load into the slot a GEMM reads, or a GEMM of a slot being loaded).
        busy_a, busy_w, busy_g = Signal(), Signal(), Signal()
        busy = Signal()
        m.d.comb += busy.eq(busy_a | busy_w | busy_g)
        done_flag = Signal()            # the last command taken has ended (done = flag & idle)
        op_a, op_w = Signal(3), Signal(3)
        amax_w_last = Signal()          # the last amax-unit command was W's (selects ``amax``)
        m_, n_, chunks = Signal.like(self.cmd.m), Signal.like(self.cmd.n), Signal.like(self.cmd.chunks)
        psum_add, psum_store = Signal(), Signal()
        scale_a, scale_w = Signal(32), Signal(32)
        flags = Signal(flags_layout())
        set_flags = Signal(flags_layout())
        finish_a, finish_w, finish_g = Signal(), Signal(), Signal()
        cmd = self.cmd
        zero_dim = (cmd.m == 0) | (cmd.n == 0) | (cmd.chunks == 0)
        uses_a = (cmd.op == Op.AMAX_A) | (cmd.op == Op.LOAD_A)
        uses_w = (cmd.op == Op.AMAX_W) | (cmd.op == Op.LOAD_W)
        is_gemm = cmd.op == Op.GEMM
        # a split-K GEMM on an engine without the partial-sum buffer is refused
        no_psum = Signal()
        if not cfg.psum_depth:
            m.d.comb += no_psum.eq(is_gemm & (cmd.psum_add | cmd.psum_store))
        unit_busy, hazard = Signal(), Signal()
        slot_a, slot_w = Signal(), Signal()         # the slots the running GEMM reads
        lslot_a, lslot_w = Signal(), Signal()       # the slots the loaders fill
        if cfg.double_buffer:
            m.d.comb += [
                unit_busy.eq(Mux(is_gemm, busy_g, Mux(uses_a, busy_a, Mux(uses_w, busy_w, busy)))),
                hazard.eq(((cmd.op == Op.LOAD_A) & busy_g & (cmd.slot_a == slot_a))
                          | ((cmd.op == Op.LOAD_W) & busy_g & (cmd.slot_w == slot_w))
                          | (is_gemm & busy_a & (op_a == Op.LOAD_A) & (lslot_a == cmd.slot_a))
                          | (is_gemm & busy_w & (op_w == Op.LOAD_W) & (lslot_w == cmd.slot_w))),
            ]
        else:
            m.d.comb += unit_busy.eq(busy)
        takes = Signal()
        m.d.comb += takes.eq(self.start & ~unit_busy & ~hazard)
        with m.If(self.start & (unit_busy | hazard)):
            m.d.comb += set_flags.refused.eq(1)
        with m.If(takes):
            m.d.sync += done_flag.eq(0)
            with m.If((cmd.op == Op.CLEAR) | (cmd.op > Op.GEMM) | ((cmd.op != Op.CLEAR) & zero_dim) | no_psum):
                m.d.sync += done_flag.eq(1)
                with m.If(cmd.op != Op.CLEAR):
                    m.d.comb += set_flags.refused.eq(1)
            with m.Elif(uses_a):
                m.d.sync += [busy_a.eq(1), op_a.eq(cmd.op), amax_w_last.eq(0)]
                if cfg.double_buffer:
                    m.d.sync += lslot_a.eq(cmd.slot_a)
            with m.Elif(uses_w):
                m.d.sync += [busy_w.eq(1), op_w.eq(cmd.op), amax_w_last.eq(1)]
                if cfg.double_buffer:
                    m.d.sync += lslot_w.eq(cmd.slot_w)
            with m.Else():
                m.d.sync += [busy_g.eq(1), m_.eq(cmd.m), n_.eq(cmd.n), chunks.eq(cmd.chunks),
                             scale_a.eq(self.scale_a), scale_w.eq(self.scale_w),
                             psum_add.eq(cmd.psum_add), psum_store.eq(cmd.psum_store)]
                if cfg.double_buffer:
                    m.d.sync += [slot_a.eq(cmd.slot_a), slot_w.eq(cmd.slot_w)]
        for unit_busy_, unit_finish in ((busy_a, finish_a), (busy_w, finish_w), (busy_g, finish_g)):
            with m.If(unit_finish):
                m.d.sync += [unit_busy_.eq(0), done_flag.eq(1)]
        with m.If(takes & (cmd.op == Op.CLEAR)):
            m.d.sync += flags.eq(0)
        with m.Else():
            m.d.sync += flags.eq(flags.as_value() | set_flags.as_value())
        m.d.comb += [self.busy.eq(busy), self.done.eq(done_flag & ~busy), self.flags.eq(flags)]
        if cfg.double_buffer:
            m.d.comb += self.units_busy.eq(Cat(busy_a, busy_w, busy_g))

        # -- quantization passes -----------------------------------------------------------
        valid_cmd = takes & ~zero_dim & ~no_psum
        for loader, stream_in, mine, lines, running, op_unit, finish_unit, slot_field in (
                (load_a, self.a, uses_a, cmd.m, busy_a, op_a, finish_a, "slot_a"),
                (load_w, self.w, uses_w, cmd.n, busy_w, op_w, finish_w, "slot_w")):
            load_op = Op.LOAD_A if loader is load_a else Op.LOAD_W
            m.d.comb += [
                loader.start.eq(valid_cmd & mine), loader.mode.eq(cmd.op == load_op),
                loader.stochastic.eq(cmd.stochastic), loader.inv.eq(self.inv), loader.seed.eq(self.seed),
                loader.lines.eq(lines), loader.chunks.eq(cmd.chunks),
            ]
            if cfg.double_buffer:
                m.d.comb += loader.slot.eq(cmd[slot_field])
            wiring.connect(m, wiring.flipped(stream_in), loader.i)
            # flags are only ever set here (a comb ``eq(0)`` would undo another unit's or a
            # refused start's flag in the same cycle)
            with m.If(running):
                with m.If(loader.invalid):
                    m.d.comb += set_flags.invalid.eq(1)
                with m.If(loader.overrun):
                    m.d.comb += set_flags.refused.eq(1)
                with m.If(loader.done):
                    m.d.comb += finish_unit.eq(1)
        m.d.comb += self.amax.eq(Mux(amax_w_last, load_w.amax, load_a.amax))

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
        ]
        if cfg.double_buffer:   # the slot's rows follow the other slot's
            m.d.comb += [
                load_a.rd_addr.eq(a_addr + slot_a * cfg.a_depth), load_w.rd_addr.eq(w_addr + slot_w * cfg.w_depth),
                load_a.rd_gaddr.eq(ga_addr + slot_a * load_a.gdepth), load_w.rd_gaddr.eq(gw_addr + slot_w * load_w.gdepth),
            ]
        else:
            m.d.comb += [
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
                with m.If(infinite):
                    m.d.comb += set_flags.infinite.eq(1)
                with m.If(conv.nan):
                    m.d.comb += set_flags.invalid.eq(1)
            with m.If(out_row == R - 1):
                m.d.sync += out_row.eq(0)
                with m.If(out_last_nt):
                    m.d.sync += [out_nt.eq(0), out_mt.eq(out_mt + R)]
                    with m.If(out_last_mt & busy_g):
                        m.d.comb += finish_g.eq(1)
                with m.Else():
                    m.d.sync += out_nt.eq(out_nt + C)
            with m.Else():
                m.d.sync += out_row.eq(out_row + 1)
        return m
