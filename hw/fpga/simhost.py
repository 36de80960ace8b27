"""Drive a :class:`~hw.fpga.bridge.HostBridge` from an Amaranth simulator testbench, byte by byte
(the protocol of ``hw.fpga.protocol`` without the UART), and run testbenches with a cycle limit."""

from __future__ import annotations

from amaranth.sim import Simulator

__all__ = ["SimHost", "run_sim"]


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
