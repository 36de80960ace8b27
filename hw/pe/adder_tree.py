"""Exact pipelined adder tree: the sum of ``lanes`` signed values, every node exactly wide enough."""

from __future__ import annotations

import operator

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AdderTree"]


def _check_count(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    value = operator.index(value)
    if value < low or (high is not None and value > high):
        limit = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {limit}, got {value}")
    return value


class AdderTree(wiring.Component):
    """``sum = inputs[0] + ... + inputs[lanes - 1]``, exact, for any ``lanes >= 1``.

    Every input lies in ``[-max_magnitude, max_magnitude]`` (the lane products of
    ``ElementAligner`` do). Level ``d`` adds neighbouring pairs of level ``d - 1``; an odd node
    out passes to the next level unchanged, so the depth is ``ceil(log2(lanes))``. A node that
    covers ``n`` inputs is ``1 + bit_length(n * max_magnitude)`` bits wide, so no bit is wasted
    and none is lost: the output is ``sum_bits = 1 + bit_length(lanes * max_magnitude)``.

    A register follows every ``levels_per_stage`` levels and the last level, so
    ``latency = ceil(depth / levels_per_stage)`` cycles (0 for one lane: the input passes through).
    The registers load every cycle; whoever drives the tree delays its control by ``latency``.

    Members
    -------
    inputs : In(ArrayLayout(signed(in_bits), lanes))
        ``in_bits = 1 + bit_length(max_magnitude)``.
    sum : Out(signed(sum_bits))
    """

    MAX_LANES = 1024

    def __init__(self, lanes: int, max_magnitude: int, levels_per_stage: int = 2):
        self._MustUse__silence = True  # no UnusedElaboratable warning when validation raises
        self._lanes = _check_count("lanes", lanes, 1, self.MAX_LANES)
        self._max_magnitude = _check_count("max_magnitude", max_magnitude, 1)
        self._levels_per_stage = _check_count("levels_per_stage", levels_per_stage, 1)
        super().__init__({
            "inputs": In(data.ArrayLayout(signed(self.in_bits), self._lanes)),
            "sum": Out(signed(self.sum_bits)),
        })
        del self._MustUse__silence

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def max_magnitude(self) -> int:
        return self._max_magnitude

    @property
    def levels_per_stage(self) -> int:
        return self._levels_per_stage

    def node_bits(self, leaves: int) -> int:
        """Width of a node that sums ``leaves`` inputs."""
        return 1 + (leaves * self._max_magnitude).bit_length()

    @property
    def in_bits(self) -> int:
        return self.node_bits(1)

    @property
    def sum_bits(self) -> int:
        return self.node_bits(self._lanes)

    @staticmethod
    def depth_for(lanes: int) -> int:
        """Adder levels of a tree of ``lanes`` inputs, ``ceil(log2(lanes))``."""
        return (lanes - 1).bit_length()

    @staticmethod
    def latency_for(lanes: int, levels_per_stage: int) -> int:
        """Register stages of a tree of ``lanes`` inputs: ``ceil(depth / levels_per_stage)``."""
        return -(-AdderTree.depth_for(lanes) // levels_per_stage)

    @property
    def depth(self) -> int:
        return self.depth_for(self._lanes)

    @property
    def latency(self) -> int:
        """Register stages from ``inputs`` to ``sum``."""
        return self.latency_for(self._lanes, self._levels_per_stage)

    def elaborate(self, platform):
        m = Module()
        # (value, number of inputs it covers) per node of the current level
        nodes = [(self.inputs[lane], 1) for lane in range(self._lanes)]
        for level in range(1, self.depth + 1):
            domain = "sync" if level % self._levels_per_stage == 0 or level == self.depth else "comb"
            next_nodes = []
            for index in range(0, len(nodes), 2):
                pair = nodes[index:index + 2]
                leaves = sum(n for _, n in pair)
                node = Signal(signed(self.node_bits(leaves)), name=f"l{level}_n{index // 2}")
                total = pair[0][0] + pair[1][0] if len(pair) == 2 else pair[0][0]
                m.d[domain] += node.eq(total)
                next_nodes.append((node, leaves))
            nodes = next_nodes
        m.d.comb += self.sum.eq(nodes[0][0])
        return m
