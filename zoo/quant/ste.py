r"""The straight-through estimator (Bengio et al., 2013): round in the forward pass, identity backward.

.. math:: \operatorname{round}_{\text{STE}}(x) = x + \operatorname{sg}[\operatorname{round}(x) - x],
          \qquad \frac{\partial \operatorname{round}_{\text{STE}}(x)}{\partial x} = 1,

where :math:`\operatorname{sg}` stops the gradient. The forward value is exactly ``round(x)``.
"""

from __future__ import annotations

import torch

__all__ = ["round_ste"]


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` whose gradient is the identity."""
    return x + (torch.round(x) - x).detach()
