"""Pruning and sparsity: PDP and its baselines, as ``torch.nn.utils.parametrize`` masks."""

from zoo.pruning.magnitude import GradualMagnitudePruning, MagnitudeMask, cubic_sparsity, harden_magnitude
from zoo.pruning.pdp import PDP, PDPMask, PDPSchedule, harden, pdp_mask, pdp_threshold
from zoo.pruning.structure import (
    NM,
    Channel,
    Unstructured,
    global_allocation,
    hard_mask,
    hard_mask_at,
    nm_pruned_per_group,
    parse_structure,
    prunable,
    sparsity_of,
)

__all__ = [
    "PDP", "PDPMask", "PDPSchedule", "pdp_mask", "pdp_threshold", "global_allocation", "harden",
    "GradualMagnitudePruning", "MagnitudeMask", "cubic_sparsity", "harden_magnitude",
    "NM", "Channel", "Unstructured", "hard_mask", "hard_mask_at", "nm_pruned_per_group", "parse_structure",
    "sparsity_of", "prunable",
]
