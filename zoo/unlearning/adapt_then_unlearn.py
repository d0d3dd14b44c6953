"""Adapt-then-Unlearn (Tiwary, Guha, Panda & Prathosh, TMLR): unlearning a class from a pretrained GAN.

Two stages, starting from a pretrained generator ``G_theta_G`` and its discriminator:

1. **Negative adaptation.** A copy of the GAN is adapted, for a few steps, to a small set of
   user-supplied *negative* samples (those with the undesired feature), with the few-shot EWC
   regulariser of Li et al. (2020) that keeps it near the pretrained weights::

       L_adapt(theta) = L_adv(theta; negatives) + lambda_ewc * sum_i F_i (theta_i - theta_G,i)^2,
       F_i = E_z[(d log D(G_theta_G(z)) / d theta_i)^2]        (diagonal Fisher at theta_G)

   giving ``theta_N``; the direction ``theta_N - theta_G`` is the parameter-space direction
   toward the undesired feature.

2. **Unlearning.** The ORIGINAL GAN is trained on *positive* samples with a repulsion regulariser
   that pushes its parameters away from ``theta_N``::

       L(theta) = L_adv(theta; positives) + gamma * L_repulsion(theta),   d^2 = ||theta - theta_N||^2
       IL2 (inverse):      L_repulsion = 1 / d^2
       NL2 (negative):     L_repulsion = -d^2
       EL2 (exponential):  L_repulsion = exp(-alpha d^2)

   The authors' code (``Unlearning_MNIST/train_different_losses.py``, ``calc_difference_param_new``)
   measures ``d^2`` as the mean over parameter tensors of each tensor's mean squared difference, and
   uses ``1 / (gamma d^2)``, ``-gamma d^2`` and ``100 exp(-gamma d^2)``.

Here :func:`param_sq_distance` is that per-tensor-mean distance, optionally divided by a reference
``d0^2`` (:func:`repulsion_loss`'s ``scale``): we normalise by the distance at the start of stage 2,
``||theta_G - theta_N||^2``, so one ``gamma`` / ``alpha`` means the same for any network size
(a departure: the authors pick their scale per model, or rescale by a power of ten).

>>> import torch
>>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
>>> with torch.no_grad():
...     _ = a.weight.fill_(1.0); _ = a.bias.fill_(0.0); _ = b.weight.fill_(0.0); _ = b.bias.fill_(0.0)
>>> round(float(param_sq_distance(a, snapshot(b))), 3)   # (mean(1, 1) + mean(0)) / 2 tensors
0.5
>>> round(float(repulsion_loss(param_sq_distance(a, snapshot(b)), "el2", alpha=2.0)), 4)
0.3679
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "REPULSIONS",
    "snapshot",
    "param_sq_distance",
    "repulsion_loss",
    "ewc_fisher",
    "ewc_penalty",
    "d_loss",
    "g_loss",
    "gan_step",
]

REPULSIONS = ("el2", "nl2", "il2")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of a model's parameters (a fixed anchor such as ``theta_N`` or ``theta_G``)."""
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def param_sq_distance(model: nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """``d^2``: mean over parameter tensors of ``mean((theta - anchor)^2)`` (differentiable in ``theta``)."""
    terms = [(p - anchor[k]).pow(2).mean() for k, p in model.named_parameters()]
    return torch.stack(terms).mean()


def repulsion_loss(d2: torch.Tensor, kind: str, alpha: float = 1.0, scale: float = 1.0,
                   eps: float = 1e-12) -> torch.Tensor:
    """The paper's repulsion term of ``d2 / scale``: ``el2`` exp(-alpha d^2), ``nl2`` -d^2, ``il2`` 1/d^2."""
    d = d2 / scale
    if kind == "el2":
        return torch.exp(-alpha * d)
    if kind == "nl2":
        return -d
    if kind == "il2":
        return 1.0 / (d + eps)
    raise ValueError(f"unknown repulsion {kind!r}; use one of {REPULSIONS}")


def d_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN discriminator loss (StyleGAN2's ``d_logistic_loss``)."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def g_loss(fake_logit: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(-D(G(z)))``."""
    return F.softplus(-fake_logit).mean()


def ewc_fisher(gen: nn.Module, disc: nn.Module, latent: Callable[[int], torch.Tensor],
               batches: int = 4, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Diagonal Fisher ``F_i = E[(d log sigmoid D(G(z)) / d theta_i)^2]`` of the generator (Li et al. 2020)."""
    fisher = {k: torch.zeros_like(p) for k, p in gen.named_parameters()}
    params = dict(gen.named_parameters())
    for _ in range(batches):
        ll = F.logsigmoid(disc(gen(latent(batch_size)))).mean()
        grads = torch.autograd.grad(ll, list(params.values()))
        for (k, _p), g in zip(params.items(), grads):
            fisher[k] += g.detach().pow(2) / batches
    return fisher


def ewc_penalty(model: nn.Module, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor]) -> torch.Tensor:
    """``sum_i F_i (theta_i - anchor_i)^2``."""
    return sum(((p - anchor[k]).pow(2) * fisher[k]).sum() for k, p in model.named_parameters())  # type: ignore[return-value]


def gan_step(gen: nn.Module, disc: nn.Module, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
             real: torch.Tensor, latent: Callable[[int], torch.Tensor],
             g_reg: Callable[[], torch.Tensor] | None = None) -> dict[str, float]:
    """One alternating D / G update on a real batch; ``g_reg()`` (a regulariser of G's parameters) is
    added to the generator loss: the EWC penalty in stage 1, ``gamma * L_repulsion`` in stage 2."""
    n = real.shape[0]
    d_opt.zero_grad()
    with torch.no_grad():
        fake = gen(latent(n))
    ld = d_loss(disc(real), disc(fake))
    ld.backward()
    d_opt.step()
    g_opt.zero_grad()
    for p in disc.parameters():
        p.requires_grad_(False)
    lg = g_loss(disc(gen(latent(n))))
    reg = g_reg() if g_reg is not None else torch.zeros((), device=real.device)
    (lg + reg).backward()
    for p in disc.parameters():
        p.requires_grad_(True)
    g_opt.step()
    return {"d": float(ld.detach()), "g": float(lg.detach()), "reg": float(reg.detach())}


