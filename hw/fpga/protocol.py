"""The host protocol of the board wrapper: opcodes and the port table, shared by RTL and host.

Every command is one opcode byte, most followed by a port index byte. Words travel
little-endian in ``ceil(width / 8)`` bytes. The device answers only the read commands.

====  =====================  ==========================================================
byte  command                effect
====  =====================  ==========================================================
'W'   W port data...         in-stream port: push the word into its FIFO (dropped and the
                             ``drop`` flag set when full); in-register port: set its level
'P'   P port data...         in-register port: drive the value for exactly one clock cycle
                             (a strobe), then return to the level last set by 'W'
'R'   R port  -> data...     out-stream port: pop a word (zeros when empty); register ports:
                             the current value
'L'   L port  -> 2 bytes     stream port: words waiting in its FIFO
'G'   G                      run: in-stream FIFOs feed the design; cycle counters restart
'H'   H                      halt: in-stream FIFOs stop feeding (out-streams still capture; the
                             register slice in front of each in-stream may still pass its word)
'C'   C       -> 13 bytes    cycles since 'G' (4), cycle of the first in-stream transfer
                             into the design (4) and of the last out-stream transfer (4), both
                             counted from 'G', flags (1): bit0 drop, bit1 out-FIFO overflow,
                             bit2 bad port index, bit3 UART overrun, bit4 UART framing
'I'   I       -> 4 bytes     ``b"MLS"`` and the number of ports
====  =====================  ==========================================================

Unknown opcodes are ignored, so a host can resynchronize by sending a few 'I' commands.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["Op", "PortKind", "PortInfo", "MAGIC", "FLAG_BITS", "COUNTER_BYTES", "COUNTERS_REPLY", "word_bytes"]

MAGIC = b"MLS"
COUNTER_BYTES = 4
COUNTERS_REPLY = 3 * COUNTER_BYTES + 1
FLAG_BITS = ("drop", "out_overflow", "bad_port", "uart_overrun", "uart_framing")


class Op(enum.IntEnum):
    WRITE = ord("W")
    PULSE = ord("P")
    READ = ord("R")
    LEVEL = ord("L")
    GO = ord("G")
    HALT = ord("H")
    COUNTERS = ord("C")
    IDENTIFY = ord("I")


class PortKind(str, enum.Enum):
    IN_STREAM = "in_stream"
    OUT_STREAM = "out_stream"
    IN_REG = "in_reg"
    OUT_REG = "out_reg"


def word_bytes(width: int) -> int:
    return max(1, (width + 7) // 8)


@dataclasses.dataclass(frozen=True)
class PortInfo:
    """One host-visible port of the wrapped design (index = position in the port table)."""

    index: int
    name: str      # member path joined with "__", as in the emitted Verilog
    kind: PortKind
    width: int

    @property
    def nbytes(self) -> int:
        return word_bytes(self.width)

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "kind": self.kind.value, "width": self.width,
                "bytes": self.nbytes}
