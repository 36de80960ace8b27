"""The MLS processing element (DESIGN §3, §5) and its parts, each a ``wiring.Component``."""

from .accumulator import Accumulator
from .aligner import Aligner
from .exp_add import ExponentAdder
from .layout import element_layout, operand_layout
from .pe import MLSPE
from .sig_mul import SignificandMultiplier
from .signature import PESignature, control_layout

__all__ = ["MLSPE", "PESignature", "Accumulator", "Aligner", "ExponentAdder", "SignificandMultiplier",
           "control_layout", "element_layout", "operand_layout"]
