"""Virtual adversarial training (Miyato, Maeda, Koyama & Ishii, TPAMI 2018).

Paper: "Virtual Adversarial Training: A Regularization Method for Supervised and Semi-Supervised
Learning", https://arxiv.org/abs/1704.03976 (official code: github.com/takerum/vat_tf).

VAT penalises the local distributional sensitivity of the model: for each input ``x`` (labelled
or not), with the current parameters held constant (``theta_hat``)::

    r_adv = argmax_{||r||_2 <= eps} KL( p(y | x, theta_hat) || p(y | x + r, theta_hat) )   (eq. 5)
    LDS(x, theta) = KL( p(y | x, theta_hat) || p(y | x + r_adv, theta) )                   (eq. 6)
    loss = NLL(labelled) + alpha * mean_x LDS(x, theta)      (x over labelled + unlabelled; eq. 7)

``r_adv`` is approximated by power iteration on the Hessian of the KL at ``r = 0`` (eqs. 9-13):
draw a random unit vector ``d``, take the gradient of the KL at ``r = xi * d`` (a finite
difference with ``xi`` small), ``d <- normalise(g)``; after ``K`` iterations (``K = 1`` in the
paper) ``r_adv = eps * d``. No label is used, so the penalty applies to unlabelled inputs.
VAT + EntMin (section 4.1.3) adds the conditional entropy ``H(p(y | x, theta))`` of the inputs.

Notation: ``xi`` = finite-difference step, ``eps`` = the perturbation's L2 norm (per example,
over all non-batch dimensions), ``n_power`` = ``K``, ``alpha`` = the LDS weight.

As in the official code: the clean distribution is a constant (``stop_gradient``), ``d`` is
normalised per example by its max-abs and then its L2 norm (for numerical safety), and the KL is
averaged over the batch. The model is called in whatever mode it is in (the official code keeps
dropout on and batch-norm statistics frozen on the perturbed passes; our MLPs have neither).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> x = torch.rand(5, 4)
    >>> r = vat_perturbation(net, x, eps=2.0)
    >>> bool(torch.allclose(r.flatten(1).norm(dim=1), torch.full((5,), 2.0), atol=1e-4))
    True
    >>> float(lds(net, x, eps=2.0)) >= 0.0
    True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["normalise", "kl_with_logits", "vat_perturbation", "lds", "conditional_entropy", "VATLoss"]


def normalise(d: torch.Tensor) -> torch.Tensor:
    """``d`` scaled to unit L2 norm per example (over all non-batch dims), max-abs scaled first."""
    dims = tuple(range(1, d.dim()))
    d = d / (1e-12 + d.abs().amax(dim=dims, keepdim=True))
    return d / torch.sqrt(1e-6 + d.pow(2).sum(dim=dims, keepdim=True))


def kl_with_logits(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(softmax(p_logits) || softmax(q_logits))`` (class dim last)."""
    p_log = F.log_softmax(p_logits, dim=-1)
    q_log = F.log_softmax(q_logits, dim=-1)
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


def vat_perturbation(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
                     xi: float = 1e-6, n_power: int = 1, logits: torch.Tensor | None = None,
                     d: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The virtual adversarial perturbation ``r_adv`` of ``x`` (detached, same shape, L2 norm ``eps`` each).

    Args:
        model: maps inputs to logits.
        x: the inputs (batch first).
        eps: the perturbation's L2 norm per example.
        xi: the finite-difference step of the power iteration.
        n_power: power iterations ``K`` (the paper: 1).
        logits: ``model(x)`` if already computed (used as a constant).
        d: the initial random direction (default: standard normal, from ``generator`` if given).
    """
    if n_power < 1:
        raise ValueError(f"n_power must be >= 1, got {n_power}")
    x = x.detach()
    with torch.no_grad():
        p_logits = (model(x) if logits is None else logits).detach()
    if d is None:
        d = torch.randn(x.shape, generator=generator, device="cpu" if generator is not None else x.device,
                        dtype=x.dtype).to(x.device)
    for _ in range(n_power):
        r = (xi * normalise(d)).requires_grad_(True)
        dist = kl_with_logits(p_logits, model(x + r))
        (g,) = torch.autograd.grad(dist, r)
        d = g.detach()  # power iteration step: d <- H d (the gradient at xi d is xi H d + O(xi^2))
    return eps * normalise(d)


def lds(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, xi: float = 1e-6,
        n_power: int = 1, logits: torch.Tensor | None = None, d: torch.Tensor | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """The virtual adversarial loss: mean over ``x`` of ``KL(p(y|x) || p(y|x + r_adv))`` (eq. 6).

    Differentiable in the model's parameters through the perturbed branch only; the clean
    distribution ``p(y|x)`` is a constant.
    """
    r = vat_perturbation(model, x, eps, xi=xi, n_power=n_power, logits=logits, d=d, generator=generator)
    p_logits = (model(x) if logits is None else logits).detach()
    return kl_with_logits(p_logits, model(x.detach() + r))


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``H(p(y|x)) = -sum_y p log p`` (the EntMin term; gradient flows)."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


class VATLoss(nn.Module):
    """``alpha * LDS(x) (+ entmin * H(p(y|x)))`` of a model on inputs ``x``: add it to the supervised loss.

    Args:
        eps: the perturbation norm.
        xi: the finite-difference step (paper: 1e-6).
        n_power: power iterations (paper: 1).
        alpha: weight of the LDS term (paper: 1).
        entmin: weight of the conditional-entropy term (0: plain VAT; 1: VAT + EntMin).
    """

    def __init__(self, eps: float, xi: float = 1e-6, n_power: int = 1, alpha: float = 1.0, entmin: float = 0.0) -> None:
        super().__init__()
        self.eps, self.xi, self.n_power, self.alpha, self.entmin = eps, xi, n_power, alpha, entmin

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        logits = model(x)
        out = self.alpha * lds(model, x, self.eps, self.xi, self.n_power, logits=logits, generator=generator)
        if self.entmin:
            out = out + self.entmin * conditional_entropy(logits)
        return out
