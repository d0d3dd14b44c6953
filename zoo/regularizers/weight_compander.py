"""Weight compander (Cakaj, Mehnert & Yang, IJCNN 2023): every weight seen through a fixed nonlinearity.

Paper: "Weight Compander: A Simple Weight Reparameterization for Regularization",
https://arxiv.org/abs/2306.16993.

A layer's weight is no longer a free parameter: the network stores ``v`` and uses
``w = f(v)``, with ``f`` odd, monotone and saturating (a *compander*: it compresses large values
and expands small ones)::

    w = f(v) = alpha * arctan(beta * v)            |w| < alpha * pi / 2,   f'(0) = alpha * beta

Two effects, the paper's two motivations: the magnitude of every weight is bounded by
``alpha * pi / 2`` (no weight can dominate), and the gradient reaching ``v`` is
``f'(v) * dL/dw``, largest near ``v = 0`` and vanishing for large ``|v|``, so gradient steps move
near-zero weights (in ``w``, by ``f'(v)^2`` times the plain step) fastest and saturated ones
hardly at all: "dead" weights are pushed off zero and large ones are capped. The paper also learns
the compander's hyper-parameters with the network (``learnable=True``: ``alpha`` and ``beta`` per
tensor, trained by the same optimizer).

Notation: ``v`` = the stored parameter (``parametrizations.weight.original``), ``w`` = the weight
the layer uses, ``alpha`` = saturation scale, ``beta`` = slope scale.

**Initialisation.** :func:`apply_weight_compander` registers the compander with
:func:`torch.nn.utils.parametrize.register_parametrization`, whose ``right_inverse`` sets
``v = f^{-1}(w0)`` from the layer's current weight ``w0``: right after it is applied the network
computes exactly the same function as before (the same initial weights, which the
classification harness requires of a ``Method(model=...)`` transform). Initial weights beyond the
cap are clipped to 0.999 of it (counted in :attr:`WeightCompander.clipped`).

.. warning::
   Departure: the stored copy of the paper available to us gave its abstract but not its
   equation, so the compander ``alpha * arctan(beta * v)`` is our choice of an odd, bounded,
   monotone function with the stated properties (bounded magnitude, expansion near zero,
   learnable hyper-parameters), not necessarily the paper's exact ``f``. Biases are left plain
   (the paper reparametrises weights).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> w0 = net[0].weight.detach().clone()
    >>> net = apply_weight_compander(net, alpha=0.5, beta=4.0)
    >>> torch.allclose(net[0].weight, w0, atol=1e-6)
    True
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["WeightCompander", "compand", "apply_weight_compander", "compander_layers", "effective_weights"]

_MARGIN = 0.999  # initial weights are clipped to this fraction of the cap before inversion


def compand(v: torch.Tensor, alpha: float | torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """The compander ``alpha * arctan(beta * v)`` (elementwise)."""
    return alpha * torch.atan(beta * v)


class WeightCompander(nn.Module):
    """The parametrisation ``w = alpha * arctan(beta * v)`` of one weight tensor.

    Args:
        alpha: saturation scale; weights stay below ``alpha * pi / 2`` in magnitude. Positive.
        beta: slope scale; the slope at zero is ``alpha * beta``. Positive.
        learnable: train ``alpha`` and ``beta`` (stored as logarithms, so they stay positive)
            with the network, as the paper's learned-hyper-parameter variant does. Their gradients
            sum over every weight of the tensor, so they usually need a smaller learning rate
            than the weights (a parameter group of their own).
    """

    def __init__(self, alpha: float, beta: float, learnable: bool = False) -> None:
        super().__init__()
        if not (alpha > 0 and beta > 0):
            raise ValueError(f"alpha and beta must be positive, got alpha={alpha}, beta={beta}")
        la, lb = torch.tensor(math.log(alpha)), torch.tensor(math.log(beta))
        if learnable:
            self.log_alpha, self.log_beta = nn.Parameter(la), nn.Parameter(lb)
        else:
            self.register_buffer("log_alpha", la)
            self.register_buffer("log_beta", lb)
        self.learnable = learnable
        self.clipped = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp()

    @property
    def cap(self) -> float:
        """The bound ``alpha * pi / 2`` on every weight's magnitude."""
        return float(self.alpha.detach()) * math.pi / 2

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return compand(v, self.alpha.to(v.dtype), self.beta.to(v.dtype))

    @torch.no_grad()
    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        """``v = tan(w / alpha) / beta``: the stored value that reproduces ``w`` (clipped below the cap)."""
        lim = _MARGIN * math.pi / 2
        u = w / self.alpha.to(w.dtype)
        self.clipped = int((u.abs() > lim).sum())
        return torch.tan(u.clamp(-lim, lim)) / self.beta.to(w.dtype)


def apply_weight_compander(model: nn.Module, alpha: float = 0.5, beta: float = 4.0, learnable: bool = False,
                           layers: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)) -> nn.Module:
    """Reparametrise the ``weight`` of every ``layers`` module of ``model`` in place (and return it).

    Each weight gets its own :class:`WeightCompander` (its own ``alpha``, ``beta`` when learnable),
    initialised so that ``f(v)`` equals the current weight: the model's function is unchanged.
    """
    n = 0
    for m in model.modules():
        if isinstance(m, layers) and not parametrize.is_parametrized(m, "weight"):
            parametrize.register_parametrization(m, "weight", WeightCompander(alpha, beta, learnable))
            n += 1
    if n == 0:
        raise ValueError(f"no {[t.__name__ for t in layers]} layer in the model to reparametrise")
    return model


def compander_layers(model: nn.Module) -> list[WeightCompander]:
    """The compander parametrisations of ``model``, in module order."""
    out = []
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            out.extend(p for p in m.parametrizations["weight"] if isinstance(p, WeightCompander))
    return out


def effective_weights(model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
                      ) -> Iterable[torch.Tensor]:
    """The weights the layers actually use (``f(v)`` where reparametrised), detached."""
    for m in model.modules():
        if isinstance(m, layers):
            yield m.weight.detach()
