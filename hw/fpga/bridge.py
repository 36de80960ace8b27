"""Host bridge: lets a byte stream (the UART) load a design's input streams, set its control
inputs, start it, and read its output streams, status outputs and cycle counters.

The bridge wraps ANY ``wiring.Component``: its port table comes from the component's signature
(``port_table``), so the MLS array, a baseline array or a test design all get the same wrapper.
The command set is in ``hw.fpga.protocol``.
"""

from __future__ import annotations

import itertools
import operator

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import COUNTER_BYTES, FLAG_BITS, MAGIC, Op, PortInfo, PortKind, word_bytes
from .register_slice import RegisterSlice

__all__ = ["HostBridge", "port_table"]


def _walk(signature, obj, prefix):
    """Yield (name, kind, width, interface-or-value) for every host-visible port."""
    for name, member in signature.members.items():
        path = prefix + (name,)
        value = getattr(obj, name)
        indices = list(itertools.product(*(range(d) for d in member.dimensions)))
        for index in indices:
            item = value
            for i in index:
                item = item[i]
            full = "__".join(str(p) for p in path + index)
            if member.is_signature and isinstance(member.signature, stream.Signature):
                width = Shape.cast(member.signature.members["payload"].shape).width
                kind = PortKind.IN_STREAM if member.flow == In else PortKind.OUT_STREAM
                yield full, kind, width, item
            elif member.is_signature:
                yield from _walk(member.signature, item, path + index)
            else:
                width = Shape.cast(member.shape).width
                kind = PortKind.IN_REG if member.flow == In else PortKind.OUT_REG
                yield full, kind, width, item


def port_table(component: wiring.Component) -> list[PortInfo]:
    """The host-visible ports of ``component`` in protocol order (signature order)."""
    return [PortInfo(i, name, kind, width)
            for i, (name, kind, width, _) in enumerate(_walk(component.signature, component, ()))
            if True]


class HostBridge(wiring.Component):
    """Byte-stream command interpreter around one design (``dut``).

    Parameters
    ----------
    dut : wiring.Component
        The wrapped design; becomes a submodule named ``dut``.
    in_depth, out_depth : int
        FIFO depth (words) of every input and every output stream port. Inputs are loaded
        before 'G', so ``in_depth`` bounds the tile the host can stream at full rate.

    Members
    -------
    rx : In(stream.Signature(8))
        Command bytes.
    tx : Out(stream.Signature(8))
        Reply bytes.
    ext_flags : In(2)
        UART overrun and framing flags, reported by the 'C' command.
    running : Out(1)
        High between 'G' and 'H' (drives an LED on a board).
    """

    def __init__(self, dut: wiring.Component, *, in_depth: int = 64, out_depth: int = 64):
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"HostBridge wraps a wiring.Component, not {dut!r}")
        in_depth, out_depth = operator.index(in_depth), operator.index(out_depth)
        for name, depth in (("in_depth", in_depth), ("out_depth", out_depth)):
            if not 1 <= depth <= 65535:
                raise ValueError(f"{name} must be between 1 and 65535 words, not {depth}")
        self.dut = dut
        self.in_depth, self.out_depth = in_depth, out_depth
        self._ports = list(_walk(dut.signature, dut, ()))
        if not self._ports:
            raise ValueError(f"{dut!r} has no ports to bridge")
        if len(self._ports) > 255:
            raise ValueError(f"the host protocol addresses at most 255 ports, {dut!r} has {len(self._ports)}")
        self.ports = [PortInfo(i, name, kind, width) for i, (name, kind, width, _) in enumerate(self._ports)]
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "ext_flags": In(2),
            "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        nports = len(self.ports)
        reply_bytes = max(max(p.nbytes for p in self.ports), 3 * COUNTER_BYTES + 1, len(MAGIC) + 1)
        shreg = Signal(8 * reply_bytes)
        count = Signal(range(reply_bytes + 1))
        nbytes = Signal(range(reply_bytes + 1))   # bytes of the current data phase
        op = Signal(8)
        port = Signal(8)
        running = Signal()
        cycles = Signal(8 * COUNTER_BYTES)
        last_out = Signal(8 * COUNTER_BYTES)
        flags = {name: Signal(name=f"flag_{name}") for name in FLAG_BITS}
        m.d.comb += self.running.eq(running)
        m.d.sync += [flags["uart_overrun"].eq(self.ext_flags[0]), flags["uart_framing"].eq(self.ext_flags[1])]

        commit = Signal()   # one cycle: the assembled word goes to `port`
        load = Signal()     # one cycle: `port`'s word goes into shreg for sending
        out_transfer, in_transfer = [], []
        first_in = Signal(8 * COUNTER_BYTES)
        seen_in = Signal()

        # Per-port hardware and the muxes of commit/load.
        loaders = {}
        for info, (_, kind, width, item) in zip(self.ports, self._ports):
            if kind is PortKind.IN_STREAM:
                q = fifo.SyncFIFOBuffered(width=width, depth=self.in_depth)
                m.submodules[f"in_fifo_{info.index}"] = q
                m.d.comb += [q.w_data.eq(shreg[:width]), q.w_en.eq(commit & (port == info.index))]
                with m.If(commit & (port == info.index) & ~q.w_rdy):
                    m.d.sync += flags["drop"].eq(1)
                # A register slice between FIFO and design: the block RAM's slow clock-to-out
                # must not add to the design's first stage (Fmax is the design's, not the wrapper's).
                m.submodules[f"in_slice_{info.index}"] = sl = RegisterSlice(width)
                m.d.comb += [sl.i.valid.eq(q.r_rdy & running), sl.i.payload.eq(q.r_data),
                             q.r_en.eq(sl.i.ready & running)]
                if not isinstance(item.valid, Const):
                    m.d.comb += item.valid.eq(sl.o.valid)
                m.d.comb += [item.payload.eq(sl.o.payload), sl.o.ready.eq(item.ready)]
                in_transfer.append(sl.o.valid & item.ready)
                loaders[info.index] = (Const(0, 1), q.r_level)
            elif kind is PortKind.OUT_STREAM:
                q = fifo.SyncFIFOBuffered(width=width, depth=self.out_depth)
                m.submodules[f"out_fifo_{info.index}"] = q
                m.d.comb += [q.w_data.eq(Value.cast(item.payload)), q.w_en.eq(item.valid)]
                if isinstance(item.ready, Const):
                    with m.If(item.valid & ~q.w_rdy):
                        m.d.sync += flags["out_overflow"].eq(1)
                else:
                    m.d.comb += item.ready.eq(q.w_rdy)
                out_transfer.append(item.valid & q.w_rdy)
                m.d.comb += q.r_en.eq(load & (port == info.index) & (op == Op.READ))
                loaders[info.index] = (Mux(q.r_rdy, q.r_data, 0), q.r_level)
            elif kind is PortKind.IN_REG:
                level = Signal(width, name=f"level_{info.index}")
                strobe = Signal(width, name=f"strobe_{info.index}")
                strobe_en = Signal(name=f"strobe_en_{info.index}")
                m.d.sync += strobe_en.eq(0)
                with m.If(commit & (port == info.index)):
                    with m.If(op == Op.WRITE):
                        m.d.sync += level.eq(shreg[:width])
                    with m.Else():
                        m.d.sync += [strobe.eq(shreg[:width]), strobe_en.eq(1)]
                m.d.comb += item.eq(Mux(strobe_en, strobe, level))
                loaders[info.index] = (level, Const(0, 16))
            else:
                loaders[info.index] = (Value.cast(item), Const(0, 16))

        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(Cat(*out_transfer).any() if out_transfer else Const(0)):
                m.d.sync += last_out.eq(cycles)
            with m.If((Cat(*in_transfer).any() if in_transfer else Const(0)) & ~seen_in):
                m.d.sync += [first_in.eq(cycles), seen_in.eq(1)]

        port_bytes = Signal.like(nbytes)
        with m.Switch(port):
            for info in self.ports:
                with m.Case(info.index):
                    m.d.comb += port_bytes.eq(info.nbytes)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [op.eq(self.rx.payload), count.eq(0)]
                    with m.Switch(self.rx.payload):
                        with m.Case(Op.WRITE, Op.PULSE, Op.READ, Op.LEVEL):
                            m.next = "PORT"
                        with m.Case(Op.GO):
                            m.d.sync += [running.eq(1), cycles.eq(0), last_out.eq(0), first_in.eq(0), seen_in.eq(0)]
                        with m.Case(Op.HALT):
                            m.d.sync += running.eq(0)
                        with m.Case(Op.COUNTERS):
                            m.d.sync += [shreg.eq(Cat(cycles, first_in, last_out, *flags.values())),
                                         nbytes.eq(3 * COUNTER_BYTES + 1)]
                            m.next = "SEND"
                        with m.Case(Op.IDENTIFY):
                            m.d.sync += [shreg.eq(Cat(*(Const(b, 8) for b in MAGIC), Const(nports, 8))),
                                         nbytes.eq(len(MAGIC) + 1)]
                            m.next = "SEND"
            with m.State("PORT"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += port.eq(self.rx.payload)
                    with m.If(self.rx.payload >= nports):
                        m.d.sync += flags["bad_port"].eq(1)
                        m.next = "IDLE"
                    with m.Elif((op == Op.WRITE) | (op == Op.PULSE)):
                        m.next = "DATA"
                    with m.Else():
                        m.next = "LOAD"
            with m.State("DATA"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [shreg.word_select(count, 8).eq(self.rx.payload), count.eq(count + 1)]
                    with m.If(count + 1 == port_bytes):
                        m.next = "COMMIT"
            with m.State("COMMIT"):
                m.d.comb += commit.eq(1)
                m.next = "IDLE"
            with m.State("LOAD"):
                m.d.comb += load.eq(1)
                with m.Switch(port):
                    for index, (word, level) in loaders.items():
                        with m.Case(index):
                            m.d.sync += shreg.eq(Mux(op == Op.READ, word, level))
                m.d.sync += [nbytes.eq(Mux(op == Op.READ, port_bytes, 2)), count.eq(0)]
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(shreg.word_select(count, 8))]
                with m.If(self.tx.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == nbytes):
                        m.next = "IDLE"
        return m
