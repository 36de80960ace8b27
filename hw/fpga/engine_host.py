"""Host driver of the engine on a board: a WHOLE GEMM over the bridge protocol of ``hw.fpga``.

``EngineHost.gemm(A, W)`` runs the engine's commands (docs/engine.md), in the order of
``hw.engine.host.gemm_commands``, through a :class:`~hw.fpga.bridge.HostBridge` around
``hw.engine.Engine``:

1. ``CLEAR``; ``AMAX_A`` and ``AMAX_W``: the FP32 operand words (``hw.engine.host.operand_words``,
   K zero-padded to ``group_len``) stream into the ``a`` / ``w`` FIFO, ``start`` is pulsed,
   ``done`` is polled, ``amax`` is read;
2. the host computes ``S_t, inv = host_scale(amax, fmt)`` (``model.quant_stream``);
3. ``LOAD_A`` and ``LOAD_W`` with ``inv`` and ``seed``: the same words again;
4. ``GEMM`` with ``scale_a`` / ``scale_w``: every row of C is read from the ``c`` FIFO and put in
   place with ``hw.engine.host.output_order``; then ``flags`` and the bridge's counters.

A K longer than one buffer line runs in segments through the partial-sum buffer (an engine
built with ``psum_depth`` > 0): steps 1, 3 and 4 per segment, ``psum_add``/``psum_store`` set
as ``gemm_commands`` lists them, and only the last GEMM sends C.

The command word is packed **by field name** from the command layout (the manifest's
``design.command.layout``, or ``hw.engine.command_layout(config)``): a field this driver does not
know is sent as 0, a field the driver sets that the layout lacks is an error unless its value is 0.
No bit offset is written here.

FIFO depth: the operands are streamed while the engine runs, with credit-based flow control, so
an operand may be any length the engine's buffers take, not only ``--fifo-depth`` words. At most
``in_depth`` words are pushed before ``start`` (the engine takes no word outside a pass, so they
wait in the FIFO); after that, whenever the words pushed since the last look reach the room that
was free, the host asks the FIFO's level ('L') and pushes only into the room left, so a word is
never dropped. Rows of C are read as they arrive (level first, then that many reads): the ``c``
stream has back-pressure, so a GEMM with more rows than ``out_depth`` simply waits for the host.

Transports: the driver is written once, with ``await transport.send(bytes)`` and
``await transport.recv(n)``. In simulation that is ``hw.fpga.simhost.SimHost`` (the Amaranth
testbench awaits it); on a board it is :class:`BlockingTransport` around a ``serial.Serial`` (or a
``BoardClient``'s transport), whose methods never suspend, and :func:`run_blocking` runs the
coroutine to its end in one step (``EngineHost.gemm_blocking``).
"""

from __future__ import annotations

import dataclasses

import torch

from model.fp32 import bits_fp32, fp32_bits

from .host import BoardClient, decode_counters, decode_word, encode_level, encode_pulse, encode_read, \
    encode_simple, encode_write, ports_by_name
from .protocol import COUNTERS_REPLY, MAGIC, Op

__all__ = ["BlockingTransport", "run_blocking", "as_transport", "EngineError", "GemmResult", "EngineHost",
           "pack_fields", "unpack_fields"]


# -- transports ------------------------------------------------------------------------------------
class BlockingTransport:
    """``send``/``recv`` coroutines over a blocking byte stream (``write(bytes)``, ``read(n)``):
    ``serial.Serial`` with a ``timeout``; a short read raises ``TimeoutError``."""

    def __init__(self, io):
        self.io = io

    async def send(self, data: bytes) -> None:
        self.io.write(bytes(data))

    async def recv(self, n: int) -> bytes:
        data = self.io.read(n)
        if len(data) != n:
            raise TimeoutError(f"expected {n} reply bytes from the board, got {len(data)}")
        return bytes(data)


def as_transport(obj):
    """An object with ``send``/``recv`` coroutines (``SimHost``) as it is; a ``BoardClient`` or a
    ``write``/``read`` byte stream wrapped in :class:`BlockingTransport`."""
    if isinstance(obj, BoardClient):
        return BlockingTransport(obj.transport)
    if hasattr(obj, "send") and hasattr(obj, "recv"):
        return obj
    if hasattr(obj, "write") and hasattr(obj, "read"):
        return BlockingTransport(obj)
    raise TypeError(f"{obj!r} is not a transport: it needs send/recv coroutines or write/read methods")


def run_blocking(coro):
    """Run a driver coroutine over a :class:`BlockingTransport` (it never suspends) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the driver awaited an asynchronous transport; await it from its event loop instead")


# -- layouts by field name ----------------------------------------------------------------------
def _fields(layout) -> list[dict]:
    """``[{"name", "offset", "width"}]`` of a ``data.StructLayout`` (or such a list, as it is)."""
    if isinstance(layout, (list, tuple)):
        return [dict(f) for f in layout]
    from amaranth import Shape
    return [{"name": name, "offset": field.offset, "width": Shape.cast(field.shape).width} for name, field in layout]


def pack_fields(fields, values: dict, *, what: str = "command") -> int:
    """Pack ``values`` (name -> int) into a word by field name; fields not given are 0. A name the
    layout lacks is an error unless its value is 0 (then the bitstream simply has no such field)."""
    by_name = {f["name"]: f for f in fields}
    word = 0
    for name, value in values.items():
        value = int(value)
        if name not in by_name:
            if value:
                raise ValueError(f"{what} has no field {name!r} (fields: {', '.join(by_name)}); cannot send {name}={value}")
            continue
        f = by_name[name]
        if not 0 <= value < (1 << f["width"]):
            raise ValueError(f"{what} field {name}={value} does not fit its {f['width']} bits "
                             f"(0 .. {(1 << f['width']) - 1})")
        word |= value << f["offset"]
    return word


def unpack_fields(fields, word: int) -> dict:
    return {f["name"]: (word >> f["offset"]) & ((1 << f["width"]) - 1) for f in fields}


class EngineError(RuntimeError):
    """The engine or the bridge reported a fault (refused command, dropped word, lost byte ...)."""


@dataclasses.dataclass
class GemmResult:
    c: torch.Tensor            # FP32 [M, N]
    c_bits: list               # [M][N] FP32 bit patterns as read from the board
    flags: dict                # the engine's sticky flags after the GEMM (flags_layout field -> 0/1)
    amax_a: int                # FP32 bit patterns read after the amax passes
    amax_w: int
    inv_a: int                 # FP32 bit patterns the host sent
    inv_w: int
    scale_a: int
    scale_w: int
    counters: object           # hw.fpga.host.Counters at the end (cycles since the 'G' of this GEMM)
    rows: int                  # transfers read from the c FIFO (len(output_order))
    commands: int              # engine commands after CLEAR (hw.engine.host.gemm_commands)


def _f32_bits(x: float) -> int:
    return int(fp32_bits(torch.tensor([x], dtype=torch.float32))[0])


class EngineHost:
    """Drive ``hw.engine.Engine`` behind a ``HostBridge``.

    Parameters
    ----------
    transport : SimHost, BlockingTransport, BoardClient or serial.Serial (see :func:`as_transport`)
    config : hw.engine.EngineConfig of the design
    ports : the bridge's port table (``PortInfo``s, or the manifest's ``bridge.ports`` dicts)
    in_depth, out_depth : the bridge's FIFO depths (``--fifo-depth``)
    command_fields, flags_fields : layouts by field name (default: this checkout's
        ``command_layout(config)`` / ``flags_layout()``; :meth:`from_manifest` takes the bitstream's)
    poll_limit : most looks at ``done`` or at a FIFO level in a row without progress (not done, no
        room, no row) before ``TimeoutError``
    """

    def __init__(self, transport, config, ports, *, in_depth: int, out_depth: int, command_fields=None,
                 flags_fields=None, poll_limit: int = 100_000):
        from ..engine import Engine, command_layout, flags_layout

        self.io = as_transport(transport)
        self.config = config
        self.ports = ports_by_name(ports)
        for name in ("a", "w", "c", "cmd", "start", "inv", "seed", "scale_a", "scale_w", "done", "amax", "flags"):
            if name not in self.ports:
                raise ValueError(f"the bridge has no port {name!r}: is this the engine design? ports: {', '.join(self.ports)}")
        self.in_depth, self.out_depth = int(in_depth), int(out_depth)
        self.command_fields = _fields(command_fields if command_fields is not None else command_layout(config))
        self.flags_fields = _fields(flags_fields if flags_fields is not None else flags_layout())
        cmd_bits = max(f["offset"] + f["width"] for f in self.command_fields)
        if cmd_bits > self.ports["cmd"].width:
            raise ValueError(f"the command layout needs {cmd_bits} bits, the bridge's cmd port has {self.ports['cmd'].width}")
        probe = Engine(config)
        probe._MustUse__silence = True   # only its stream layouts are read
        self._c_layout = probe.signature.members["c"].signature.members["payload"].shape
        self._a_width = probe.signature.members["a"].signature.members["payload"].shape.size
        if self.ports["a"].width != self._a_width or self.ports["c"].width != self._c_layout.size:
            raise ValueError(f"the bridge's a/c ports ({self.ports['a'].width}/{self.ports['c'].width} bits) do not "
                             f"match {config} ({self._a_width}/{self._c_layout.size} bits)")
        self.poll_limit = poll_limit
        self.polls = 0   # done/level looks during the last gemm (how long the host waited)
        self._idle = 0   # looks in a row without progress

    @classmethod
    def from_manifest(cls, transport, manifest: dict, **kwargs) -> "EngineHost":
        """From a board build's ``board.json`` (design ``engine``): the configuration, the port
        table, the FIFO depths and the command/flags layouts the bitstream was built with."""
        from .engine_adapter import config_from_json

        design = manifest.get("design", {})
        if design.get("design") != "engine":
            raise ValueError(f"the manifest is of design {design.get('design')!r}, not 'engine'")
        bridge = manifest["bridge"]
        return cls(transport, config_from_json(design["config"]), bridge["ports"], in_depth=bridge["in_depth"],
                   out_depth=bridge["out_depth"], command_fields=design["command"]["layout"],
                   flags_fields=design["command"]["flags"], **kwargs)

    # -- bridge commands ------------------------------------------------------------------------
    async def _write(self, name, value):
        await self.io.send(encode_write(self.ports[name], value))

    async def _read(self, name) -> int:
        port = self.ports[name]
        await self.io.send(encode_read(port))
        return decode_word(port, await self.io.recv(port.nbytes))

    async def _level(self, name) -> int:
        await self.io.send(encode_level(self.ports[name]))
        return int.from_bytes(await self.io.recv(2), "little")

    async def identify(self) -> int:
        await self.io.send(encode_simple(Op.IDENTIFY))
        reply = await self.io.recv(len(MAGIC) + 1)
        if reply[:len(MAGIC)] != MAGIC:
            raise EngineError(f"not an MLS board bridge: {reply!r}")
        return reply[-1]

    async def counters(self):
        await self.io.send(encode_simple(Op.COUNTERS))
        return decode_counters(await self.io.recv(COUNTERS_REPLY))

    async def flags(self) -> dict:
        return unpack_fields(self.flags_fields, await self._read("flags"))

    def command_word(self, op, **fields) -> int:
        """The ``cmd`` word of ``op`` (``hw.engine.Op``) with the named fields; others 0."""
        return pack_fields(self.command_fields, {"op": int(op), **fields})

    # -- one engine command --------------------------------------------------------------------
    async def _stream(self, name, words, start_at: int):
        """Push ``words[start_at:]`` into in-stream ``name`` without overfilling its FIFO."""
        i, room = start_at, 0
        while i < len(words):
            if room <= 0:
                room = self.in_depth - await self._level(name)
                self._waited(progress=room > 0)
                continue
            await self._write(name, words[i])
            i, room = i + 1, room - 1

    def _waited(self, progress: bool):
        """Count one look at the board; ``poll_limit`` looks in a row without progress: TimeoutError."""
        self.polls += 1
        self._idle = 0 if progress else self._idle + 1
        if self._idle > self.poll_limit:
            raise TimeoutError(f"the engine did not finish: {self.poll_limit} polls in a row without progress")

    async def _wait_done(self):
        while True:
            done = await self._read("done")
            self._waited(progress=bool(done))
            if done:
                return

    async def command(self, op, *, port: str | None = None, words=(), inv: int | None = None,
                      seed: int | None = None, scales: tuple[int, int] | None = None, **fields) -> None:
        """Set the registers, pre-fill ``port``'s FIFO, pulse ``start``, stream the rest of
        ``words``, wait for ``done``."""
        await self._write("cmd", self.command_word(op, **fields))
        if inv is not None:
            await self._write("inv", inv)
        if seed is not None:
            await self._write("seed", seed)
        if scales is not None:
            await self._write("scale_a", scales[0])
            await self._write("scale_w", scales[1])
        words = list(words)
        head = 0
        if port is not None and words:
            head = min(len(words), self.in_depth - await self._level(port))
            for word in words[:head]:
                await self._write(port, word)
        await self.io.send(encode_pulse(self.ports["start"], 1))
        if port is not None:
            await self._stream(port, words, head)
        await self._wait_done()

    async def _read_rows(self, count: int) -> list[int]:
        rows = []
        while len(rows) < count:
            n = min(await self._level("c"), count - len(rows))
            self._waited(progress=n > 0)
            for _ in range(n):
                rows.append(await self._read("c"))
        return rows

    # -- a whole GEMM --------------------------------------------------------------------------
    async def gemm(self, a, w, *, stochastic_a: bool = False, stochastic_w: bool = False, seed_a: int = 0,
                   seed_w: int = 0, check: bool = True) -> GemmResult:
        """C = A x W on the engine: A FP32 [M, K], W FP32 [K, N], any K the engine takes.

        The commands are ``hw.engine.host.gemm_commands``: K zero-padded to ``group_len``; a K
        longer than one buffer line split into segments through the partial-sum buffer (one amax
        pass per segment, the largest amax per operand; per segment a convert pass of each
        operand with LFSR seed ``segment_seed(seed, s)`` and a GEMM with ``psum_add`` /
        ``psum_store``). Only the last GEMM sends rows of C.

        Raises ``ValueError`` (naming value and limit) if the GEMM does not fit the engine, and with
        ``check`` :class:`EngineError` if the engine refused a command, a row's ``last`` bit is wrong,
        a storing segment sent rows, or the bridge dropped a word or lost a byte (``C``'s flags)."""
        from ..engine import Op as EOp
        from ..engine.host import gemm_commands, operand_words, output_order, segment_seed
        from model.quant_stream import host_scale

        cfg = self.config
        a = torch.as_tensor(a, dtype=torch.float32)
        w = torch.as_tensor(w, dtype=torch.float32)
        if a.dim() != 2 or w.dim() != 2 or a.shape[1] != w.shape[0]:
            raise ValueError(f"need A [M, K] and W [K, N], got {tuple(a.shape)} and {tuple(w.shape)}")
        M, K = a.shape
        N = w.shape[1]
        commands = gemm_commands(cfg, M, N, K)   # ValueError naming value and limit if it does not fit
        operands = {"A": (a, cfg.fmt_a, stochastic_a, seed_a), "W": (w, cfg.fmt_w, stochastic_w, seed_w)}
        amax = {"A": 0, "W": 0}
        scale, inv = {}, {}
        order = output_order(cfg, M, N)
        raw_rows, stray = [], 0
        self.polls = self._idle = 0
        if await self.identify() != len(self.ports):
            raise EngineError(f"the bridge reports a different port count than the {len(self.ports)} of the manifest")
        await self.io.send(encode_simple(Op.GO))   # feed the FIFOs from now on; counters restart
        await self.command(EOp.CLEAR)
        for cmd in commands:
            op = EOp[cmd.op]
            shape = {"m": M, "n": N, "chunks": cmd.chunks}
            if cmd.role is not None:
                x, fmt, stochastic, seed = operands[cmd.role]
                words = operand_words(x, cfg, cmd.role, cmd.bounds)
                port = cmd.role.lower()
            if cmd.op.startswith("AMAX"):
                await self.command(op, port=port, words=words, **shape)
                # FP32 amaxes are non-negative: their bit patterns order as their values
                amax[cmd.role] = max(amax[cmd.role], await self._read("amax"))
            elif cmd.op.startswith("LOAD"):
                if cmd.role not in scale:
                    s_t, _, inv[cmd.role] = host_scale(amax[cmd.role], fmt)
                    scale[cmd.role] = _f32_bits(s_t)
                await self.command(op, port=port, words=words, inv=inv[cmd.role],
                                   seed=segment_seed(seed, cmd.segment), stochastic=int(stochastic), **shape)
            else:
                await self._write("cmd", self.command_word(op, psum_add=cmd.psum_add, psum_store=cmd.psum_store, **shape))
                await self._write("scale_a", scale["A"])
                await self._write("scale_w", scale["W"])
                await self.io.send(encode_pulse(self.ports["start"], 1))
                if not cmd.psum_store:
                    raw_rows = await self._read_rows(len(order))
                await self._wait_done()
                if cmd.psum_store:
                    stray += await self._level("c")
        flags = await self.flags()
        counters = await self.counters()
        leftover = await self._level("c")

        C = cfg.cols
        bits = [[0] * N for _ in range(M)]
        data_off = self._c_layout["data"].offset
        last_off = self._c_layout["last"].offset
        bad_last = []
        for index, ((row, col0), raw) in enumerate(zip(order, raw_rows)):
            if (raw >> last_off & 1) != int(index == len(order) - 1):
                bad_last.append(index)
            for j in range(C):
                if col0 + j < N:
                    bits[row][col0 + j] = (raw >> (data_off + 32 * j)) & 0xFFFFFFFF
        result = GemmResult(c=bits_fp32(bits).reshape(M, N),
                            c_bits=bits, flags=flags, amax_a=amax["A"], amax_w=amax["W"], inv_a=inv["A"],
                            inv_w=inv["W"], scale_a=scale["A"], scale_w=scale["W"], counters=counters,
                            rows=len(raw_rows), commands=len(commands))
        if check:
            problems = []
            if flags.get("refused"):
                problems.append("the engine refused a command (flags.refused)")
            if bad_last:
                problems.append(f"wrong 'last' bit on C transfers {bad_last[:4]}")
            if stray:
                problems.append(f"{stray} rows of C sent by segments that store partial sums")
            if leftover:
                problems.append(f"{leftover} unexpected words left in the c FIFO")
            if counters.flags:
                problems.append(f"bridge flags {sorted(counters.flags)}")
            if problems:
                raise EngineError("; ".join(problems))
        return result

    def gemm_blocking(self, a, w, **kwargs) -> GemmResult:
        """:meth:`gemm` over a blocking transport (a serial port)."""
        return run_blocking(self.gemm(a, w, **kwargs))


def random_operands(m: int, k: int, n: int, seed: int):
    """The CLI's operands: A [m, k] and W [k, n], standard normal, from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)


def main(argv=None) -> int:
    """``python -m hw.fpga.engine_host --manifest B/board.json --port /dev/ttyUSB0``: one random
    GEMM on the board, checked bit for bit against ``hw.engine.host.gemm_reference``."""
    import argparse
    import json
    import sys

    from ..engine.host import gemm_reference

    parser = argparse.ArgumentParser(prog="python -m hw.fpga.engine_host",
                                     description="Run one random GEMM on a board built with `--design engine` "
                                                 "and check it bit for bit against hw.engine.host.gemm_reference.")
    parser.add_argument("--manifest", required=True, help="board.json of a `--design engine` build")
    parser.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0 (needs pyserial)")
    parser.add_argument("--m", type=int, default=5, help="rows of A (default 5)")
    parser.add_argument("--n", type=int, default=3, help="columns of W (default 3)")
    parser.add_argument("--k", type=int, default=None, help="reduction length (default: two groups)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random operands (default 0)")
    parser.add_argument("--timeout", type=float, default=2.0, help="serial read timeout in seconds (default 2)")
    args = parser.parse_args(argv)
    try:
        import serial
    except ImportError:
        print("error: the board host needs pyserial: pip install pyserial", file=sys.stderr)
        return 2
    with open(args.manifest) as f:
        manifest = json.load(f)
    try:
        port = serial.Serial(args.port, manifest["baud"], timeout=args.timeout)
        host = EngineHost.from_manifest(port, manifest)
        k = args.k if args.k is not None else 2 * host.config.group_len
        a, w = random_operands(args.m, k, args.n, args.seed)
        got = host.gemm_blocking(a, w)
    except (ValueError, EngineError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    want = fp32_bits(gemm_reference(host.config, a, w)[0]).reshape(args.m, args.n).tolist()
    bad = sum(x != y for row_g, row_w in zip(got.c_bits, want) for x, y in zip(row_g, row_w))
    print(f"C [{args.m}, {args.n}] over K = {k}: {got.commands} commands, {got.counters.cycles} cycles since G, "
          f"flags {got.flags}; {bad} of {args.m * args.n} outputs differ from gemm_reference")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
