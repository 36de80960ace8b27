"""Convert pass: FP32 stream -> element codes and group exponents, with a ping-pong group buffer."""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from model.floats import FP32

from ..baseline.layout import float_layout
from .config import QuantUnitConfig
from .element_round import ElementRounder
from .fp32_mul import FP32ScaleMul
from .group_exp import GroupExponent
from .lfsr import LaneLFSR
from .signature import QuantSignature

__all__ = ["ConvertPass"]


class ConvertPass(wiring.Component):
    """docs/numerics.md §2 steps 3-5 over a stream whose groups are ``group_len`` consecutive elements.

    Write side: each input word is multiplied by ``inv`` (``FP32ScaleMul`` per lane), written to
    one bank of a two-bank buffer, and folded into the group's running max|y|. After the group's
    last word the ``GroupExponent`` of that max is latched with the bank. Read side: the other bank
    is read one word per cycle, rounded per lane (``ElementRounder``) with the bank's g and this
    word's LFSR draw, and sent on ``o``; the bank's g goes out on ``g``. A bank is refilled only
    after both its codes and its g were sent, so back-pressure on either output stalls the input
    and never drops or repeats an element. Steady state: ``lanes`` elements per cycle.

    ``start`` (a one-cycle strobe, only between tensors) empties the buffer, clears ``invalid``
    and reseeds the LFSRs from ``seed``. ``inv`` and ``stochastic`` must be stable during a tensor.

    Members
    -------
    ``QuantSignature(config, amax_pass=False)`` (``hw/quant_unit/signature.py``, shared with
    ``QuantUnit``):
    i : In(stream.Signature(ArrayLayout(32, lanes)))
        FP32 elements, lane k of word w is element ``w * lanes + k`` of the flattened tensor.
    o : Out(stream.Signature(ArrayLayout(1 + E + M, lanes)))
        Codes ``s << (E+M) | e << M | m``; consecutive payloads concatenated LSB-first are the
        element stream of ``MLSTensor.pack()``.
    g : Out(stream.Signature(G))
        One group exponent per group, in order (the group stream of ``MLSTensor.pack()``).
    start, stochastic : In(1)
    inv, seed : In(32)
    invalid : Out(1)
        Sticky: an input was NaN/Inf or a product overflowed (wrong ``inv``).
    """

    def __init__(self, config: QuantUnitConfig):
        self._config = config
        super().__init__(QuantSignature(config, amax_pass=False))

    @property
    def config(self) -> QuantUnitConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from a group's first input transfer to its first code word (and g) being valid,
        with no stalls: the group is buffered whole (``group_len / lanes`` words), plus 1."""
        return self.latency_for(self._config)

    @staticmethod
    def latency_for(config: QuantUnitConfig) -> int:
        return config.words_per_group + 1

    @property
    def throughput(self) -> int:
        """Elements per cycle at steady state (input and output each one word per cycle)."""
        return self._config.lanes

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        fmt, lanes, words = cfg.fmt, cfg.lanes, cfg.words_per_group

        word_bits, mag_bits = FP32.bits, FP32.bits - 1   # an FP32 word; its |y| (exponent and mantissa)
        m.submodules.mem = mem = Memory(shape=unsigned(word_bits * lanes), depth=2 * words, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")
        m.submodules.gexp = gexp = GroupExponent(fmt)
        m.submodules.lfsr = lfsr = LaneLFSR(lanes, cfg.sr_bits)

        full = [Signal(name="full0"), Signal(name="full1")]  # bank holds codes not yet sent
        gpend = [Signal(name="gpend0"), Signal(name="gpend1")]  # bank's g not yet sent
        g_bank = [Signal(fmt.group_bits, name="g_bank0"), Signal(fmt.group_bits, name="g_bank1")]

        # -- write side ------------------------------------------------------------------
        wb = Signal()
        wa = Signal(range(words))
        gmax_run = Signal(mag_bits)
        ys, mags, bad = [], [], []
        for lane in range(lanes):
            mul = FP32ScaleMul()
            m.submodules[f"mul{lane}"] = mul
            m.d.comb += [mul.x.eq(self.i.payload[lane]), mul.inv.eq(self.inv)]
            ys.append(mul.y)
            y = float_layout(FP32)(mul.y)
            mags.append(Cat(y.man, y.exp))
            bad.append(mul.invalid)
        level = mags
        while len(level) > 1:
            nxt = []
            for a, b in zip(level[0::2], level[1::2]):
                mx = Signal(mag_bits)
                m.d.comb += mx.eq(Mux(a > b, a, b))
                nxt.append(mx)
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        word_max = level[0]
        new_max = Signal(mag_bits)
        m.d.comb += new_max.eq(Mux((wa == 0) | (word_max > gmax_run), word_max, gmax_run))
        m.d.comb += gexp.gmax.eq(new_max)

        m.d.comb += self.i.ready.eq(Mux(wb, ~full[1] & ~gpend[1], ~full[0] & ~gpend[0]))
        w_xfer = self.i.valid & self.i.ready
        w_done = Signal()
        m.d.comb += [
            wp.addr.eq(Mux(wb, words, 0) + wa),
            wp.data.eq(Cat(*ys)),
            wp.en.eq(w_xfer),
            w_done.eq(w_xfer & (wa == words - 1)),
        ]
        with m.If(w_xfer):
            m.d.sync += gmax_run.eq(new_max)
            with m.If(wa == words - 1):
                m.d.sync += [wa.eq(0), wb.eq(~wb)]
            with m.Else():
                m.d.sync += wa.eq(wa + 1)
            for b in bad:
                with m.If(b):
                    m.d.sync += self.invalid.eq(1)

        # -- read side: codes --------------------------------------------------------------
        rb = Signal()
        ra = Signal(range(words))
        m.d.comb += rp.addr.eq(Mux(rb, words, 0) + ra)
        g_read = Mux(rb, g_bank[1], g_bank[0])
        codes = []
        for lane in range(lanes):
            rnd = ElementRounder(fmt, cfg.sr_bits)
            m.submodules[f"round{lane}"] = rnd
            m.d.comb += [
                rnd.y.eq(rp.data[word_bits * lane: word_bits * (lane + 1)]),
                rnd.g.eq(g_read),
                rnd.stochastic.eq(self.stochastic),
                rnd.r.eq(lfsr.bits[lane]),
            ]
            codes.append(rnd.code)
        r_load = Signal()
        r_done = Signal()
        m.d.comb += [
            r_load.eq(Mux(rb, full[1], full[0]) & (~self.o.valid | self.o.ready)),
            r_done.eq(r_load & (ra == words - 1)),
            lfsr.advance.eq(r_load),
        ]
        with m.If(r_load):
            m.d.sync += [self.o.payload.eq(Cat(*codes)), self.o.valid.eq(1)]
            with m.If(ra == words - 1):
                m.d.sync += [ra.eq(0), rb.eq(~rb)]
            with m.Else():
                m.d.sync += ra.eq(ra + 1)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # -- read side: group exponents ------------------------------------------------------
        gp = Signal()
        g_load = Signal()
        m.d.comb += g_load.eq(Mux(gp, gpend[1], gpend[0]) & (~self.g.valid | self.g.ready))
        with m.If(g_load):
            m.d.sync += [self.g.payload.eq(Mux(gp, g_bank[1], g_bank[0])), self.g.valid.eq(1), gp.eq(~gp)]
        with m.Elif(self.g.ready):
            m.d.sync += self.g.valid.eq(0)

        # -- bank flags ----------------------------------------------------------------------
        for bank in (0, 1):
            with m.If(w_done & (wb == bank)):
                m.d.sync += [full[bank].eq(1), gpend[bank].eq(1), g_bank[bank].eq(gexp.g)]
            with m.Else():
                with m.If(r_done & (rb == bank)):
                    m.d.sync += full[bank].eq(0)
                with m.If(g_load & (gp == bank)):
                    m.d.sync += gpend[bank].eq(0)

        # -- start of a tensor ---------------------------------------------------------------
        m.d.comb += [lfsr.seed.eq(self.seed), lfsr.load.eq(self.start)]
        with m.If(self.start):
            m.d.sync += [
                wb.eq(0), wa.eq(0), rb.eq(0), ra.eq(0), gp.eq(0),
                self.o.valid.eq(0), self.g.valid.eq(0), self.invalid.eq(0),
                *(f.eq(0) for f in full), *(p.eq(0) for p in gpend),
            ]
        return m
