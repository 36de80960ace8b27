"""One operand of the engine: a quantization unit filling a banked buffer of MLS beats."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.floats import FP32
from model.formats import MLSFormat

from ..quant_unit.convert import ConvertPass
from ..quant_unit.config import QuantUnitConfig
from ..quant_unit.top import QuantUnit

__all__ = ["OperandLoader"]


def _walk_lines(m: Module, position, per_line, bank, banks: int, base, lines_done) -> None:
    """One step of a buffer write walk: ``position`` counts the rows of the current line (of
    ``per_line``); after a line's last row the next line goes to the next bank, and after the
    last bank the base row moves on by one line (bank ``l mod banks`` holds line l at row
    ``(l // banks) * per_line``)."""
    with m.If(position + 1 == per_line):
        m.d.sync += [position.eq(0), lines_done.eq(lines_done + 1)]
        with m.If(bank == banks - 1):
            m.d.sync += [bank.eq(0), base.eq(base + per_line)]
        with m.Else():
            m.d.sync += bank.eq(bank + 1)
    with m.Else():
        m.d.sync += position.eq(position + 1)


class OperandLoader(wiring.Component):
    """FP32 lines in, MLS beats of ``lanes`` codes (and one g per chunk) in ``banks`` banks out.

    The operand is ``lines`` lines of ``chunks * group_len`` elements along K, streamed line by
    line (A row-major ``[M, K]``; W as ``W^T``, row-major ``[N, K]``). Line l goes to bank
    ``l mod banks``, at beat rows ``(l // banks) * bpl .. + bpl - 1`` with ``bpl = chunks *
    ceil(group_len / lanes)``; its chunk c's group exponent to g row ``(l // banks) * chunks +
    c``. A beat row of a bank is exactly ``lanes`` codes as the quantization unit emits them
    (``s << (E+M) | e << M | m``, lane 0 at the LSB end); when ``group_len`` is not a multiple
    of ``lanes`` the last beat of every chunk is zero-padded (docs/numerics.md §3.1).

    ``start`` (one cycle) begins a pass over the operand: ``mode = 0`` the amax pass, ``mode =
    1`` the convert pass with ``inv``/``seed``/``stochastic``. ``done`` rises once every word was
    taken (amax, then ``amax`` is final) or every beat and g was written (convert), and stays
    until the next ``start``. ``i`` is ready only during a pass, so stray words wait.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(32, quant_lanes)))
    start, mode, stochastic : In(1); inv, seed : In(32)
    lines : In(range(banks * gdepth + 1)); chunks : In(range(gdepth + 1))
        Latched by ``start``.
    amax : Out(32); invalid : Out(1)
        The quantization unit's (of the pass selected by ``mode``).
    overrun : Out(1)
        Sticky for the pass: the operand does not fit (writes past the buffer were dropped).
    done : Out(1)
    rd_en : In(1); rd_addr : In(range(depth)); rd_gaddr : In(range(gdepth))
    rd_codes : Out(ArrayLayout(lanes * elem_bits, banks)); rd_g : Out(ArrayLayout(G, banks))
        One read port across all banks (synchronous: data one cycle after ``rd_en``; held
        while ``rd_en`` is low).
    """

    def __init__(self, fmt: MLSFormat, banks: int, lanes: int, quant_lanes: int, group_len: int,
                 depth: int, sr_bits: int, slots: int = 1):
        if slots not in (1, 2):
            raise ValueError(f"slots must be 1 or 2, got {slots!r}")
        self._slots = slots
        self._fmt = MLSFormat.parse(fmt)
        self._banks, self._lanes, self._q, self._gl, self._depth = banks, lanes, quant_lanes, group_len, depth
        self._qconfig = QuantUnitConfig(self._fmt, quant_lanes, group_len, sr_bits)
        if lanes % quant_lanes and quant_lanes % lanes:
            raise ValueError(f"quant_lanes {quant_lanes} must divide lanes {lanes} or be a multiple of it")
        #: beats per input word (> 1: a word fills several beats, written to as many sub-banks)
        self._k = max(1, quant_lanes // lanes)
        self._bpc = -(-group_len // lanes)
        if depth < self._bpc:
            raise ValueError(f"depth {depth} must hold one chunk ({self._bpc} beats)")
        if depth % self._k:
            raise ValueError(f"depth {depth} must be a multiple of quant_lanes / lanes = {self._k}")
        self._gdepth = depth // self._bpc
        fmt = self._fmt
        members = {
            "i": In(stream.Signature(data.ArrayLayout(FP32.bits, quant_lanes))),
            "start": In(1), "mode": In(1), "stochastic": In(1), "inv": In(32), "seed": In(32),
            "lines": In(range(banks * self._gdepth + 1)), "chunks": In(range(self._gdepth + 1)),
            "amax": Out(32), "invalid": Out(1), "overrun": Out(1), "done": Out(1),
            "rd_en": In(1), "rd_addr": In(range(slots * depth)), "rd_gaddr": In(range(slots * self._gdepth)),
            "rd_codes": Out(data.ArrayLayout(lanes * fmt.elem_bits, banks)),
            "rd_g": Out(data.ArrayLayout(fmt.group_bits, banks)),
        }
        if slots > 1:
            members["slot"] = In(1)   # the slot a convert pass fills (latched by start)
        super().__init__(members)

    depth = property(lambda self: self._depth)
    beats_per_word = property(lambda self: self._k)
    gdepth = property(lambda self: self._gdepth)
    beats_per_chunk = property(lambda self: self._bpc)
    quant_config = property(lambda self: self._qconfig)

    @property
    def convert_latency(self) -> int:
        """The quantization unit's convert-pass latency (a group is buffered whole)."""
        return ConvertPass.latency_for(self._qconfig)

    def elaborate(self, platform):
        m = Module()
        fmt, B, L, q, gl = self._fmt, self._banks, self._lanes, self._q, self._gl
        eb, G = fmt.elem_bits, fmt.group_bits
        words_per_beat, words_per_chunk = max(1, L // q), gl // q
        m.submodules.quant = qu = QuantUnit(self._qconfig)
        k, S = self._k, self._slots
        # the slot being filled: its rows follow the other slot's in every memory
        def in_slot(address, rows_per_slot):
            return address + slot * rows_per_slot if S > 1 else address
        if S > 1:
            slot = Signal()
            with m.If(self.start):
                m.d.sync += slot.eq(self.slot)
        if k == 1:
            m.submodules.codes = codes = Memory(shape=unsigned(B * L * eb), depth=S * self._depth, init=[])
            cw = codes.write_port(granularity=L * eb)
            cr = codes.read_port()
            m.d.comb += [cr.en.eq(self.rd_en), cr.addr.eq(self.rd_addr), self.rd_codes.eq(cr.data)]
        else:
            # a word of q = k * L codes is k beats: beat row r lives in sub-bank r mod k at row
            # r // k, so one word is one write into each of the k sub-banks at the same row
            subs = []
            for j in range(k):
                mem = Memory(shape=unsigned(B * L * eb), depth=S * self._depth // k, init=[])
                m.submodules[f"codes{j}"] = mem
                subs.append(mem)
            sub_w = [mem.write_port(granularity=L * eb) for mem in subs]
            sub_r = [mem.read_port() for mem in subs]
            rd_sub = Signal(range(k))          # the sub-bank of the read in flight
            for port in sub_r:
                m.d.comb += [port.en.eq(self.rd_en), port.addr.eq(self.rd_addr // k)]
            with m.If(self.rd_en):
                m.d.sync += rd_sub.eq(self.rd_addr % k)
            with m.Switch(rd_sub):
                for j, port in enumerate(sub_r):
                    with m.Case(j):
                        m.d.comb += self.rd_codes.eq(port.data)
        m.submodules.groups = groups = Memory(shape=unsigned(B * G), depth=S * self._gdepth, init=[])
        gw = groups.write_port(granularity=G)
        gr = groups.read_port()
        m.d.comb += [gr.en.eq(self.rd_en), gr.addr.eq(self.rd_gaddr), self.rd_g.eq(gr.data)]

        lines, chunks, mode = Signal.like(self.lines), Signal.like(self.chunks), Signal()
        active = Signal()          # input words are still expected
        with m.If(self.start):
            m.d.sync += [lines.eq(self.lines), chunks.eq(self.chunks), mode.eq(self.mode)]
        m.d.comb += [
            qu.start.eq(self.start), qu.mode.eq(Mux(self.start, self.mode, mode)),
            qu.stochastic.eq(self.stochastic), qu.inv.eq(self.inv), qu.seed.eq(self.seed),
            qu.i.payload.eq(self.i.payload), qu.i.valid.eq(self.i.valid & active),
            self.i.ready.eq(qu.i.ready & active),
            self.amax.eq(qu.amax), self.invalid.eq(qu.invalid),
            qu.o.ready.eq(1), qu.g.ready.eq(1),
        ]

        # input side: count words per line and lines
        in_word = Signal(range(self._gdepth * words_per_chunk + 1))
        in_line = Signal.like(self.lines)
        in_last = (in_word + 1 == chunks * words_per_chunk) & (in_line + 1 == lines)
        amax_done = Signal()
        with m.If(self.start):
            m.d.sync += [in_word.eq(0), in_line.eq(0), active.eq((self.lines != 0) & (self.chunks != 0)),
                         amax_done.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            with m.If(in_word + 1 == chunks * words_per_chunk):
                m.d.sync += [in_word.eq(0), in_line.eq(in_line + 1)]
            with m.Else():
                m.d.sync += in_word.eq(in_word + 1)
            with m.If(in_last):
                m.d.sync += [active.eq(0), amax_done.eq(~mode)]

        # code side: assemble beats of L codes, write beat rows bank by bank
        c_lines = Signal.like(self.lines)                      # lines fully written
        overrun = Signal()
        if k == 1:
            beat = Signal(L * eb)
            lane_word = Signal(range(words_per_beat + 1))   # + 1: never zero-width
            chunk_word = Signal(range(words_per_chunk + 1))
            t = Signal(range(self._gdepth * self._bpc + 1))        # beat within the line
            bank = Signal(range(B + 1))
            line_base = Signal(range(self._gdepth * self._gdepth * self._bpc + 1))   # never wraps
            bpl = Signal.like(t)
            m.d.comb += bpl.eq(chunks * self._bpc)
            # the beat with this word in its slot; one continuous assignment (no process), so an
            # event-driven simulator sees it defined from time 0 even while its inputs never change
            filled = Signal(L * eb)
            word_bits = q * eb
            m.d.comb += filled.eq(Cat(Mux(lane_word == k, qu.o.payload.as_value(), beat[k * word_bits:(k + 1) * word_bits])
                                      for k in range(words_per_beat)))
            close = (lane_word == words_per_beat - 1) | (chunk_word == words_per_chunk - 1)
            addr = line_base + t
            m.d.comb += [cw.addr.eq(in_slot(addr, self._depth)), cw.data.eq(filled.replicate(B))]
            with m.If(qu.o.valid & close):
                with m.If(addr < self._depth):
                    m.d.comb += cw.en.eq(1 << bank)
                with m.Else():
                    m.d.sync += overrun.eq(1)
            with m.If(self.start):
                m.d.sync += [beat.eq(0), lane_word.eq(0), chunk_word.eq(0), t.eq(0), bank.eq(0),
                             line_base.eq(0), c_lines.eq(0)]
            with m.Elif(qu.o.valid):
                m.d.sync += chunk_word.eq(Mux(chunk_word == words_per_chunk - 1, 0, chunk_word + 1))
                with m.If(close):
                    m.d.sync += [beat.eq(0), lane_word.eq(0)]
                    _walk_lines(m, t, bpl, bank, B, line_base, c_lines)
                with m.Else():
                    m.d.sync += [beat.eq(filled), lane_word.eq(lane_word + 1)]
        else:
            # every word closes k beats; count in rows of k beats (t_row: word within the line)
            words_per_line = Signal(range(self._gdepth * words_per_chunk + 1))
            m.d.comb += words_per_line.eq(chunks * words_per_chunk)
            t_row = Signal.like(words_per_line)
            bank = Signal(range(B + 1))
            row_base = Signal(range(self._gdepth * self._gdepth * words_per_chunk + 1))   # never wraps
            row = row_base + t_row
            word = qu.o.payload.as_value()
            for j, port in enumerate(sub_w):
                m.d.comb += [port.addr.eq(in_slot(row, self._depth // k)), port.data.eq(word[j * L * eb:(j + 1) * L * eb].replicate(B))]
            with m.If(qu.o.valid):
                with m.If(row < self._depth // k):
                    for port in sub_w:
                        m.d.comb += port.en.eq(1 << bank)
                with m.Else():
                    m.d.sync += overrun.eq(1)
            with m.If(self.start):
                m.d.sync += [t_row.eq(0), bank.eq(0), row_base.eq(0), c_lines.eq(0)]
            with m.Elif(qu.o.valid):
                _walk_lines(m, t_row, words_per_line, bank, B, row_base, c_lines)

        # group side: one g per chunk
        gc = Signal.like(self.chunks)
        gbank = Signal(range(B + 1))
        gbase = Signal(range(self._gdepth * self._gdepth + 1))
        g_lines = Signal.like(self.lines)
        gaddr = gbase + gc
        m.d.comb += [gw.addr.eq(in_slot(gaddr, self._gdepth)), gw.data.eq(qu.g.payload.replicate(B))]
        with m.If(qu.g.valid):
            with m.If(gaddr < self._gdepth):
                m.d.comb += gw.en.eq(1 << gbank)
            with m.Else():
                m.d.sync += overrun.eq(1)
        with m.If(self.start):
            m.d.sync += [gc.eq(0), gbank.eq(0), gbase.eq(0), g_lines.eq(0), overrun.eq(0)]
        with m.Elif(qu.g.valid):
            _walk_lines(m, gc, chunks, gbank, B, gbase, g_lines)

        convert_done = mode & ~active & (c_lines == lines) & (g_lines == lines)
        m.d.comb += [self.overrun.eq(overrun), self.done.eq(~self.start & (amax_done | convert_done))]
        return m

