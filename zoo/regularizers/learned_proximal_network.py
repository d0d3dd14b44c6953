"""Learned proximal networks (Fang, Buchanan & Sulam, ICLR 2024).

"What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan and
Jeremias Sulam, ICLR 2024, https://arxiv.org/abs/2310.14344 ; authors' code (MIT licence):
https://github.com/Sulam-Group/learned-proximal-networks (``exps/laplacian/network.py``, ``utils.py``).

A map ``f`` is the proximal operator of *some* (possibly nonconvex) function ``R``,

.. math::

    f(y) \\in \\operatorname{prox}_R(y) = \\arg\\min_x \\tfrac12\\lVert y - x\\rVert^2 + R(x),

if and only if ``f = ∇ψ`` for a convex ``ψ`` (Gribonval & Nikolova; the paper's Prop. 1). A
learned proximal network (LPN) is therefore the gradient of an input-convex neural network (ICNN)

.. math::

    z_1 = g(H_1 y + b_1),\\quad z_{k+1} = g(W_k z_k + H_{k+1} y + b_{k+1}),\\quad
    \\psi_\\theta(y) = w^\\top z_K + h^\\top y + b + \\tfrac{\\alpha}{2}\\lVert y\\rVert^2,

with the weights ``W_k`` and ``w`` acting on the hidden state kept non-negative (projected after each
optimiser step, as the authors' ``wclip``), ``g`` convex and non-decreasing (softplus with
sharpness ``beta``), so ``ψ_θ`` is convex and ``f_θ = ∇ψ_θ`` (autograd, ``create_graph=True``) is
exactly a proximal operator. ``α > 0`` makes ``ψ`` strongly convex, hence ``f`` invertible.

**Recovering the regulariser** (the paper's Sec. 3.1, Prop. 2): for ``x = f_θ(y)``,

.. math::

    R_\\theta(x) = \\langle x, y\\rangle - \\tfrac12\\lVert x\\rVert^2 - \\psi_\\theta(y)
                 = \\psi_\\theta^*(x) - \\tfrac12\\lVert x\\rVert^2 ,

where ``y = f_θ^{-1}(x)`` solves the convex problem ``min_y ψ_θ(y) - <x, y>`` (whose optimality
condition is ``f_θ(y) = x``); :func:`invert` solves it by gradient descent (Adam) on that objective,
:func:`regularizer` evaluates ``R_θ``. (The authors' notebook minimises ``||f(y) - x||²`` instead;
both give the same ``y`` where ``f`` is invertible.)

**Proximal matching** (the paper's Def. 3.2 / Thm. 3.3): to make ``f_θ`` the MAP denoiser
``prox_{-σ² log p}`` rather than the MMSE denoiser ``E[x | y]`` that the squared loss learns (or the
posterior median the ``ℓ1`` loss learns), train on pairs ``(x, y = x + σ ε)`` with

.. math::

    \\ell_{PM}(x, y; \\gamma) = 1 - \\exp\\bigl(-\\lVert f_\\theta(y) - x\\rVert_2^2 / \\gamma^2\\bigr)

and let ``γ → 0`` over training (:class:`ProximalMatchingLoss`, a piecewise-constant schedule). The
paper normalises the Gaussian bump by ``(πγ²)^{n/2}``; like the authors' code we drop that constant
(it only rescales the loss, and Adam is invariant to the scale). As ``γ → 0`` the minimiser is the
posterior mode, so ``R_θ → -σ² log p_x`` up to a constant: on Laplacian data ``p(x) ∝ e^{-|x|/b}``
with noise ``σ`` the target is soft-thresholding at ``σ²/b`` (:func:`soft_threshold`) and
``R(x) = σ²|x|/b``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LearnedProximalNetwork",
    "ProximalMatchingLoss",
    "proximal_matching_loss",
    "pointwise_loss",
    "invert",
    "regularizer",
    "soft_threshold",
]


class LearnedProximalNetwork(nn.Module):
    """``f_θ = ∇ψ_θ`` for an input-convex MLP ``ψ_θ`` (the authors' 1-D/2-D LPN).

    Args:
        dim: data dimension ``n``.
        hidden: width of every hidden layer.
        layers: number of hidden-to-hidden layers ``W_k`` (the authors' ``layers``; 4 in the toy).
        beta: softplus sharpness (10 in the toy: close to ReLU, still smooth so ``f`` is continuous).
        alpha: strong-convexity weight ``α`` added as ``α/2 ||y||²`` to ``ψ`` (0 in the toy).
    """

    def __init__(self, dim: int, hidden: int = 50, layers: int = 4, beta: float = 10.0, alpha: float = 0.0) -> None:
        super().__init__()
        self.dim, self.alpha = dim, float(alpha)
        # lin[0] = H_1 (unconstrained, acts on the input); lin[1:] = W_k and w (non-negative).
        self.lin = nn.ModuleList(
            [nn.Linear(dim, hidden, bias=False)]
            + [nn.Linear(hidden, hidden, bias=False) for _ in range(layers)]
            + [nn.Linear(hidden, 1, bias=False)]
        )
        # Skip connections from the input: H_{k+1} y + b_{k+1} and h^T y + b.
        self.res = nn.ModuleList([nn.Linear(dim, hidden) for _ in range(layers)] + [nn.Linear(dim, 1)])
        self.beta = float(beta)
        self.project()  # default init, clamped at 0 (the authors' toy clamps after the first step)

    def constrained(self) -> list[torch.Tensor]:
        """The weights that must stay non-negative for ``ψ`` to be convex in ``y``."""
        return [core.weight for core in self.lin[1:]]

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the constrained weights at 0 (projected gradient; call after every optimiser step)."""
        for w in self.constrained():
            w.clamp_(min=0.0)

    def scalar(self, y: torch.Tensor) -> torch.Tensor:
        """``ψ_θ(y)``, shape ``(batch,)``."""
        z = F.softplus(self.lin[0](y), beta=self.beta)
        for core, res in zip(self.lin[1:-1], self.res[:-1]):
            z = F.softplus(core(z) + res(y), beta=self.beta)
        out = self.lin[-1](z) + self.res[-1](y)
        out = out.squeeze(-1)
        if self.alpha:
            out = out + 0.5 * self.alpha * y.pow(2).sum(-1)
        return out

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``f_θ(y) = ∇ψ_θ(y)``, differentiable in ``θ`` (double backward)."""
        with torch.enable_grad():
            if not y.requires_grad:
                y = y.detach().requires_grad_(True)
            psi = self.scalar(y)
            (grad,) = torch.autograd.grad(psi.sum(), y, create_graph=True)
        return grad


def proximal_matching_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``mean_i [1 - exp(-||pred_i - target_i||² / γ²)]`` (the paper's ``ℓ_PM`` without its normaliser)."""
    d2 = (pred - target).pow(2).reshape(pred.shape[0], -1).sum(1)
    return (1.0 - torch.exp(-d2 / gamma**2)).mean()


class ProximalMatchingLoss:
    """``ℓ_PM`` with the paper's decreasing ``γ`` schedule, as a :func:`zoo.training.train` loss.

    ``gammas`` are the successive values of ``γ`` (e.g. the authors' 0.5, 0.4, 0.3, 0.2, 0.1), used for
    equal shares of the steps that follow the first ``warmup`` fraction, during which ``warmup_loss``
    (``"l1"``, ``"l2"`` or ``None``: start ``ℓ_PM`` at once) is used instead (the authors start
    proximal matching from an ``ℓ1``-trained LPN). :meth:`before_step` sets the stage and projects the
    ICNN weights; pass it as ``train(..., before_step=loss.before_step)``.
    """

    def __init__(self, model: LearnedProximalNetwork, gammas: Sequence[float], warmup: float = 0.0,
                 warmup_loss: str | None = "l1") -> None:
        if not gammas or any(g <= 0 for g in gammas):
            raise ValueError("gammas must be positive")
        if not 0.0 <= warmup < 1.0:
            raise ValueError("warmup is a fraction of the steps in [0, 1)")
        self.model, self.gammas, self.warmup = model, [float(g) for g in gammas], float(warmup)
        self.warmup_loss = warmup_loss if warmup > 0 else None
        self.gamma: float | None = self.gammas[0]

    def stage(self, step: int, total: int) -> float | None:
        """``γ`` at ``step`` of ``total`` (None during the warm-up)."""
        warm = int(round(self.warmup * total)) if self.warmup_loss is not None else 0
        if step < warm:
            return None
        k = (step - warm) * len(self.gammas) // max(total - warm, 1)
        return self.gammas[min(max(k, 0), len(self.gammas) - 1)]

    def before_step(self, step: int, total: int) -> None:
        self.model.project()
        self.gamma = self.stage(step, total)

    def __call__(self, model: nn.Module, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pred = model(y)
        if self.gamma is None:
            return pointwise_loss(pred, x, self.warmup_loss or "l1")
        return proximal_matching_loss(pred, x, self.gamma)


def pointwise_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``"l2"``: mean ``||·||²`` (learns the MMSE ``E[x|y]``); ``"l1"``: mean ``||·||_1`` (the posterior median in 1-D)."""
    diff = (pred - target).reshape(pred.shape[0], -1)
    if kind == "l2":
        return diff.pow(2).sum(1).mean()
    if kind == "l1":
        return diff.abs().sum(1).mean()
    raise ValueError(f"unknown loss {kind!r}; use 'l1' or 'l2'")


def invert(model: LearnedProximalNetwork, x: torch.Tensor, steps: int = 1000, lr: float = 1e-2,
           init: torch.Tensor | None = None) -> torch.Tensor:
    """``y = f_θ^{-1}(x)``: minimise the convex ``ψ_θ(y) - <x, y>`` over ``y`` (Adam), starting from ``init`` (``x``)."""
    x = x.detach()
    y = (x.clone() if init is None else init.detach().clone()).requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        obj = (model.scalar(y) - (x * y).sum(-1)).sum()
        obj.backward()
        opt.step()
    return y.detach()


def regularizer(model: LearnedProximalNetwork, x: torch.Tensor, steps: int = 1000, lr: float = 1e-2,
                y: torch.Tensor | None = None) -> torch.Tensor:
    """``R_θ(x) = <x, y> - ½||x||² - ψ_θ(y)`` with ``y = f_θ^{-1}(x)`` (computed by :func:`invert` unless given)."""
    if y is None:
        y = invert(model, x, steps=steps, lr=lr)
    with torch.no_grad():
        return (x * y).sum(-1) - 0.5 * x.pow(2).sum(-1) - model.scalar(y)


def soft_threshold(y: torch.Tensor, lam: float) -> torch.Tensor:
    """``sign(y) max(|y| - λ, 0)``: the prox of ``λ|x|``, the MAP denoiser of Laplacian data (``λ = σ²/b``)."""
    return torch.sign(y) * torch.clamp(y.abs() - lam, min=0.0)
