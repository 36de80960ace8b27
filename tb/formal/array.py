"""Proof that ``SystolicArray``'s stream ports keep the ``amaranth.lib.stream`` valid/ready rules.

A small array (2 x 2, format e1m1g1, a 4-bit saturating accumulator: the stream control does not
depend on the size of the numbers) sees free inputs every cycle: ``a``/``w`` valid and payload,
and ``c.ready``. The wrapper counts transfers and asserts:

* ``c`` holds: a beat offered and not taken (valid and not ready) is offered again in the next
  cycle with the same payload (data, overflow flags, last);
* ``a`` and ``w`` are joined: one transfers exactly when the other does;
* no row is invented or duplicated: rows out never exceed ``rows`` times the tiles in (a tile is
  one ``a`` transfer with ``last``), and at most one finished tile's rows are outstanding (the
  next tile accumulates while they drain, but its last beat is taken only together with the
  previous tile's last row);
* rows leave in order: ``c.last`` is set exactly on every ``rows``-th row;
* no row is dropped: after ``drain`` cycles in which ``c`` was always ready and no input beat
  transferred, every tile's rows have left.

This is a bounded proof (BMC from reset, see ``DEPTH``): the control state of a 2 x 2 array is
the tile flags, a row counter, two result-valid bits and a skew pipeline of ``rows + cols +
pe latency`` cycles, and every combination of them is reached within a few tiles; ``DEPTH``
covers three complete tiles with back-pressure (the ``Cover`` statements show them reached).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import Assert, Assume, Cover, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from hw.array import SystolicArray

__all__ = ["ArrayStreamWrapper", "DEPTH", "WRONG_SPECS"]

DEPTH = 20
WRONG_SPECS = ("last_on_row_0",)


class ArrayStreamWrapper(wiring.Component):
    def __init__(self, rows: int = 2, cols: int = 2, fmt: str = "e1m1g1", acc_bits: int = 4,
                 *, wrong_spec: str | None = None):
        if wrong_spec not in (None, *WRONG_SPECS):
            raise ValueError(f"wrong_spec must be None or one of {WRONG_SPECS}, got {wrong_spec!r}")
        self.dut = SystolicArray(fmt, rows, cols, acc_bits=acc_bits, max_k=16)
        self._wrong_spec = wrong_spec
        super().__init__({
            "a_valid": In(1), "a_payload": In(self.dut.a_layout),
            "w_valid": In(1), "w_payload": In(self.dut.w_layout),
            "c_ready": In(1),
        })

    @property
    def drain(self) -> int:
        """Cycles after the last input transfer within which every row has left (ready held)."""
        return self.dut.timing.drain_cycles + 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        R = dut.rows
        m.d.comb += [
            Assume(~ResetSignal()),
            dut.a.valid.eq(self.a_valid), dut.a.payload.eq(self.a_payload),
            dut.w.valid.eq(self.w_valid), dut.w.payload.eq(self.w_payload),
            dut.c.ready.eq(self.c_ready),
        ]
        a_fire = dut.a.valid & dut.a.ready
        w_fire = dut.w.valid & dut.w.ready
        c_fire = dut.c.valid & dut.c.ready

        started = Signal()
        stalled = Signal()                       # last cycle: c valid and not ready
        held = Signal.like(dut.c.payload)        # last cycle's c payload
        m.d.sync += [started.eq(1), stalled.eq(dut.c.valid & ~dut.c.ready), held.eq(dut.c.payload)]

        tiles_in = Signal(8)
        rows_out = Signal(8)
        row_index = Signal(range(R))             # index of the next row to leave
        quiet = Signal(range(self.drain + 1))    # cycles with c ready and no input transfer
        with m.If(a_fire & dut.a.payload.last):
            m.d.sync += tiles_in.eq(tiles_in + 1)
        with m.If(c_fire):
            m.d.sync += [rows_out.eq(rows_out + 1), row_index.eq((row_index + 1) % R if R > 1 else 0)]
        with m.If(a_fire | ~dut.c.ready):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.drain):
            m.d.sync += quiet.eq(quiet + 1)

        outstanding = Signal(range(-256, 257 * R))
        m.d.comb += outstanding.eq(tiles_in * R - rows_out)
        with m.If(started & stalled):
            m.d.comb += [
                Assert(dut.c.valid, "c.valid stays high until the beat is taken"),
                Assert(dut.c.payload.as_value() == held.as_value(), "c.payload is stable while not taken"),
            ]
        m.d.comb += [
            Assert(a_fire == w_fire, "a and w transfer together"),
            Assert(outstanding >= 0, "no row without its tile (nothing invented or duplicated)"),
            Assert(outstanding <= R, "at most one finished tile outstanding"),
            Assert(~dut.c.valid | (dut.c.payload.last == (row_index == (0 if self._wrong_spec == "last_on_row_0" else R - 1))),
                   "c.last on every rows-th row"),
        ]
        with m.If(quiet == self.drain):
            m.d.comb += Assert(outstanding == 0, "every row of every tile leaves (nothing dropped)")
        m.d.comb += [
            Cover((rows_out == 3 * R) & (tiles_in == 3)),
            Cover(stalled & dut.c.valid & (outstanding == R) & (tiles_in == 2)),
        ]
        return m
