"""Drive a :class:`~hw.fpga.bridge.HostBridge` from an Amaranth simulator testbench, byte by byte
(the protocol of ``hw.fpga.protocol`` without the UART), and run testbenches with a cycle limit."""

from __future__ import annotations

from typing import NamedTuple

from amaranth.sim import Simulator

from .host import decode_counters, decode_word, encode_level, encode_read, encode_simple, encode_write
from .protocol import COUNTERS_REPLY, Op

__all__ = ["SimHost", "TileReply", "array_tile_round_trip", "run_sim"]


class SimHost:
    """``await send(bytes)`` / ``await recv(n)`` on a bridge's ``rx`` / ``tx`` byte streams."""

    def __init__(self, ctx, bridge):
        self.ctx, self.b = ctx, bridge

    async def send(self, data: bytes):
        for byte in data:
            self.ctx.set(self.b.rx.payload, byte)
            self.ctx.set(self.b.rx.valid, 1)
            await self.ctx.tick().until(self.b.rx.ready)
            self.ctx.set(self.b.rx.valid, 0)

    async def recv(self, n: int) -> bytes:
        out = []
        self.ctx.set(self.b.tx.ready, 1)
        for _ in range(n):
            payload, = await self.ctx.tick().sample(self.b.tx.payload).until(self.b.tx.valid)
            out.append(payload)
        self.ctx.set(self.b.tx.ready, 0)
        return bytes(out)


class TileReply(NamedTuple):
    level: int       # result words waiting in the ``c`` FIFO before the reads
    words: list      # the ``rows`` result words, decoded
    counters: object  # ``hw.fpga.host.decode_counters`` of the COUNTERS reply


async def array_tile_round_trip(host: SimHost, a_words, w_words, *, rows: int, settle_cycles: int) -> TileReply:
    """Load one array tile (``hw.fpga.tiles.array_tile_words``), GO, wait ``settle_cycles``, then read
    the ``c`` FIFO level, ``rows`` result words and the counters, as a board host would."""
    ports = {q.name: q for q in host.b.ports}
    for word in a_words:
        await host.send(encode_write(ports["a"], word))
    for word in w_words:
        await host.send(encode_write(ports["w"], word))
    await host.send(encode_simple(Op.GO))
    await host.ctx.tick().repeat(settle_cycles)
    await host.send(encode_level(ports["c"]))
    level = int.from_bytes(await host.recv(2), "little")
    words = []
    for _ in range(rows):
        await host.send(encode_read(ports["c"]))
        words.append(decode_word(ports["c"], await host.recv(ports["c"].nbytes)))
    await host.send(encode_simple(Op.COUNTERS))
    return TileReply(level, words, decode_counters(await host.recv(COUNTERS_REPLY)))


def run_sim(dut, *benches, limit: int = 100_000) -> None:
    """Run the testbenches to completion; fail (not hang) after about ``limit`` clock cycles."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    steps = 0
    while sim.advance():   # True while a testbench is still running
        steps += 1
        if steps > 4 * limit:   # a few simulator steps per clock cycle
            raise AssertionError(f"testbench did not finish within about {limit} cycles")
