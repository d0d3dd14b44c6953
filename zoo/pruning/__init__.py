"""Pruning and sparsity: PDP and its baselines, as ``torch.nn.utils.parametrize`` masks."""

from zoo.pruning.magnitude import GradualMagnitudePruning, MagnitudeMask, cubic_sparsity, harden_magnitude
from zoo.pruning.pdp import PDP, PDPMask, PDPSchedule, global_allocation, harden, pdp_mask, pdp_threshold
from zoo.pruning.structure import NM, Channel, Unstructured, hard_mask, parse_structure, sparsity_of

__all__ = [
    "PDP", "PDPMask", "PDPSchedule", "pdp_mask", "pdp_threshold", "global_allocation", "harden",
    "GradualMagnitudePruning", "MagnitudeMask", "cubic_sparsity", "harden_magnitude",
    "NM", "Channel", "Unstructured", "hard_mask", "parse_structure", "sparsity_of",
]
