"""Host side of the board protocol (``hw.fpga.protocol``): command encoders, reply decoders and a
small client over any byte transport (``pyserial``'s ``Serial`` or anything with ``write(bytes)``
and ``read(n) -> bytes``).

Example with the board's FTDI port (``pip install pyserial``)::

    import json, serial
    from hw.fpga.host import BoardClient
    manifest = json.load(open("/tmp/b/board.json"))
    dev = BoardClient(serial.Serial("/dev/ttyUSB0", manifest["baud"], timeout=1), manifest["bridge"]["ports"])
    dev.identify()
"""

from __future__ import annotations

import dataclasses

from .protocol import COUNTER_BYTES, COUNTERS_REPLY, FLAG_BITS, MAGIC, Op, PortInfo, PortKind, word_bytes

__all__ = ["encode_write", "encode_pulse", "encode_read", "encode_level", "encode_simple",
           "decode_word", "decode_counters", "Counters", "BoardClient", "ports_by_name"]


def ports_by_name(ports) -> dict[str, PortInfo]:
    """The bridge's ports by name, from the manifest's port list (dicts) or ``PortInfo``s."""
    out = {}
    for p in ports:
        if isinstance(p, dict):
            p = PortInfo(p["index"], p["name"], PortKind(p["kind"]), p["width"])
        out[p.name] = p
    return out


def _check_port(port: PortInfo, kinds) -> None:
    if port.kind not in kinds:
        raise ValueError(f"port {port.name!r} is {port.kind.value}; this command needs "
                         f"{' or '.join(k.value for k in kinds)}")


def _word(port: PortInfo, value: int) -> bytes:
    if not 0 <= value < (1 << port.width):
        raise ValueError(f"value {value} does not fit port {port.name!r} of {port.width} bits "
                         f"(pass the raw two's complement bit pattern)")
    return value.to_bytes(port.nbytes, "little")


def encode_write(port: PortInfo, value: int) -> bytes:
    _check_port(port, (PortKind.IN_STREAM, PortKind.IN_REG))
    return bytes([Op.WRITE, port.index]) + _word(port, value)


def encode_pulse(port: PortInfo, value: int = 1) -> bytes:
    _check_port(port, (PortKind.IN_REG,))
    return bytes([Op.PULSE, port.index]) + _word(port, value)


def encode_read(port: PortInfo) -> bytes:
    return bytes([Op.READ, port.index])


def encode_level(port: PortInfo) -> bytes:
    _check_port(port, (PortKind.IN_STREAM, PortKind.OUT_STREAM))
    return bytes([Op.LEVEL, port.index])


def encode_simple(op: Op) -> bytes:
    if op not in (Op.GO, Op.HALT, Op.COUNTERS, Op.IDENTIFY):
        raise ValueError(f"{op!r} takes a port; use its own encoder")
    return bytes([op])


def decode_word(port: PortInfo, reply: bytes) -> int:
    if len(reply) != port.nbytes:
        raise ValueError(f"port {port.name!r} replies {port.nbytes} bytes, got {len(reply)}")
    return int.from_bytes(reply, "little") & ((1 << port.width) - 1)


@dataclasses.dataclass(frozen=True)
class Counters:
    cycles: int      # since 'G'
    first_in: int    # cycle (since 'G') of the first in-stream transfer into the design
    last_out: int    # cycle (since 'G') of the last out-stream transfer
    flags: frozenset

    @property
    def span(self) -> int:
        """First input transfer .. last output transfer, inclusive (``hw.array.timing``'s count)."""
        return self.last_out - self.first_in + 1


def decode_counters(reply: bytes) -> Counters:
    if len(reply) != COUNTERS_REPLY:
        raise ValueError(f"counters reply is {COUNTERS_REPLY} bytes, got {len(reply)}")
    words = [int.from_bytes(reply[i * COUNTER_BYTES:(i + 1) * COUNTER_BYTES], "little") for i in range(3)]
    flags = frozenset(name for i, name in enumerate(FLAG_BITS) if reply[-1] >> i & 1)
    return Counters(*words, flags)


class BoardClient:
    """Blocking client; ``ports`` is the manifest's port list (dicts) or ``PortInfo``s."""

    def __init__(self, transport, ports):
        self.transport = transport
        self.ports = ports_by_name(ports)

    def port(self, name: str) -> PortInfo:
        try:
            return self.ports[name]
        except KeyError:
            raise ValueError(f"no port {name!r}; ports: {', '.join(self.ports)}") from None

    def _read(self, n: int) -> bytes:
        data = self.transport.read(n)
        if len(data) != n:
            raise TimeoutError(f"expected {n} reply bytes, got {len(data)}")
        return data

    def identify(self) -> int:
        self.transport.write(encode_simple(Op.IDENTIFY))
        reply = self._read(len(MAGIC) + 1)
        if reply[:len(MAGIC)] != MAGIC:
            raise IOError(f"not an MLS board bridge: {reply!r}")
        return reply[-1]

    def write(self, name: str, value: int) -> None:
        self.transport.write(encode_write(self.port(name), value))

    def pulse(self, name: str, value: int = 1) -> None:
        self.transport.write(encode_pulse(self.port(name), value))

    def read(self, name: str) -> int:
        port = self.port(name)
        self.transport.write(encode_read(port))
        return decode_word(port, self._read(port.nbytes))

    def level(self, name: str) -> int:
        self.transport.write(encode_level(self.port(name)))
        return int.from_bytes(self._read(2), "little")

    def go(self) -> None:
        self.transport.write(encode_simple(Op.GO))

    def halt(self) -> None:
        self.transport.write(encode_simple(Op.HALT))

    def counters(self) -> Counters:
        self.transport.write(encode_simple(Op.COUNTERS))
        return decode_counters(self._read(COUNTERS_REPLY))
