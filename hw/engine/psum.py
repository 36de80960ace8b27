"""The engine's partial-sum buffer: integer rows of C kept between the K segments of one GEMM."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PartialSumBuffer"]


class PartialSumBuffer(wiring.Component):
    """Rows of ``lanes`` accumulators from the array in; the same rows, plus a stored partial
    sum, out to the converter or back into the buffer.

    A GEMM whose K does not fit one operand-buffer line runs as one GEMM command per K segment
    (docs/engine.md, "Split K"). The array computes each segment's integer results from zero;
    this unit adds them up in the integer domain, so the split stays bit-exact
    (``model.arith.split_k_matmul``): row ``r`` of a command (the r-th row the array sends)
    lives at address ``r``, and per row

    - ``add`` (every segment but the first): ``sum = sat(row + mem[r])`` at ``acc_bits``,
      otherwise ``sum = row``;
    - ``store`` (every segment but the last): ``mem[r] = sum`` and nothing leaves on ``o``;
      otherwise ``sum`` leaves on ``o``.

    ``add = store = 0`` is the one-segment GEMM: the row passes through, one register later.
    ``start`` (the cycle a GEMM command is taken) resets the row address; ``add`` and
    ``store`` must be stable from ``start`` to the command's last row. A row whose address is
    past ``depth`` is neither read nor written (``refused`` pulses; the host-side
    ``EngineConfig.check_gemm`` raises before that), and a saturating add pulses ``overflow``.

    Latency: one register stage (``LATENCY``); the synchronous read of ``mem[r]`` is issued in
    the cycle row ``r`` is taken, so the sum is formed in the stage's cycle. Full rate; the
    stage holds while ``o`` is not ready. ``stored`` pulses for every row taken with ``store``
    (written back, or refused past ``depth``), so the engine can count a storing command's rows.
    No row may be offered in the ``start`` cycle (it is dropped; the engine's array has none then).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(acc_bits), lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(acc_bits), lanes)))
    start, add, store : In(1)
    stored, overflow, refused : Out(1)
    """

    LATENCY = 1

    def __init__(self, acc_bits: int, lanes: int, depth: int):
        for name, value, low, high in (("acc_bits", acc_bits, 2, 63), ("lanes", lanes, 1, 64),
                                       ("depth", depth, 1, 1 << 20)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        self._acc_bits, self._lanes, self._depth = acc_bits, lanes, depth
        row = data.ArrayLayout(signed(acc_bits), lanes)
        super().__init__({
            "i": In(stream.Signature(row)),
            "o": Out(stream.Signature(row)),
            "start": In(1), "add": In(1), "store": In(1),
            "stored": Out(1), "overflow": Out(1), "refused": Out(1),
        })

    depth = property(lambda self: self._depth)
    acc_bits = property(lambda self: self._acc_bits)

    @property
    def bits(self) -> int:
        """Bits of the buffer (``depth`` rows of ``lanes`` accumulators)."""
        return self._depth * self._lanes * self._acc_bits

    def elaborate(self, platform):
        m = Module()
        A, C = self._acc_bits, self._lanes
        lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
        m.submodules.mem = mem = Memory(shape=unsigned(A * C), depth=self._depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()

        addr = Signal(range(self._depth + 2))     # the next row's address; + 2: one past depth
        s_valid, s_addr = Signal(), Signal.like(addr)
        s_row = Signal(data.ArrayLayout(signed(A), C))
        in_range = s_addr < self._depth
        advance = ~s_valid | self.store | self.o.ready
        m.d.comb += [self.i.ready.eq(advance), rd.en.eq(advance),
                     rd.addr.eq(addr[:max(1, (self._depth - 1).bit_length())])]
        with m.If(self.start):
            m.d.sync += [addr.eq(0), s_valid.eq(0)]
        with m.Elif(advance):
            m.d.sync += [s_valid.eq(self.i.valid), s_row.eq(self.i.payload), s_addr.eq(addr)]
            with m.If(self.i.valid & (addr <= self._depth)):
                m.d.sync += addr.eq(addr + 1)

        # the stage: sum = sat(row + stored) (stored = 0 unless add, or past the buffer)
        total = Signal(data.ArrayLayout(signed(A), C))
        saturated = Signal(C)
        for j in range(C):
            stored = Mux(self.add & in_range, rd.data[j * A:(j + 1) * A].as_signed(), 0)
            wide = Signal(signed(A + 1))
            m.d.comb += [
                wide.eq(s_row[j] + stored),
                saturated[j].eq((wide > hi) | (wide < lo)),
                total[j].eq(Mux(wide > hi, hi, Mux(wide < lo, lo, wide))),
            ]
        taken = s_valid & (self.store | self.o.ready)
        m.d.comb += [
            self.o.valid.eq(s_valid & ~self.store),
            self.o.payload.eq(total),
            wr.addr.eq(s_addr[:max(1, (self._depth - 1).bit_length())]),
            wr.data.eq(total.as_value()),
            wr.en.eq(s_valid & self.store & in_range),
            self.stored.eq(s_valid & self.store),
            self.overflow.eq(taken & saturated.any()),
            self.refused.eq(taken & ~in_range & (self.add | self.store)),
        ]
        return m
