"""MixUp (Zhang, Cisse, Dauphin & Lopez-Paz, ICLR 2018): train on convex combinations of example pairs.

Paper: "mixup: Beyond Empirical Risk Minimization", https://arxiv.org/abs/1710.09412.

For a batch ``(x, y)`` and a permutation ``j`` of it::

    lam ~ Beta(alpha, alpha)
    x_mix = lam * x + (1 - lam) * x[j]
    loss  = lam * CE(f(x_mix), y) + (1 - lam) * CE(f(x_mix), y[j])

which is the cross-entropy against the mixed one-hot target ``lam * e_y + (1 - lam) * e_{y[j]}``.
The paper draws one ``lam`` per batch; :func:`mix` also takes one per example (a tensor of shape
``(N,)``), which AdaMixUp (:mod:`zoo.regularizers.adamixup`) uses.

Example:
    >>> import torch
    >>> x, y = torch.rand(4, 3), torch.tensor([0, 1, 2, 1])
    >>> lam, perm = torch.tensor(0.25), torch.tensor([1, 0, 3, 2])
    >>> x_mix = mix(x, lam, perm)
    >>> bool(torch.allclose(x_mix[0], 0.25 * x[0] + 0.75 * x[1]))
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_lambda", "mix", "mixup_cross_entropy", "mixup_loss"]


def sample_lambda(alpha: float, generator: torch.Generator | None = None, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """``lam ~ Beta(alpha, alpha)`` (``alpha = 1``: uniform on [0, 1]), drawn on the CPU from ``generator``."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    # Beta(a, a) as G1 / (G1 + G2) with Gamma(a) draws: torch's Beta sampler takes no generator.
    a = torch.full((2, *shape), float(alpha), dtype=torch.float64)
    g = torch._standard_gamma(a, generator=generator) if generator is not None else torch._standard_gamma(a)
    return (g[0] / (g[0] + g[1]).clamp_min(1e-300)).float()


def _expand(lam: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    lam = torch.as_tensor(lam, dtype=like.dtype, device=like.device)
    return lam.reshape(-1, *([1] * (like.dim() - 1))) if lam.dim() == 1 else lam


def mix(x: torch.Tensor, lam: torch.Tensor | float, perm: torch.Tensor) -> torch.Tensor:
    """``lam * x + (1 - lam) * x[perm]``; ``lam`` a scalar or one value per example."""
    lam_t = _expand(torch.as_tensor(lam), x)
    return lam_t * x + (1 - lam_t) * x[perm]


def mixup_cross_entropy(logits: torch.Tensor, y: torch.Tensor, y_perm: torch.Tensor,
                        lam: torch.Tensor | float) -> torch.Tensor:
    """Mean of ``lam * CE(logits, y) + (1 - lam) * CE(logits, y_perm)`` (``lam`` scalar or per example)."""
    lam_t = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device)
    a = F.cross_entropy(logits, y, reduction="none")
    b = F.cross_entropy(logits, y_perm, reduction="none")
    return (lam_t * a + (1 - lam_t) * b).mean()


def mixup_loss(model, x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0,
               generator: torch.Generator | None = None, per_example: bool = False) -> torch.Tensor:
    """The MixUp training loss of ``model`` on a batch: one random pairing per call, and one ``lam``
    per batch (the paper) or, with ``per_example``, one per pair (as the AdaMixUp authors' MixUp baseline)."""
    lam = sample_lambda(alpha, generator, (x.shape[0],) if per_example else ())
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return mixup_cross_entropy(model(mix(x, lam, perm)), y, y[perm], lam.to(x.device))
