"""The one port signature of the quantization unit and of its convert pass.

``QuantUnit`` (both passes behind one input stream) and ``ConvertPass`` (the convert pass alone)
have the same streams and the same convert-pass controls, derived from one ``QuantUnitConfig``;
the unit adds the pass select ``mode`` and the amax pass's result ``amax``.
"""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.floats import FP32

from .config import QuantUnitConfig

__all__ = ["QuantSignature"]


class QuantSignature(wiring.Signature):
    """Ports of the quantization unit (``amax_pass=True``) or of its convert pass, seen from it.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(32, lanes)))
        FP32 bit patterns; lane k of word w is element ``w * lanes + k`` of the flattened tensor.
    o : Out(stream.Signature(ArrayLayout(1 + E + M, lanes)))
        Element codes ``s << (E+M) | e << M | m``, one per lane.
    g : Out(stream.Signature(G))
        One group exponent per group, in order.
    mode : In(1)
        Only with ``amax_pass``: 0 selects the amax pass, 1 the convert pass.
    start, stochastic : In(1); inv, seed : In(32)
        Convert-pass controls: restart (a one-cycle strobe between tensors), stochastic rounding,
        the FP32 inverse tensor scale, the LFSR seed.
    amax : Out(32)
        Only with ``amax_pass``: FP32 bits of the amax so far.
    invalid : Out(1)
        Sticky NaN/Inf (or product overflow) flag of the selected pass.
    """

    def __init__(self, config: QuantUnitConfig, *, amax_pass: bool):
        if not isinstance(config, QuantUnitConfig):
            raise TypeError(f"config must be a QuantUnitConfig, not {config!r}")
        self._config, self._amax_pass = config, bool(amax_pass)
        fmt, lanes, word = config.fmt, config.lanes, FP32.bits
        members = {
            "i": In(stream.Signature(data.ArrayLayout(word, lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(fmt.elem_bits, lanes))),
            "g": Out(stream.Signature(fmt.group_bits)),
        }
        if amax_pass:
            members["mode"] = In(1)
        members.update({"start": In(1), "stochastic": In(1), "inv": In(word), "seed": In(32)})
        if amax_pass:
            members["amax"] = Out(word)
        members["invalid"] = Out(1)
        super().__init__(members)

    @property
    def config(self) -> QuantUnitConfig:
        return self._config

    @property
    def amax_pass(self) -> bool:
        return self._amax_pass

    def __eq__(self, other):
        other = other.flip() if isinstance(other, wiring.FlippedSignature) else other
        return type(other) is type(self) and (self._config, self._amax_pass) == (other._config, other._amax_pass)

    def __repr__(self):
        return f"QuantSignature({self._config!r}, amax_pass={self._amax_pass})"
