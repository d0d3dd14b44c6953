"""Lottery tickets for evolution strategies (Lange & Sprekeler, "Lottery Tickets in Evolutionary
Optimization: On Sparse Backpropagation-Free Trainability", ICML 2023, arXiv:2306.00045).

**Search distribution.** A diagonal Gaussian ``N(mu, diag(sigma^2))`` over the flat parameter
vector of a network, sampled with antithetic pairs ``theta_j^± = mu ± sigma * eps_j``,
``eps_j ~ N(0, I)``, ``j = 1..P/2``. With centred-rank fitness shaping ``u_j^±`` of the losses
``L(theta_j^±)`` (lower loss -> larger utility), the OpenAI-ES search gradient (Salimans et al.
2017) of the expected utility is

    g_mu = 1/(P sigma) * sum_j (u_j^+ - u_j^-) eps_j,

applied to ``mu`` with Adam (ascent). With ``sigma_lr > 0`` the per-parameter scale follows the
PGPE / SNES natural-gradient update ``sigma <- sigma * exp(sigma_lr / (2P) * sum_j (u_j^+ + u_j^-)
(eps_j^2 - 1))`` (what makes the signal-to-noise ratio informative; ``sigma_lr = 0`` is plain
OpenAI-ES, whose SNR is magnitude over a constant).

**Masks.** A binary mask ``m`` fixes pruned coordinates at 0 (``theta = m * (mu + sigma eps)``).
Iterative pruning (Frankle & Carbin 2019, the paper's Sec. 3): train, drop the fraction ``rate`` of
the remaining coordinates with the smallest score, rewind ``mu`` to the initialisation, retrain.
Scores: ``magnitude`` = ``|mu|``, ``snr`` = ``|mu| / sigma`` (the paper's SNR criterion),
``random``.

Departures: fitness is the cross-entropy on a fresh mini-batch per generation; all members are
evaluated in one batched ``torch.func.functional_call`` via ``vmap``; sigma is clipped to
``[sigma_min, sigma_max]``; biases are pruned like weights only if ``prune_bias``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

__all__ = ["ESConfig", "ESState", "centred_ranks", "es_gradient", "train_es", "prune_scores", "prune_mask",
           "iterative_pruning"]


@dataclass
class ESConfig:
    population: int = 64
    generations: int = 200
    sigma_init: float = 0.05
    sigma_lr: float = 0.0
    sigma_min: float = 1e-3
    sigma_max: float = 1.0
    lr: float = 0.03
    batch_size: int = 256


@dataclass
class ESState:
    mu: torch.Tensor
    sigma: torch.Tensor
    mask: torch.Tensor
    history: list[float] = field(default_factory=list)


def centred_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks mapped to ``[-0.5, 0.5]`` (0 for the smallest ``x``)."""
    r = torch.empty_like(x)
    r[x.argsort()] = torch.arange(x.numel(), dtype=x.dtype, device=x.device)
    return r / (x.numel() - 1) - 0.5


def es_gradient(eps: torch.Tensor, util_pos: torch.Tensor, util_neg: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``g_mu = 1/(P sigma) sum_j (u_j^+ - u_j^-) eps_j`` with ``P = 2 * eps.shape[0]``."""
    return ((util_pos - util_neg) @ eps) / (2 * eps.shape[0] * sigma)


def _flat(model: nn.Module) -> tuple[torch.Tensor, list[tuple[str, torch.Size]]]:
    names = [(n, p.shape) for n, p in model.named_parameters()]
    return torch.cat([p.detach().flatten() for p in model.parameters()]), names


def _unflat(vec: torch.Tensor, names: list[tuple[str, torch.Size]]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for n, s in names:
        k = int(torch.Size(s).numel())
        out[n] = vec[..., i:i + k].reshape(*vec.shape[:-1], *s)
        i += k
    return out


def train_es(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ESConfig, generator: torch.Generator,
             mu: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> ESState:
    """Run ES from ``mu`` (default: the model's parameters) under ``mask``; loads the final mean
    into ``model`` and returns the state (``history``: mean-fitness loss per generation)."""
    mu0, names = _flat(model)
    mu = (mu0 if mu is None else mu).clone()
    mask = torch.ones_like(mu) if mask is None else mask.to(mu)
    sigma = torch.full_like(mu, cfg.sigma_init)
    opt = torch.optim.Adam([mu.requires_grad_()], lr=cfg.lr)
    half = cfg.population // 2
    loss_of = vmap(lambda p, xb, yb: F.cross_entropy(functional_call(model, _unflat(p, names), (xb,)), yb),
                   in_dims=(0, None, None))
    hist: list[float] = []
    for _ in range(cfg.generations):
        idx = torch.randint(x.shape[0], (cfg.batch_size,), generator=generator).to(x.device)
        xb, yb = x[idx], y[idx]
        eps = torch.randn((half, mu.numel()), generator=generator).to(mu) * mask
        with torch.no_grad():
            m = mu * mask
            pop = torch.cat([m + sigma * eps, m - sigma * eps])
            losses = loss_of(pop, xb, yb)
            util = centred_ranks(-losses)              # lower loss -> higher utility
            up, un = util[:half], util[half:]
            grad = es_gradient(eps, up, un, sigma) * mask
            if cfg.sigma_lr > 0:
                s_grad = ((up + un) @ (eps**2 - 1)) / cfg.population
                sigma = (sigma * torch.exp(0.5 * cfg.sigma_lr * s_grad)).clamp(cfg.sigma_min, cfg.sigma_max)
        opt.zero_grad(set_to_none=True)
        mu.grad = -grad                                 # Adam minimises: ascend the utility
        opt.step()
        hist.append(float(losses.mean()))
    final = (mu.detach() * mask)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(_unflat(final, names)[n])
    return ESState(mu=mu.detach().clone(), sigma=sigma, mask=mask, history=hist)


def prune_scores(state: ESState, criterion: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """``magnitude`` |mu|, ``snr`` |mu|/sigma, or ``random`` scores (pruned coordinates: -inf)."""
    if criterion == "magnitude":
        s = state.mu.abs()
    elif criterion == "snr":
        s = state.mu.abs() / state.sigma
    elif criterion == "random":
        s = torch.rand(state.mu.shape, generator=generator).to(state.mu)
    else:
        raise ValueError(f"unknown criterion {criterion!r}: magnitude, snr or random")
    return torch.where(state.mask > 0, s, torch.full_like(s, -float("inf")))


def prune_mask(scores: torch.Tensor, mask: torch.Tensor, rate: float) -> torch.Tensor:
    """Drop the ``rate`` share of the remaining coordinates with the lowest scores."""
    alive = int(mask.sum())
    drop = int(round(rate * alive))
    new = mask.clone()
    if drop:
        order = torch.argsort(torch.where(mask > 0, scores, torch.full_like(scores, float("inf"))))
        new[order[:drop]] = 0
    return new


def iterative_pruning(make_model: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, cfg: ESConfig, *,
                      rounds: int, rate: float, criterion: str, seed: int,
                      evaluate: Callable[[nn.Module], float]) -> list[dict[str, float]]:
    """Lottery-ticket iterative pruning with ES: per round, train from the *initial* mean under the
    current mask, record ``evaluate(model)`` and the sparsity, then prune ``rate`` of what is left."""
    g = torch.Generator().manual_seed(int(seed))
    model = make_model()
    init, _ = _flat(model)
    mask = torch.ones_like(init)
    out = []
    for r in range(rounds + 1):
        state = train_es(model, x, y, cfg, g, mu=init, mask=mask)
        out.append({"round": float(r), "sparsity": 100.0 * (1 - float(mask.mean())), "acc": float(evaluate(model))})
        mask = prune_mask(prune_scores(state, criterion, g), mask, rate)
    return out
