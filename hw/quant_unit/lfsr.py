"""Per-lane LFSRs for stochastic rounding, bit-identical to ``model.lfsr``."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from model.lfsr import LANE_SEED_MULTIPLIER, LFSR_TAPS, LFSR_WIDTH, lane_seed

__all__ = ["LaneLFSR"]


class LaneLFSR(wiring.Component):
    """``lanes`` 32-bit Fibonacci LFSRs (polynomial and seeding in ``model/lfsr.py``).

    ``bits[lane]`` is the lane's next draw: the low R bits of its state after R more steps.
    ``advance`` commits that draw (state <- state after R steps); ``load`` (priority) reseeds every
    lane from ``seed``. The R steps are one unrolled XOR network, so one draw per cycle.

    Members
    -------
    seed : In(32)
    load, advance : In(1)
    bits : Out(ArrayLayout(R, lanes))
    """

    def __init__(self, lanes: int, sr_bits: int):
        if not 1 <= lanes <= 64:
            raise ValueError(f"lanes must be in [1, 64], got {lanes}")
        if not 1 <= sr_bits < LFSR_WIDTH:
            raise ValueError(f"sr_bits must be in [1, {LFSR_WIDTH - 1}], got {sr_bits}")
        self._lanes, self._sr_bits = lanes, sr_bits
        super().__init__({
            "seed": In(LFSR_WIDTH),
            "load": In(1),
            "advance": In(1),
            "bits": Out(data.ArrayLayout(sr_bits, lanes)),
        })

    @staticmethod
    def _step(state: list) -> list:
        feedback = state[LFSR_TAPS[0] - 1]
        for tap in LFSR_TAPS[1:]:
            feedback = feedback ^ state[tap - 1]
        return [feedback] + state[:-1]  # bit 0 is the new bit

    def elaborate(self, platform):
        m = Module()
        mask = (1 << LFSR_WIDTH) - 1
        for lane in range(self._lanes):
            state = Signal(LFSR_WIDTH, name=f"state{lane}", init=lane_seed(0, lane))  # seed 0 after reset
            bits = [state[i] for i in range(LFSR_WIDTH)]
            for step in range(self._sr_bits):
                bits = self._step(bits)
                fresh = Signal(name=f"fb{lane}_{step}")  # share each feedback bit, no tree blow-up
                m.d.comb += fresh.eq(bits[0])
                bits[0] = fresh
            nxt = Cat(*bits)
            m.d.comb += self.bits[lane].eq(nxt[: self._sr_bits])
            seeded = Signal(LFSR_WIDTH, name=f"seeded{lane}")
            m.d.comb += seeded.eq(self.seed ^ ((LANE_SEED_MULTIPLIER * (lane + 1)) & mask))
            with m.If(self.load):
                m.d.sync += state.eq(Mux(seeded == 0, 1, seeded))
            with m.Elif(self.advance):
                m.d.sync += state.eq(nxt)
        return m
