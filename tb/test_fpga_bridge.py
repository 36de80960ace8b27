# amaranth: UnusedElaboratable=no
"""Board wrapper RTL in the Amaranth simulator: host bridge protocol and UART, no toolchain."""

from __future__ import annotations

import random

import pytest
from amaranth import Fragment, Module

from hw.fpga.bridge import HostBridge
from hw.fpga.demo import DotDemo
from hw.fpga.host import (decode_counters, decode_word, encode_level, encode_pulse, encode_read,
                          encode_simple, encode_write)
from hw.fpga.protocol import COUNTERS_REPLY, MAGIC, Op
from hw.fpga.simhost import SimHost, run_sim
from hw.fpga.uart_rx import UARTRx
from hw.fpga.uart_tx import UARTTx


_Host, _run = SimHost, run_sim


def _demo(*args):
    """A DotDemo only inspected, not simulated: elaborate it so Amaranth does not warn it unused."""
    demo = DotDemo(*args)
    Fragment.get(demo, None)
    return demo


def _twos(v, bits):
    return v & ((1 << bits) - 1)


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def test_constructor_errors():
    with pytest.raises(TypeError, match=r"^HostBridge wraps a wiring.Component, not 3$"):
        HostBridge(3)
    with pytest.raises(ValueError, match=r"^in_depth must be between 1 and 65535 words, not 0$"):
        HostBridge(_demo(), in_depth=0)
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 4 clock cycles per bit, not 3$"):
        UARTRx(3)
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 4 clock cycles per bit, not 2$"):
        UARTTx(2)
    with pytest.raises(ValueError, match=r"^DotDemo acc_width must be at least 2 \* width = 16, not 10$"):
        DotDemo(8, 10)


@pytest.mark.parametrize("seed", [1, 2])
def test_bridge_loads_runs_and_reads_back(seed):
    rng = random.Random(seed)
    demo = DotDemo(8, 24)
    depth = 16
    bridge = HostBridge(demo, in_depth=depth, out_depth=depth)
    p = {q.name: q for q in bridge.ports}
    n = rng.randint(5, depth)
    pairs = [(rng.randint(-128, 127), rng.randint(-128, 127)) for _ in range(n)]
    sums, acc = [], 0
    for x, y in pairs:
        acc += x * y
        sums.append(acc)

    async def bench(ctx):
        h = _Host(ctx, bridge)
        await h.send(encode_simple(Op.IDENTIFY))
        assert await h.recv(4) == MAGIC + bytes([4])
        # Garbage accumulated before the tile: the clear strobe must wipe it.
        await h.send(encode_write(p["i"], _twos(7, 8) | _twos(9, 8) << 8))
        await h.send(encode_simple(Op.GO))
        await ctx.tick().repeat(5)
        await h.send(encode_level(p["o"]))
        assert int.from_bytes(await h.recv(2), "little") == 1
        await h.send(encode_read(p["o"]))
        assert _signed(decode_word(p["o"], await h.recv(3)), 24) == 63
        await h.send(encode_simple(Op.HALT))
        await h.send(encode_pulse(p["clear"], 1))
        await h.send(encode_read(p["count"]))
        assert decode_word(p["count"], await h.recv(2)) == 0
        for x, y in pairs:
            await h.send(encode_write(p["i"], _twos(x, 8) | _twos(y, 8) << 8))
        await h.send(encode_level(p["i"]))
        assert int.from_bytes(await h.recv(2), "little") == n   # held until 'G'
        await h.send(encode_level(p["o"]))
        assert int.from_bytes(await h.recv(2), "little") == 0
        await h.send(encode_simple(Op.GO))
        levels = []
        for _ in range(4):   # poll, as a host would: one sum per cycle, a few commands' time
            await h.send(encode_level(p["o"]))
            levels.append(int.from_bytes(await h.recv(2), "little"))
        assert levels[-1] == n and levels == sorted(levels)
        await h.send(encode_simple(Op.COUNTERS))
        c = decode_counters(await h.recv(COUNTERS_REPLY))
        assert c.flags == frozenset()
        # One pair per cycle through the register slice: the last sum leaves `latency` after the last pair.
        assert c.span == n + demo.latency and c.first_in >= 1 and c.last_out < c.cycles
        got = []
        for _ in range(n):
            await h.send(encode_read(p["o"]))
            got.append(_signed(decode_word(p["o"], await h.recv(3)), 24))
        assert got == sums
        await h.send(encode_read(p["count"]))
        assert decode_word(p["count"], await h.recv(2)) == n
        # A clear level held high: pairs are consumed but not accumulated.
        await h.send(encode_write(p["clear"], 1))
        await h.send(encode_read(p["clear"]))
        assert await h.recv(1) == b"\x01"
        await h.send(encode_simple(Op.COUNTERS))
        assert decode_counters(await h.recv(COUNTERS_REPLY)).flags == frozenset()

    _run(bridge, bench)


def test_bridge_flags_drop_and_bad_port():
    bridge = HostBridge(DotDemo(), in_depth=2, out_depth=2)
    p = {q.name: q for q in bridge.ports}

    async def bench(ctx):
        h = _Host(ctx, bridge)
        for v in range(3):   # the third word does not fit the halted 2-deep FIFO
            await h.send(encode_write(p["i"], v))
        await h.send(encode_simple(Op.COUNTERS))
        assert decode_counters(await h.recv(COUNTERS_REPLY)).flags == frozenset({"drop"})
        await h.send(bytes([Op.READ, 9]))
        await h.send(encode_simple(Op.COUNTERS))
        assert decode_counters(await h.recv(COUNTERS_REPLY)).flags == frozenset({"drop", "bad_port"})
        # Output FIFO full (2 deep) with 3 inputs: the design is stalled, not overflowed.
        await h.send(encode_simple(Op.GO))
        await ctx.tick().repeat(10)
        await h.send(encode_level(p["o"]))
        assert int.from_bytes(await h.recv(2), "little") == 2
        await h.send(encode_simple(Op.COUNTERS))
        assert decode_counters(await h.recv(COUNTERS_REPLY)).flags == frozenset({"drop", "bad_port"})

    _run(bridge, bench)


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback_and_frame(divisor):
    rng = random.Random(divisor)
    data = bytes(rng.randrange(256) for _ in range(12)) + b"\x00\xff"
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)

    async def sender(ctx):
        for i, byte in enumerate(data):
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            if i == 0:  # check the first frame's line bit by bit: start, 8 data LSB first, stop
                bits = [0] + [byte >> k & 1 for k in range(8)] + [1]
                for b in bits:
                    for _ in range(divisor):
                        assert ctx.get(tx.tx) == b
                        await ctx.tick()

    got = []

    async def receiver(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            payload, = await ctx.tick().sample(rx.o.payload).until(rx.o.valid)
            got.append(payload)
        assert ctx.get(rx.overrun) == 0 and ctx.get(rx.framing) == 0

    _run(m, sender, receiver, limit=len(data) * 12 * divisor)
    assert bytes(got) == data


def test_uart_rx_framing_error():
    divisor = 4
    rx = UARTRx(divisor)

    async def bench(ctx):
        ctx.set(rx.o.ready, 1)
        for b in [0] + [1, 0, 1, 0, 1, 0, 1, 0] + [0] + [1] * 4:   # stop bit low
            ctx.set(rx.rx, b)
            await ctx.tick().repeat(divisor)
        await ctx.tick().repeat(4 * divisor)
        assert ctx.get(rx.framing) == 1

    _run(rx, bench)


class _SerialHost:
    """Bit-level host on the serial lines of a UARTBridge (8N1, `divisor` cycles per bit)."""

    def __init__(self, ctx, core, divisor):
        self.ctx, self.core, self.div = ctx, core, divisor

    async def send(self, data: bytes):
        for byte in data:
            for bit in [0] + [byte >> k & 1 for k in range(8)] + [1]:
                self.ctx.set(self.core.rx, bit)
                await self.ctx.tick().repeat(self.div)

    async def recv(self, n: int) -> bytes:
        out = []
        for _ in range(n):
            await self.ctx.tick().until(self.core.tx == 0)          # start bit
            await self.ctx.tick().repeat(self.div + self.div // 2)  # middle of bit 0
            byte = 0
            for k in range(8):
                byte |= self.ctx.get(self.core.tx) << k
                await self.ctx.tick().repeat(self.div)
            assert self.ctx.get(self.core.tx) == 1                  # stop bit
            out.append(byte)
        return bytes(out)


def test_uart_bridge_end_to_end():
    from hw.fpga.uart_bridge import UARTBridge
    divisor = 4
    core = UARTBridge(DotDemo(8, 24), divisor=divisor, in_depth=8, out_depth=8)
    p = {q.name: q for q in core.ports}
    pairs = [(-128, -128), (127, -1), (5, 6)]

    async def bench(ctx):
        h = _SerialHost(ctx, core, divisor)
        await h.send(encode_simple(Op.IDENTIFY))
        assert await h.recv(4) == MAGIC + bytes([4])
        for x, y in pairs:
            await h.send(encode_write(p["i"], _twos(x, 8) | _twos(y, 8) << 8))
        await h.send(encode_simple(Op.GO))
        await ctx.tick().repeat(divisor)   # the receiver takes the byte in the middle of the stop bit
        assert ctx.get(core.running) == 1
        got = []
        for _ in pairs:
            await h.send(encode_read(p["o"]))
            got.append(_signed(decode_word(p["o"], await h.recv(3)), 24))
        assert got == [16384, 16384 - 127, 16384 - 127 + 30]
        await h.send(encode_simple(Op.COUNTERS))
        assert decode_counters(await h.recv(COUNTERS_REPLY)).flags == frozenset()

    _run(core, bench)


@pytest.mark.parametrize("host_period", [24, 26])
def test_uart_rx_tolerates_baud_mismatch(host_period):
    """A host 4% fast or slow still decodes: the receiver samples mid-bit, not at the edges."""
    divisor = 25
    rx = UARTRx(divisor)
    data = b"\x80\x01\xa5\x5a"
    got = []

    async def sender(ctx):
        for byte in data:
            for bit in [0] + [byte >> k & 1 for k in range(8)] + [1]:
                ctx.set(rx.rx, bit)
                await ctx.tick().repeat(host_period)

    async def receiver(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            payload, = await ctx.tick().sample(rx.o.payload).until(rx.o.valid)
            got.append(payload)
        assert ctx.get(rx.framing) == 0

    _run(rx, sender, receiver, limit=len(data) * 12 * host_period)
    assert bytes(got) == data


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.6, 0.5)])
def test_register_slice_order_and_rate(p_valid, p_ready):
    from hw.fpga.register_slice import RegisterSlice
    rng = random.Random(int(p_valid * 10 + p_ready))
    sl = RegisterSlice(8)
    words = [rng.randrange(256) for _ in range(60)]
    got, cycles = [], []

    async def producer(ctx):
        for w in words:
            while rng.random() > p_valid:
                ctx.set(sl.i.valid, 0)
                await ctx.tick()
            ctx.set(sl.i.payload, w)
            ctx.set(sl.i.valid, 1)
            await ctx.tick().until(sl.i.ready)
        ctx.set(sl.i.valid, 0)

    async def consumer(ctx):
        n = 0
        while len(got) < len(words):
            ready = rng.random() <= p_ready
            ctx.set(sl.o.ready, ready)
            valid, payload = ctx.get(sl.o.valid), ctx.get(sl.o.payload)
            await ctx.tick()
            n += 1
            if valid and ready:
                got.append(payload)
                cycles.append(n)

    run_sim(sl, producer, consumer, limit=2000)
    assert got == words
    if p_valid == 1.0 and p_ready == 1.0:   # full rate: one word per cycle after the 1-cycle latency
        assert cycles == list(range(cycles[0], cycles[0] + len(words))) and cycles[0] == 1 + sl.latency
