# amaranth: UnusedElaboratable=no
"""The engine on the board wrapper: whole GEMMs through ``HostBridge`` + ``hw.engine.Engine``,
driven by ``hw.fpga.engine_host.EngineHost`` byte by byte in the Amaranth simulator (no UART, no
toolchain). FP32 A [M, K] and W [K, N] in, FP32 C out, compared bit for bit with
``hw.engine.host.gemm_reference``; the flags; and mutations of the driver that must be caught."""

from __future__ import annotations

import pytest
import torch

from hw.engine import Engine, EngineConfig, Op, command_layout
from hw.engine.build import layout_fields
from hw.engine.host import gemm_reference
from hw.fpga.bridge import HostBridge
from hw.fpga.designs import make_design
from hw.fpga.engine_host import EngineHost, pack_fields, unpack_fields, run_blocking
from hw.fpga.host import BoardClient
from hw.fpga.simhost import SimHost, run_sim
from model.fp32 import fp32_bits

# Small: a 2 x 2 scalar e2m1g3 engine, groups of 9, buffers for K up to 36 and M, N up to 8.
CFG = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, lanes=1, group_len=9, quant_lanes=1, a_depth=36, w_depth=36)
IN_DEPTH = 16    # smaller than the operands (3 x 18 = 54 words): streamed in pieces with flow control
OUT_DEPTH = 4    # fewer than the 6 rows of C: the engine waits for the host
POLL_LIMIT = 500  # a hung command (a mutant) fails in a few thousand cycles, not at the cycle limit


def _operands(seed, m, k, n):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=g) * torch.exp2(torch.randint(-6, 6, (m, 1), generator=g).float() / 2)
    w = torch.randn(k, n, generator=g) * torch.exp2(torch.randint(-6, 6, (1, n), generator=g).float() / 2)
    return a, w


def _bits(t):
    return fp32_bits(t).reshape(tuple(t.shape)).tolist()


class _Recorder:
    """A SimHost that logs the bytes sent and received (for the serial replay test)."""

    def __init__(self, host):
        self.host, self.log = host, []

    async def send(self, data):
        self.log.append(("send", bytes(data)))
        await self.host.send(data)

    async def recv(self, n):
        data = await self.host.recv(n)
        self.log.append(("recv", data))
        return data


def _run(driver_cls, a, w, log=None, cfg=CFG, **kw):
    bridge = HostBridge(Engine(cfg), in_depth=IN_DEPTH, out_depth=OUT_DEPTH)
    out = {}

    async def bench(ctx):
        io = _Recorder(SimHost(ctx, bridge))
        host = driver_cls(io, cfg, bridge.ports, in_depth=IN_DEPTH, out_depth=OUT_DEPTH, poll_limit=POLL_LIMIT)
        out["result"] = await host.gemm(a, w, **kw)
        if log is not None:
            log.extend(io.log)

    run_sim(bridge, bench, limit=60_000)
    return out["result"]


class _ReplaySerial:
    """A serial port (``write``/``read``) that checks every byte written against a recorded
    session and answers with the recorded replies."""

    def __init__(self, log):
        self.sent = b"".join(d for kind, d in log if kind == "send")
        self.replies = b"".join(d for kind, d in log if kind == "recv")
        self.pos_sent = self.pos_reply = 0

    def write(self, data):
        want = self.sent[self.pos_sent:self.pos_sent + len(data)]
        assert data == want, f"byte {self.pos_sent}: wrote {data!r}, the simulated session sent {want!r}"
        self.pos_sent += len(data)

    def read(self, n):
        data = self.replies[self.pos_reply:self.pos_reply + n]
        self.pos_reply += len(data)
        return data


def test_gemm_through_bridge_bit_exact():
    """M = 3, N = 3 (not multiples of the 2 x 2 array), K = 18 (two groups), both roundings."""
    a, w = _operands(1, 3, 18, 3)
    log = []
    got = _run(EngineHost, a, w, log=log, stochastic_w=True, seed_w=0x5A)
    want, overflow = gemm_reference(CFG, a, w, stochastic_w=True, seed_w=0x5A)
    assert got.c_bits == _bits(want)
    assert got.flags == {"overflow": int(overflow.any()), "infinite": 0, "invalid": 0, "refused": 0}
    assert got.rows == 6 and got.counters.flags == frozenset()   # no word dropped, no byte lost
    # 54 words per pass through a 16-word FIFO: pushed in pieces, the level asked between them
    # (two passes per operand, the first look before the pre-fill included).
    for port in (0, 1):
        assert sum(1 for kind, d in log if kind == "send" and d == bytes([ord("L"), port])) >= 2 * 3
    assert got.amax_a == int(fp32_bits(a.abs().max())[0]) and got.amax_w == int(fp32_bits(w.abs().max())[0])


def test_dot_engine_mixed_formats():
    """The driver is generic over the configuration: 3-lane dot-product PEs, A e2m1g3 and W
    e3m3g3, three FP32 elements per word, a 2 x 3 array; M = 3, N = 4, K = 18, stochastic A."""
    cfg = EngineConfig("e2m1g3", "e3m3g3", rows=2, cols=3, lanes=3, group_len=9, quant_lanes=3, a_depth=12, w_depth=12)
    a, w = _operands(4, 3, 18, 4)
    got = _run(EngineHost, a, w, cfg=cfg, stochastic_a=True, seed_a=0x3C)
    want, overflow = gemm_reference(cfg, a, w, stochastic_a=True, seed_a=0x3C)
    assert got.c_bits == _bits(want)
    assert got.flags == {"overflow": int(overflow.any()), "infinite": 0, "invalid": 0, "refused": 0}


def test_saturating_accumulator_raises_overflow():
    """A narrow accumulator (6 bits) saturates: the overflow flag comes back through the bridge,
    and C is still bit for bit the golden model's saturated result."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, group_len=9, a_depth=36, w_depth=36, acc_bits=6)
    a, w = _operands(6, 3, 18, 2)
    got = _run(EngineHost, a, w, cfg=cfg)
    want, overflow = gemm_reference(cfg, a, w)
    assert overflow.any() and got.flags["overflow"] == 1 and got.flags["refused"] == 0
    assert got.c_bits == _bits(want)


def test_split_k_and_ragged_k():
    """K = 40 (not a multiple of group_len: zero-padded to 45) on an engine whose buffers hold one
    chunk per line at M = N = 3: five K segments through the partial-sum buffer (psum_add /
    psum_store packed by name), 25 commands, C sent once, bit for bit."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, lanes=1, group_len=9, quant_lanes=1, a_depth=18,
                       w_depth=18, psum_depth=8, split_k_max=45)
    a, w = _operands(5, 3, 40, 3)
    got = _run(EngineHost, a, w, cfg=cfg, stochastic_a=True, seed_a=7)
    want, overflow = gemm_reference(cfg, a, w, stochastic_a=True, seed_a=7)
    assert got.commands == 25 and got.rows == 6
    assert got.c_bits == _bits(want)
    assert got.flags == {"overflow": int(overflow.any()), "infinite": 0, "invalid": 0, "refused": 0}


def test_serial_path_sends_the_same_bytes():
    """The blocking (serial-port) path runs the same driver code: replayed against the bytes of a
    simulated session it writes exactly the bytes the simulation received and decodes the same C;
    a port that stops answering gives a TimeoutError, not a hang."""
    a, w = _operands(3, 5, 9, 3)   # M = 5: three M tiles, the last one ragged
    log = []
    sim = _run(EngineHost, a, w, log=log)
    assert sim.c_bits == _bits(gemm_reference(CFG, a, w)[0])
    serial = _ReplaySerial(log)
    ports = HostBridge(Engine(CFG)).ports
    board = EngineHost(BoardClient(serial, ports), CFG, ports, in_depth=IN_DEPTH, out_depth=OUT_DEPTH)
    got = board.gemm_blocking(a, w)
    assert got.c_bits == sim.c_bits and got.flags == sim.flags
    assert serial.pos_sent == len(serial.sent) and serial.pos_reply == len(serial.replies)
    serial.replies = serial.replies[:40]
    serial.pos_sent = serial.pos_reply = 0
    with pytest.raises(TimeoutError, match="reply bytes"):
        board.gemm_blocking(a, w)


class _WrongScale(EngineHost):
    """Mutation: the GEMM gets twice A's tensor scale (exponent field + 1)."""

    async def _write(self, name, value):
        await super()._write(name, value + (1 << 23) if name == "scale_a" else value)


class _SwappedFields(EngineHost):
    """Mutation: ``m`` and ``n`` swapped in every command word."""

    def command_word(self, op, **fields):
        if "m" in fields:
            fields["m"], fields["n"] = fields["n"], fields["m"]
        return super().command_word(op, **fields)


def test_wrong_scale_is_caught():
    """Mutation: twice A's scale. The bit-exact check fails; C is exactly twice the golden C
    (the scale reaches the converter as sent)."""
    a, w = _operands(2, 3, 9, 1)
    want = gemm_reference(CFG, a, w)[0]
    got = _run(_WrongScale, a, w)
    assert got.c_bits != _bits(want)
    assert got.c_bits == _bits(want * 2)


def test_swapped_command_fields_are_caught():
    """Mutation: m and n swapped in the command word (M = 3, N = 1): the W pass waits for words
    that never come, and the driver stops with a TimeoutError after its poll limit."""
    a, w = _operands(2, 3, 9, 1)
    with pytest.raises(TimeoutError, match="did not finish"):
        _run(_SwappedFields, a, w)


def test_command_packed_by_field_name():
    """A layout with an extra field (e.g. a split-K flag) in the middle: the driver sends it as 0
    and places the known fields by their offsets, never by a fixed bit position."""
    fields = [{"name": "op", "offset": 0, "width": 3}, {"name": "accumulate", "offset": 3, "width": 1},
              {"name": "m", "offset": 4, "width": 6}, {"name": "n", "offset": 10, "width": 6},
              {"name": "chunks", "offset": 16, "width": 5}, {"name": "stochastic", "offset": 21, "width": 1}]
    word = pack_fields(fields, {"op": 5, "m": 3, "n": 2, "chunks": 4, "stochastic": 0})
    assert unpack_fields(fields, word) == {"op": 5, "accumulate": 0, "m": 3, "n": 2, "chunks": 4, "stochastic": 0}
    assert word == 5 | 3 << 4 | 2 << 10 | 4 << 16
    assert pack_fields(fields, {"op": 1, "unknown": 0}) == 1          # a zero for a field the bitstream lacks
    with pytest.raises(ValueError, match="no field 'split'"):
        pack_fields(fields, {"op": 1, "split": 1})
    with pytest.raises(ValueError, match="m=64 does not fit its 6 bits"):
        pack_fields(fields, {"m": 64})
    # this checkout's own layout, by name
    layout = command_layout(CFG)
    word = pack_fields(layout_fields(layout), {"op": int(Op.GEMM), "m": 3, "n": 3, "chunks": 2})
    view = layout.from_bits(word)
    assert (view.op, view.m, view.n, view.chunks, view.stochastic) == (Op.GEMM, 3, 3, 2, 0)


def test_board_cli_over_a_serial_port(tmp_path, monkeypatch, capsys):
    """``python -m hw.fpga.engine_host --manifest --port``: from the manifest alone, over a
    (replayed) serial port, one GEMM checked against gemm_reference; exit 0."""
    import serial   # pyserial: the fpga extra (a missing one fails here rather than skipping)
    from hw.fpga import engine_host

    _, desc = make_design("engine", fmt="e2m1g3", rows=2, cols=2, engine={"group_len": 9, "a_depth": 36, "w_depth": 36})
    ports = HostBridge(Engine(CFG)).ports
    manifest = {"design": desc, "baud": 115200,
                "bridge": {"in_depth": IN_DEPTH, "out_depth": OUT_DEPTH, "ports": [p.to_json() for p in ports]}}
    path = tmp_path / "board.json"
    path.write_text(__import__("json").dumps(manifest))
    log = []
    _run(EngineHost, *engine_host.random_operands(4, 18, 3, 4), log=log)
    monkeypatch.setattr(serial, "Serial", lambda *args, **kw: _ReplaySerial(log))
    assert engine_host.main(["--manifest", str(path), "--port", "/dev/ttyUSB9", "--m", "4", "--seed", "4"]) == 0
    assert "0 of 12 outputs differ from gemm_reference" in capsys.readouterr().out


def test_manifest_drives_the_host():
    """The board manifest's design entry rebuilds the configuration and the layouts; a GEMM that
    does not fit is refused on the host before any byte is sent."""
    _, desc = make_design("engine", fmt="e2m1g3", rows=2, cols=2,
                          engine={"group_len": 9, "a_depth": 36, "w_depth": 36})
    bridge = HostBridge(Engine(CFG), in_depth=IN_DEPTH, out_depth=OUT_DEPTH)
    manifest = {"design": desc, "bridge": {"in_depth": IN_DEPTH, "out_depth": OUT_DEPTH,
                                           "ports": [p.to_json() for p in bridge.ports]}}

    class NoBytes:
        def write(self, data):
            raise AssertionError("no byte may be sent")

        def read(self, n):
            raise AssertionError("no byte may be read")

    host = EngineHost.from_manifest(NoBytes(), manifest)
    assert host.config == CFG
    assert [f["name"] for f in host.command_fields] == [name for name, _ in command_layout(CFG)]
    with pytest.raises(ValueError, match="longer than one buffer line"):
        run_blocking(host.gemm(torch.ones(2, 40), torch.ones(40, 2)))
    with pytest.raises(ValueError, match="m must be in"):
        run_blocking(host.gemm(torch.ones(99, 9), torch.ones(9, 2)))
