"""The dynamic quantization unit: amax pass + convert pass behind one input stream."""

from amaranth import Module, Mux
from amaranth.lib import wiring

from .amax import AmaxPass
from .config import QuantUnitConfig
from .convert import ConvertPass
from .signature import QuantSignature

__all__ = ["QuantUnit"]


class QuantUnit(wiring.Component):
    """FP32 tensor -> MLS tensor (docs/numerics.md §2) in two passes over the same input stream.

    1. ``mode = 0`` (amax pass): pulse ``start``, stream the tensor; read ``amax``/``invalid``.
    2. Host: ``S_t, inv = model.quantize.tensor_scale(amax, fmt)`` (two IEEE divisions; the unit
       has no divider). Set ``inv``, ``stochastic``, ``seed``.
    3. ``mode = 1`` (convert pass): pulse ``start``, stream the tensor again; collect the codes
       on ``o`` and the group exponents on ``g``. The packed tensor is
       ``fp32_le(S_t) | pack(g stream) | concatenated o payloads`` (``model.quant_stream``).

    ``mode`` must not change while elements are in flight. ``start`` clears the selected pass.

    Members
    -------
    ``QuantSignature(config, amax_pass=True)`` (``hw/quant_unit/signature.py``, shared with
    ``ConvertPass``):
    i : In(stream.Signature(ArrayLayout(32, lanes)))
    o : Out(stream.Signature(ArrayLayout(1 + E + M, lanes)))
    g : Out(stream.Signature(G))
    mode, start, stochastic : In(1)
    inv, seed : In(32)
    amax : Out(32)
    invalid : Out(1)
        The selected pass's sticky flag: NaN/Inf seen (both passes) or a product overflowed
        (convert pass, a wrong ``inv``). Cleared by that pass's ``start``.
    """

    def __init__(self, config: QuantUnitConfig):
        self._config = config
        super().__init__(QuantSignature(config, amax_pass=True))

    @property
    def config(self) -> QuantUnitConfig:
        return self._config

    @property
    def amax_latency(self) -> int:
        return AmaxPass.LATENCY

    @property
    def latency(self) -> int:
        """Convert pass: cycles from a group's first input transfer to its first output word."""
        return ConvertPass.latency_for(self._config)

    @property
    def throughput(self) -> int:
        """Elements per cycle in both passes at steady state."""
        return self._config.lanes

    def elaborate(self, platform):
        m = Module()
        m.submodules.amax_pass = amax = AmaxPass(self._config.lanes)
        m.submodules.convert = conv = ConvertPass(self._config)
        m.d.comb += [
            amax.i.payload.eq(self.i.payload),
            amax.i.valid.eq(self.i.valid & ~self.mode),
            amax.clear.eq(self.start & ~self.mode),
            conv.i.payload.eq(self.i.payload),
            conv.i.valid.eq(self.i.valid & self.mode),
            self.i.ready.eq(Mux(self.mode, conv.i.ready, 1)),
            conv.inv.eq(self.inv),
            conv.seed.eq(self.seed),
            conv.stochastic.eq(self.stochastic),
            conv.start.eq(self.start & self.mode),
            self.amax.eq(amax.amax),
            self.invalid.eq(Mux(self.mode, conv.invalid, amax.invalid)),
        ]
        wiring.connect(m, conv.o, wiring.flipped(self.o))
        wiring.connect(m, conv.g, wiring.flipped(self.g))
        return m
