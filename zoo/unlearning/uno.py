"""UNO: unlearning via gradient orthogonalisation (Mandal & Gottwald, arXiv 2506.04712), for a small VAE.

A trained generative model must stop generating one class (the *forget* data ``D_f``) while keeping
the rest (the *retain* data ``D_r``). With ``L_f`` and ``L_r`` the model's training loss (here the
VAE's negative ELBO) on a forget and a retain batch, and ``U`` a classifier term on samples decoded
from a fixed set of latent codes (below), the authors' reference code (``modules/mnist/vae_ortho.py``)
takes ``g_f = grad(L_f + lambda_u U)``, ``g_r = grad(L_r + lambda_u U)`` and descends

    L_UNO = w_f L_f + L_r + lambda_o * (g_f . g_r)^2 / (|g_f|^2 |g_r|^2) + lambda_u U         (UNO)

(:func:`uno_loss`; ``L_f``, ``L_r`` summed over the batch as in the authors' code; the orthogonality term is differentiated through the gradients, i.e. a
Hessian-vector product: :func:`flat_grad` with ``create_graph=True``). Minimising the squared cosine
makes the retain and forget gradients orthogonal, so descending the retain loss stops reinforcing
what the model shares with the forget data; the authors' defaults are ``w_f = 0``,
``lambda_o = 1e5``, ``lambda_u = 1e4``, KL weight 1.

The classifier term, in the authors' code ``uniformity_loss_surgery``, is the KL divergence of the
batch-mean class histogram ``p_bar`` of generated samples (softmax of a classifier) from the uniform
distribution ``u`` over the retained classes (``u_forget = 0``):

    U = sum_k p_bar_k log((p_bar_k + 1e-8) / (u_k + 1e-8))                                     (U)

(:func:`uniformity_loss`), so putting mass on the forget class costs about ``18 p_bar_forget``.

Baselines, with the same ``g_f``, ``g_r``:

* gradient surgery ("S" in the authors' code, after Bae et al. 2023 / PCGrad, Yu et al. 2020): descend
  along ``g_r - g_f (g_f . g_r) / |g_f|^2``, the retain gradient with its component along the forget
  gradient removed (:func:`surgery_direction`; the authors project at every step, PCGrad only when
  ``g_f . g_r < 0``: ``only_conflict``);
* retain-only descent: UNO with ``lambda_o = 0`` (``L_r + lambda_u U``), and plain fine-tuning on the
  retain data (``lambda_u = 0`` too).

Departures (see the spec): an MLP VAE on 8x8 digits instead of the paper's MNIST VAE; the classifier
inside ``U`` is a separately trained one, not the evaluation classifier (the paper uses the same
MNIST classifier for both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VAE",
    "UnlearnWeights",
    "flat_grad",
    "orthogonality",
    "retain_loss",
    "surgery_direction",
    "unlearn_step",
    "uniformity_loss",
    "uno_loss",
    "vae_loss",
    "METHODS",
]

METHODS = ("uno", "surgery", "retain", "finetune")


class VAE(nn.Module):
    """An MLP VAE with a Bernoulli decoder for pixels in [0, 1] and a standard normal prior.

    >>> vae = VAE(64, [32], 4)
    >>> x = torch.rand(5, 64)
    >>> tuple(vae(x)[0].shape), tuple(vae.decode(torch.zeros(3, 4)).shape)
    ((5, 64), (3, 64))
    """

    def __init__(self, dim: int, hidden: Sequence[int], latent: int) -> None:
        super().__init__()
        self.latent = int(latent)
        enc: list[nn.Module] = []
        a = dim
        for h in hidden:
            enc += [nn.Linear(a, h), nn.ReLU()]
            a = h
        self.encoder = nn.Sequential(*enc)
        self.to_stats = nn.Linear(a, 2 * self.latent)
        dec: list[nn.Module] = []
        a = self.latent
        for h in reversed(list(hidden)):
            dec += [nn.Linear(a, h), nn.ReLU()]
            a = h
        dec.append(nn.Linear(a, dim))
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(decoder logits, mu, logvar)`` with one reparameterised draw ``z = mu + exp(logvar/2) eps``."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device) if generator is not None else torch.randn_like(mu)
        return self.decoder(mu + (0.5 * logvar).exp() * eps), mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means ``sigmoid(decoder(z))`` in [0, 1]."""
        return torch.sigmoid(self.decoder(z))


def vae_loss(model: VAE, x: torch.Tensor, kl_weight: float = 1.0,
             generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """Negative ELBO: ``BCE summed over pixels + kl_weight * KL``, averaged (``mean``) or summed (``sum``) over the batch.

    ``KL(N(mu, sigma^2) || N(0, 1)) = -1/2 sum (1 + logvar - mu^2 - exp(logvar))``. The unlearning losses
    use ``sum``, as the authors' ``reconstruction_loss`` / ``kl_div`` do (it sets the scale of ``L_r``
    against ``lambda_o`` and ``lambda_u``).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    logits, mu, logvar = model(x, generator)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    n = x.shape[0] if reduction == "mean" else 1
    return (rec + kl_weight * kl) / n


def uniformity_loss(logits: torch.Tensor, forget_class: int) -> torch.Tensor:
    """Eq. (U): KL of the mean class histogram of ``logits`` from uniform over the classes except ``forget_class``."""
    p = torch.softmax(logits, dim=1).mean(0)
    k = p.shape[0]
    u = torch.full_like(p, 1.0 / (k - 1))
    u[forget_class] = 0.0
    return (p * torch.log((p + 1e-8) / (u + 1e-8))).sum()


def flat_grad(loss: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False) -> torch.Tensor:
    """``d loss / d params`` as one flat vector (kept differentiable when ``create_graph``)."""
    gs = torch.autograd.grad(loss, list(params), retain_graph=True, create_graph=create_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(gs, params)])


def orthogonality(g_f: torch.Tensor, g_r: torch.Tensor) -> torch.Tensor:
    """The squared cosine ``(g_f . g_r)^2 / (|g_f|^2 |g_r|^2)`` (0: orthogonal, 1: parallel)."""
    return (g_f @ g_r) ** 2 / ((g_f @ g_f) * (g_r @ g_r))


def surgery_direction(g_f: torch.Tensor, g_r: torch.Tensor, only_conflict: bool = False) -> torch.Tensor:
    """``g_r - g_f (g_f . g_r) / |g_f|^2``: the retain gradient without its forget-gradient component.

    ``only_conflict`` (PCGrad) projects only when ``g_f . g_r < 0``; the authors' surgery always does.
    """
    dot = g_f @ g_r
    if only_conflict and float(dot) >= 0:
        return g_r
    return g_r - g_f * dot / (g_f @ g_f)


@dataclass(frozen=True)
class UnlearnWeights:
    """The loss weights: ``kl`` (VAE KL), ``forget`` (w_f), ``orth`` (lambda_o), ``unif`` (lambda_u)."""

    kl: float = 1.0
    forget: float = 0.0
    orth: float = 1e5
    unif: float = 1e4


def retain_loss(model: VAE, x_r: torch.Tensor, z: torch.Tensor, identifier: nn.Module, forget_class: int,
                w: UnlearnWeights, generator: torch.Generator | None = None) -> torch.Tensor:
    """``L_r + lambda_u U``: what the retain-only arm descends."""
    loss = vae_loss(model, x_r, w.kl, generator, "sum")
    if w.unif:
        loss = loss + w.unif * uniformity_loss(identifier(model.decode(z)), forget_class)
    return loss


def uno_loss(model: VAE, x_r: torch.Tensor, x_f: torch.Tensor, z: torch.Tensor, identifier: nn.Module,
             forget_class: int, w: UnlearnWeights, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (UNO) and its orthogonality measure; the loss is differentiable through ``g_f``, ``g_r``."""
    params = [p for p in model.parameters() if p.requires_grad]
    l_f = vae_loss(model, x_f, w.kl, generator, "sum")
    l_r = vae_loss(model, x_r, w.kl, generator, "sum")
    unif = uniformity_loss(identifier(model.decode(z)), forget_class) if w.unif else l_r.new_zeros(())
    g_f = flat_grad(l_f + w.unif * unif, params, create_graph=True)
    g_r = flat_grad(l_r + w.unif * unif, params, create_graph=True)
    orth = orthogonality(g_f, g_r)
    return w.forget * l_f + l_r + w.orth * orth + w.unif * unif, orth


def unlearn_step(method: str, model: VAE, opt: torch.optim.Optimizer, x_r: torch.Tensor, x_f: torch.Tensor,
                 z: torch.Tensor, identifier: nn.Module, forget_class: int, w: UnlearnWeights,
                 generator: torch.Generator | None = None, only_conflict: bool = False) -> float:
    """One optimiser step of ``method`` (``uno``, ``surgery``, ``retain``, ``finetune``); returns the loss.

    ``retain`` is ``uno`` with ``orth = 0`` (``L_r + lambda_u U``), ``finetune`` the retain ELBO alone.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt.zero_grad(set_to_none=True)
    if method == "uno":
        loss, _ = uno_loss(model, x_r, x_f, z, identifier, forget_class, w, generator)
        loss.backward()
    elif method == "retain":
        loss = retain_loss(model, x_r, z, identifier, forget_class, w, generator)
        loss.backward()
    elif method == "finetune":
        loss = vae_loss(model, x_r, w.kl, generator, "sum")
        loss.backward()
    elif method == "surgery":
        l_f = vae_loss(model, x_f, w.kl, generator, "sum")
        l_r = vae_loss(model, x_r, w.kl, generator, "sum")
        unif = uniformity_loss(identifier(model.decode(z)), forget_class) if w.unif else l_r.new_zeros(())
        g_f = flat_grad(l_f + w.unif * unif, params)
        g_r = flat_grad(l_r + w.unif * unif, params)
        d = surgery_direction(g_f, g_r, only_conflict)
        i = 0
        for p in params:
            p.grad = d[i:i + p.numel()].view_as(p).clone()
            i += p.numel()
        loss = l_r + w.unif * unif
    else:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    opt.step()
    return float(loss.detach())
