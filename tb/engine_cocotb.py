"""cocotb tests for the engine (see test_engine.py): whole GEMMs FP32 -> FP32, flags, stalls, cycles."""

import random

import cocotb
import numpy as np
import torch
from amaranth import Shape
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.engine import EngineConfig, Op, command_layout
from hw.engine.host import gemm_commands, host_scale, operand_words, output_order, segment_seed
from model.fp32 import fp32_bits
from model.quant_stream import reference_amax
from sim.engine import EngineCycles
from tb.harness import tb_params

P = tb_params()
CFG = EngineConfig(**P["config"])
CMD = command_layout(CFG)
DATA = np.load(P["data"])
CYCLES = EngineCycles.of(CFG)
C = CFG.cols


def _cmd(op, m=0, n=0, chunks=0, stochastic=0, psum_add=0, psum_store=0, slot_a=0, slot_w=0):
    word = 0
    fields = [("op", int(op)), ("m", m), ("n", n), ("chunks", chunks), ("stochastic", stochastic),
              ("psum_add", psum_add), ("psum_store", psum_store)]
    if CFG.double_buffer:
        fields += [("slot_a", slot_a), ("slot_w", slot_w)]
    for name, value in fields:
        field = CMD[name]
        assert 0 <= value < (1 << Shape.cast(field.shape).width), f"{name}={value} does not fit the command"
        word |= value << field.offset
    return word


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.a__valid, dut.w__valid, dut.c__ready, dut.start, dut.cmd):
        sig.value = 0
    for sig in (dut.inv, dut.seed, dut.scale_a, dut.scale_w):
        sig.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def run_op(dut, op, *, m=0, n=0, chunks=0, stochastic=0, psum_add=0, psum_store=0, words=None, port=None,
                 inv=0, seed=0, scales=(0, 0), rng=None, p_in=1.0, p_out=1.0, limit=200000):
    """One command: returns (cycles from the start edge to done, C rows received)."""
    dut.cmd.value = _cmd(op, m, n, chunks, stochastic, psum_add, psum_store)
    dut.inv.value, dut.seed.value = inv, seed
    dut.scale_a.value, dut.scale_w.value = scales
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    words = words or []
    idx, holding, rows, cycle = 0, False, [], 0
    valid = getattr(dut, f"{port}__valid") if port else None
    payload = getattr(dut, f"{port}__payload") if port else None
    ready = getattr(dut, f"{port}__ready") if port else None
    while True:
        cycle += 1
        if port and idx < len(words) and not holding:
            holding = rng.random() < p_in
        if port:
            valid.value = int(holding)
            if holding:
                payload.value = words[idx]
        c_ready = int(rng.random() < p_out)
        dut.c__ready.value = c_ready
        await ReadOnly()
        if int(dut.done.value):
            assert idx == len(words), f"{op.name} done after {idx} of {len(words)} words"
            break
        if port and holding and int(ready.value):
            idx, holding = idx + 1, False
        if int(dut.c__valid.value) and c_ready:
            assert dut.c__payload.value.is_resolvable, f"C row {len(rows)} has undefined bits: {dut.c__payload.value}"
            raw = int(dut.c__payload.value)
            rows.append(([(raw >> (32 * j)) & 0xFFFFFFFF for j in range(C)], (raw >> (32 * C)) & 1))
        await RisingEdge(dut.clk)
        assert cycle < limit, f"{op.name} did not finish in {limit} cycles"
    await RisingEdge(dut.clk)
    if port:
        valid.value = 0
    return cycle - 1, rows


def _flags(dut):
    f = int(dut.flags.value)
    return {"overflow": f & 1, "infinite": (f >> 1) & 1, "invalid": (f >> 2) & 1, "refused": (f >> 3) & 1}


async def run_gemm(dut, name, rng, p_in=1.0, p_out=1.0, check_cycles=True):
    """One whole GEMM as ``hw.engine.host.gemm_commands`` sequences it (K zero-padded, split into
    segments through the partial-sum buffer when longer than a line): C bit for bit, flags, and
    every command's cycles against ``sim.engine.EngineCycles``."""
    a, w = _operands(name)
    meta = DATA[f"{name}_meta"].tolist()   # stochastic_a, stochastic_w, seed_a, seed_w
    M, K = a.shape
    N = w.shape[1]
    await run_op(dut, Op.CLEAR, rng=rng)
    assert _flags(dut) == {"overflow": 0, "infinite": 0, "invalid": 0, "refused": 0}
    amax = {"A": 0, "W": 0}
    scales, invs, rows, measured, model = {}, {}, [], [], []
    for cmd in gemm_commands(CFG, M, N, K):
        op = Op[cmd.op]
        seg_k = cmd.bounds[1] - cmd.bounds[0]
        lines = M if cmd.role == "A" else N
        kw = dict(m=M, n=N, chunks=cmd.chunks, rng=rng)
        if cmd.role is not None:
            words = operand_words(a if cmd.role == "A" else w, CFG, cmd.role, cmd.bounds)
            kw.update(words=words, port=cmd.role.lower(), p_in=p_in)
        if cmd.op.startswith("LOAD") and cmd.role not in scales:
            fmt = CFG.fmt_a if cmd.role == "A" else CFG.fmt_w
            scales[cmd.role], _, invs[cmd.role] = host_scale(amax[cmd.role], fmt)
        if cmd.op.startswith("LOAD"):
            index = 0 if cmd.role == "A" else 1
            kw.update(stochastic=int(meta[index]), inv=invs[cmd.role], seed=segment_seed(int(meta[2 + index]), cmd.segment))
        if op == Op.GEMM:
            sa, sw = (int(fp32_bits(torch.tensor([scales[r]], dtype=torch.float32))[0]) for r in ("A", "W"))
            kw.update(scales=(sa, sw), psum_add=cmd.psum_add, psum_store=cmd.psum_store, p_out=p_out)
        cycles, got = await run_op(dut, op, **kw)
        if cmd.op.startswith("AMAX"):
            # FP32 amaxes are non-negative, so their bit patterns order as the values do
            amax[cmd.role] = max(amax[cmd.role], int(dut.amax.value))
        if op == Op.GEMM and cmd.psum_store:
            assert not got, f"segment {cmd.segment}: {len(got)} rows of C left while storing partial sums"
        rows += got
        measured.append((cmd.op, cmd.segment, cycles))
        if cmd.op.startswith("AMAX"):
            model.append((cmd.op, cmd.segment, CYCLES.amax(lines, seg_k)))
        elif cmd.op.startswith("LOAD"):
            model.append((cmd.op, cmd.segment, CYCLES.load(lines, seg_k)))
        else:
            model.append((cmd.op, cmd.segment, CYCLES.gemm(M, N, seg_k, store=bool(cmd.psum_store))))
    assert amax["A"] == reference_amax(a) and amax["W"] == reference_amax(w), "amax differs from the golden model"
    _check_c(name, rows, M, N)
    flags = _flags(dut)
    assert flags["overflow"] == int(DATA[f"{name}_overflow"]), f"overflow flag {flags}"
    assert flags["invalid"] == 0 and flags["refused"] == 0, f"flags {flags}"
    assert flags["infinite"] == int(DATA[f"{name}_infinite"]), f"infinite flag {flags}"
    if check_cycles:
        dut._log.info(f"{name}: measured cycles {measured}, model {model}")
        assert measured == model, f"{name}: measured cycles {measured}, model {model}"
    return measured


@cocotb.test()
async def engine_gemms(dut):
    """Every GEMM of the run, back to back, no stalls: bit-exact C, flags, cycles = sim.engine."""
    await _reset(dut)
    rng = random.Random(P["seed"])
    for name in P["gemms"]:
        await run_gemm(dut, name, rng)


@cocotb.test()
async def engine_back_pressure(dut):
    """The same GEMMs with input bubbles and random back-pressure on C."""
    await _reset(dut)
    rng = random.Random(P["seed"] + 1)
    for name in P["stall_gemms"]:
        await run_gemm(dut, name, rng, p_in=0.6, p_out=0.4, check_cycles=False)


@cocotb.test()
async def engine_invalid_and_refused(dut):
    """A NaN/Inf input raises invalid; a zero dimension, a busy start and an oversized operand raise
    refused; CLEAR clears them."""
    await _reset(dut)
    rng = random.Random(P["seed"] + 2)
    K = CFG.group_len
    bad = torch.ones(2, K)
    bad[1, 3] = float("nan")
    await run_op(dut, Op.AMAX_A, m=2, n=1, chunks=1, words=operand_words(bad, CFG, "A"), port="a", rng=rng)
    assert _flags(dut)["invalid"] == 1
    await run_op(dut, Op.CLEAR, rng=rng)
    assert _flags(dut)["invalid"] == 0
    await run_op(dut, Op.GEMM, m=0, n=1, chunks=1, rng=rng)
    assert _flags(dut) == {"overflow": 0, "infinite": 0, "invalid": 0, "refused": 1}
    await run_op(dut, Op.CLEAR, rng=rng)
    # an A that does not fit: one line more than the buffer's rows hold at this K
    chunks = CFG.max_chunks
    lines = CFG.rows * (CFG.a_depth // (chunks * CFG.beats_per_chunk)) + 1
    big = torch.ones(lines, chunks * CFG.group_len)
    await run_op(dut, Op.LOAD_A, m=lines, n=1, chunks=chunks, words=operand_words(big, CFG, "A"), port="a",
                 inv=0x3F800000, rng=rng)
    assert _flags(dut)["refused"] == 1
    await run_op(dut, Op.CLEAR, rng=rng)
    if not CFG.psum_depth:
        # a split-K GEMM on an engine without the partial-sum buffer: refused at once, nothing runs
        cycles, rows = await run_op(dut, Op.GEMM, m=1, n=1, chunks=1, psum_add=1, rng=rng)
        assert _flags(dut)["refused"] == 1 and not rows and cycles == 0
    else:
        # storing more rows than the partial-sum buffer holds: the rows past it are dropped and
        # refused is raised; the command still finishes
        m = CFG.rows * (CFG.a_depth // CFG.beats_per_chunk)
        assert CFG.psum_rows(m, 1) > CFG.psum_depth
        cycles, rows = await run_op(dut, Op.GEMM, m=m, n=1, chunks=1, psum_store=1, rng=rng)
        assert _flags(dut)["refused"] == 1 and not rows
        await run_op(dut, Op.CLEAR, rng=rng)
        cycles, rows = await run_op(dut, Op.GEMM, m=CFG.rows, n=1, chunks=1, psum_store=1, rng=rng)
        assert _flags(dut)["refused"] == 0 and not rows


# -- double buffering: a GEMM and the next GEMM's quantization passes at once ------------------
class _Overlap:
    """Concurrent driving of a double-buffered engine: commands go out one per cycle on the
    command port, the operand streams are fed by their own coroutines, C is always ready and
    collected, and every command's cycles (start edge to the edge after which its unit is idle,
    as ``run_op`` counts) are measured by a monitor."""

    UNIT = {Op.AMAX_A: 0, Op.LOAD_A: 0, Op.AMAX_W: 1, Op.LOAD_W: 1, Op.GEMM: 2}

    def __init__(self, dut):
        self.dut, self.edge, self.rows, self.pending, self.cycles = dut, 0, [], [], []
        dut.c__ready.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.edge += 1
            await ReadOnly()
            if int(dut.c__valid.value):
                raw = int(dut.c__payload.value)
                self.rows.append(([(raw >> (32 * j)) & 0xFFFFFFFF for j in range(C)], (raw >> (32 * C)) & 1))
            busy = int(dut.units_busy.value)
            for entry in list(self.pending):
                name, unit, start = entry
                if self.edge > start and not (busy >> unit) & 1:
                    self.cycles.append((name, self.edge - start))
                    self.pending.remove(entry)

    async def issue(self, name, op, **fields):
        """Drive one command for one cycle; returns the edge that takes it."""
        dut = self.dut
        await FallingEdge(dut.clk)           # the monitor counts rising edges: stable here
        dut.cmd.value = _cmd(op, **fields)
        dut.start.value = 1
        start = self.edge + 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        if op in self.UNIT:
            self.pending.append((name, self.UNIT[op], start))
        return start

    async def feed(self, port, words):
        """Offer ``words`` on stream ``port`` back to back; a word goes when ready was high
        before the edge."""
        dut = self.dut
        valid, payload, ready = (getattr(dut, f"{port}__{x}") for x in ("valid", "payload", "ready"))
        for word in words:
            valid.value, payload.value = 1, word
            while True:
                await ReadOnly()
                taken = int(ready.value)
                await RisingEdge(dut.clk)
                if taken:
                    break
        valid.value = 0

    async def idle(self, unit, limit=200000):
        dut = self.dut
        for _ in range(limit):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if not (int(dut.units_busy.value) >> unit) & 1:
                await FallingEdge(dut.clk)
                return
        raise AssertionError(f"unit {unit} still busy after {limit} cycles")


def _operands(name):
    a = torch.from_numpy(DATA[f"{name}_a"])
    w = torch.from_numpy(DATA[f"{name}_w"])
    return a, w


def _check_c(name, rows, M, N):
    """The rows of C received, in the engine's order, against the golden FP32 bit patterns."""
    order = output_order(CFG, M, N)
    assert len(rows) == len(order), f"{name}: {len(rows)} rows of C for {len(order)} expected"
    expected = DATA[f"{name}_c"]
    for index, ((row, col0), (words, last)) in enumerate(zip(order, rows)):
        assert last == int(index == len(order) - 1), f"{name} row {index}: last={last}"
        for j in range(C):
            want = int(expected[row, col0 + j]) if col0 + j < N else 0
            assert words[j] == want, f"{name}: C[{row}, {col0 + j}] = {words[j]:#010x}, expected {want:#010x}"


async def _quantize(ov, name, slot):
    """Amax passes, host scales and both loads of GEMM ``name`` into ``slot``; returns the scales."""
    a, w = _operands(name)
    (M, K), N = a.shape, w.shape[1]
    chunks = CFG.padded_k(K) // CFG.group_len
    amax = {}
    for role, op, x in (("A", Op.AMAX_A, a), ("W", Op.AMAX_W, w)):
        await ov.issue(f"{name}.amax_{role}", op, m=M, n=N, chunks=chunks)
        await ov.feed(role.lower(), operand_words(x, CFG, role))
        await ov.idle(_Overlap.UNIT[op])
        amax[role] = int(ov.dut.amax.value)
    assert amax["A"] == reference_amax(a) and amax["W"] == reference_amax(w), f"{name}: amax"
    scale_a, _, inv_a = host_scale(amax["A"], CFG.fmt_a)
    scale_w, _, inv_w = host_scale(amax["W"], CFG.fmt_w)
    dut = ov.dut
    dut.inv.value, dut.seed.value = inv_a, 0
    # one ``inv`` port: the W load starts when the A load is done (both may overlap a GEMM)
    await ov.issue(f"{name}.load_A", Op.LOAD_A, m=M, n=N, chunks=chunks, slot_a=slot)
    await ov.feed("a", operand_words(a, CFG, "A"))
    await ov.idle(0)
    dut.inv.value = inv_w
    await ov.issue(f"{name}.load_W", Op.LOAD_W, m=M, n=N, chunks=chunks, slot_w=slot)
    await ov.feed("w", operand_words(w, CFG, "W"))
    await ov.idle(1)
    return tuple(int(fp32_bits(torch.tensor([sc], dtype=torch.float32))[0]) for sc in (scale_a, scale_w))


@cocotb.test(skip=not CFG.double_buffer)
async def engine_overlap(dut):
    """Two GEMMs on a double-buffered engine: X is quantized into slot 0, then X's GEMM runs while
    Y's amax and convert passes fill slot 1; then Y's GEMM from slot 1. Both C bit-exact; every
    command's cycles equal ``sim.engine.EngineCycles`` although they overlap; the overlapped
    stretch is shorter than the commands' sum; a load into the slot a running GEMM reads is
    refused and writes nothing."""
    await _reset(dut)
    x, y = P["overlap"]
    ov = _Overlap(dut)
    sx = await _quantize(ov, x, 0)
    ax, wx = _operands(x)
    (Mx, Kx), Nx = ax.shape, wx.shape[1]
    chunks_x = CFG.padded_k(Kx) // CFG.group_len
    dut.scale_a.value, dut.scale_w.value = sx
    begin = await ov.issue(f"{x}.gemm", Op.GEMM, m=Mx, n=Nx, chunks=chunks_x, slot_a=0, slot_w=0)
    # a load into slot 0 while the GEMM reads it: refused (and nothing written)
    await ov.issue("hazard", Op.LOAD_A, m=Mx, n=Nx, chunks=chunks_x, slot_a=0)
    ov.pending = [p for p in ov.pending if p[0] != "hazard"]
    await ReadOnly()
    assert (int(dut.flags.value) >> 3) & 1, "a load into the slot a running GEMM reads was not refused"
    await FallingEdge(dut.clk)
    sy = await _quantize(ov, y, 1)
    await ov.idle(2)
    span = ov.edge - begin
    gemm_rows_x = list(ov.rows)
    _check_c(x, gemm_rows_x, Mx, Nx)
    ay, wy = _operands(y)
    (My, Ky), Ny = ay.shape, wy.shape[1]
    dut.scale_a.value, dut.scale_w.value = sy
    ov.rows.clear()
    await ov.issue(f"{y}.gemm", Op.GEMM, m=My, n=Ny, chunks=CFG.padded_k(Ky) // CFG.group_len, slot_a=1, slot_w=1)
    await ov.idle(2)
    _check_c(y, ov.rows, My, Ny)
    flags = _flags(dut)
    assert flags["invalid"] == 0 and flags["overflow"] == 0 and flags["refused"] == 1, flags
    model = {}
    for name, (M, N, K) in ((x, (Mx, Nx, Kx)), (y, (My, Ny, Ky))):
        kp = CFG.padded_k(K)
        model.update({f"{name}.amax_A": CYCLES.amax(M, kp), f"{name}.amax_W": CYCLES.amax(N, kp),
                      f"{name}.load_A": CYCLES.load(M, kp), f"{name}.load_W": CYCLES.load(N, kp),
                      f"{name}.gemm": CYCLES.gemm(M, N, kp)})
    measured = dict(ov.cycles)
    dut._log.info(f"overlap: measured {measured}, model {model}, overlapped span {span}")
    assert measured == model, f"measured {measured}, model {model}"
    serial = model[f"{x}.gemm"] + sum(model[f"{y}.{c}"] for c in ("amax_A", "amax_W", "load_A", "load_W"))
    assert span < serial, f"the overlapped stretch took {span} cycles, the commands {serial} in a row"
