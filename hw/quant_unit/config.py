"""Configuration of the quantization unit: a frozen dataclass validated up front."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from model.formats import MLSFormat
from model.random_bits import DEFAULT_SR_BITS, MAX_SR_BITS

__all__ = ["QuantUnitConfig", "MAX_LANES", "MAX_GROUP_LEN"]

MAX_LANES = 64
MAX_GROUP_LEN = 1 << 16


def _index(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


@dataclass(frozen=True)
class QuantUnitConfig:
    """``fmt``: element format (G >= 1); ``lanes``: elements per cycle; ``group_len``: elements
    sharing one group exponent, consecutive in the input stream (a multiple of ``lanes``);
    ``sr_bits``: random bits R per element for stochastic rounding."""

    fmt: MLSFormat
    lanes: int = 4
    group_len: int = 16
    sr_bits: int = DEFAULT_SR_BITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "fmt", MLSFormat.parse(self.fmt))
        if self.fmt.group_bits < 1:
            raise ValueError(f"the quantization unit needs group_bits >= 1, got {self.fmt} (G = 0)")
        _index("lanes", self.lanes, 1, MAX_LANES)
        _index("group_len", self.group_len, 1, MAX_GROUP_LEN)
        _index("sr_bits", self.sr_bits, 1, MAX_SR_BITS)
        if self.group_len % self.lanes:
            raise ValueError(f"group_len {self.group_len} must be a multiple of lanes {self.lanes}")

    @property
    def words_per_group(self) -> int:
        return self.group_len // self.lanes

    def __str__(self) -> str:
        return f"{self.fmt}_l{self.lanes}_n{self.group_len}_r{self.sr_bits}"
