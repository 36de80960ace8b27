"""The MLS PE (docs/numerics.md §3, docs/hardware.md) and its parts, each a ``wiring.Component``."""

from .accumulator import Accumulator
from .adder_tree import AdderTree
from .aligner import Aligner
from .dot_pe import MLSDotPE, MLSDotPEFactory
from .elem_aligner import ElementAligner
from .exp_add import ExponentAdder
from .group_shifter import GroupShifter
from .layout import beat_layout, element_layout, operand_layout
from .pe import MLSPE, MLSPEFactory
from .sig_mul import SignificandMultiplier
from .signature import PEFactory, PESignature, control_layout

__all__ = ["MLSPE", "MLSPEFactory", "PESignature", "PEFactory", "Accumulator", "Aligner", "ExponentAdder",
           "SignificandMultiplier", "control_layout", "element_layout", "operand_layout",
           "MLSDotPE", "MLSDotPEFactory", "AdderTree", "ElementAligner", "GroupShifter", "beat_layout"]
