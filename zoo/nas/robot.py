"""RoBoT (He, Dai, Low, Jaillet & Sim, "Robustifying and Boosting Training-Free Neural Architecture
Search", ICLR 2024, openreview qPloNoDJZn): a Bayesian-optimised linear combination of
training-free metrics, then greedy exploitation of the ranking it induces.

Notation: a pool of architectures ``A`` with ``M`` training-free metrics ``m_i(A)`` (each
standardised over the pool), an objective ``f(A)`` that costs one *query* (training ``A`` and
reading its validation accuracy), a query budget ``T`` and a BO budget ``T0 <= T``.

* **Combined metric.** ``M(A; w) = sum_i w_i m_i(A)``, ``w in [-1, 1]^M``, and its top
  architecture ``A(w) = argmax_A M(A; w)``. The weights' value is ``F(w) = f(A(w))``.
* **Robustify (BO stage, Alg. 1 lines 1-6).** For ``t = 1..T0``: pick ``w_t`` maximising a GP-UCB
  acquisition ``mu(w) + beta^(1/2) sigma(w)`` of a Gaussian process fitted to the observed
  ``(w_s, F(w_s))`` (the first ``w`` uniform at random), query ``A(w_t)``, record ``F(w_t)``.
  ``w* `` is the observed weight vector with the largest ``F``.
* **Boost (greedy stage, lines 7-9).** Rank the pool by ``M(A; w*)`` and query the top-ranked
  architectures not queried yet until ``T`` distinct architectures have been queried.
* Return the queried architecture with the largest ``f``.

The metric pool here is the paper's gradient-based trio :func:`grad_norm`, :func:`snip`,
:func:`synflow` plus NWOT (the paper's ``jacob_cov`` slot is filled by its successor NWOT) and
SWAP. Our departures: the GP has an RBF kernel with fixed length-scale and noise (the paper uses
the ``bayes_opt`` package's fitted Matern kernel), the acquisition is maximised over random
candidate weights, a query of an architecture already queried is free (it is a look-up, as on a
benchmark table), and positive heavy-tailed metrics are log-transformed before standardisation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["grad_norm", "snip", "synflow", "standardise", "RoBoTResult", "robot_search", "greedy_search"]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    out = [(p.detach(), p.grad.detach().clone()) for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return out


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l ||dL/dtheta_l||_2`` of the cross-entropy on ``(x, y)`` (Abdelfattah et al., 2021)."""
    return float(sum(g.norm() for _, g in _loss_grads(model, x, y)))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP saliency summed over parameters, ``sum |theta * dL/dtheta|`` (Lee et al., 2019)."""
    return float(sum((p * g).abs().sum() for p, g in _loss_grads(model, x, y)))


def synflow(model: nn.Module, x: torch.Tensor) -> float:
    """SynFlow (Tanaka et al., 2020): with every parameter replaced by ``|theta|`` and an all-ones
    input, ``R = sum(f(1))`` and the score ``sum theta * dR/dtheta`` (float64, on a copy)."""
    net = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net(ones).sum().backward()
    return float(sum(float((p.detach() * p.grad).sum()) for p in net.parameters() if p.grad is not None))


def standardise(values: Sequence[float], log: bool = False) -> np.ndarray:
    """Z-score over the pool (``log`` first for positive heavy-tailed metrics)."""
    v = np.asarray(values, dtype=np.float64)
    if log:
        v = np.log(np.maximum(v, 1e-300))
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


def _gp_ucb(ws: np.ndarray, fs: np.ndarray, cand: np.ndarray, lengthscale: float, noise: float, beta: float) -> np.ndarray:
    # GP posterior with an RBF kernel on standardised targets; returns mu + sqrt(beta) * sd at cand.
    y = (fs - fs.mean()) / (fs.std() if fs.std() > 0 else 1.0)

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * d2 / lengthscale**2)

    kxx = k(ws, ws) + noise * np.eye(len(ws))
    kcx = k(cand, ws)
    sol = np.linalg.solve(kxx, np.c_[y, kcx.T])
    mu = kcx @ sol[:, 0]
    var = np.clip(1.0 - np.einsum("ij,ji->i", kcx, sol[:, 1:]), 1e-12, None)
    return mu + math.sqrt(beta) * np.sqrt(var)


@dataclass
class RoBoTResult:
    """The search's outcome: the best queried architecture, the weights, the query log."""

    best: int
    weights: np.ndarray
    queried: list[int] = field(default_factory=list)
    values: dict[int, float] = field(default_factory=dict)
    bo_queries: int = 0


def greedy_search(scores: np.ndarray, query: Callable[[int], float], budget: int) -> tuple[int, dict[int, float]]:
    """Query the ``budget`` top architectures under ``scores``; the best of them and the log."""
    values = {int(a): float(query(int(a))) for a in np.argsort(-scores, kind="stable")[:budget]}
    return max(values, key=lambda a: values[a]), values


def robot_search(metrics: np.ndarray, query: Callable[[int], float], budget: int, bo_iters: int, seed: int, *,
                 n_candidates: int = 2000, lengthscale: float = 0.5, noise: float = 1e-3, beta: float = 2.0) -> RoBoTResult:
    """RoBoT on a pool: ``metrics`` is ``(n_arch, M)`` (standardised), ``query(a)`` the objective of
    architecture ``a``; ``budget`` = ``T`` distinct queries, of which ``bo_iters`` = ``T0`` BO iterations."""
    if not 1 <= bo_iters <= budget:
        raise ValueError("need 1 <= bo_iters <= budget")
    rng = np.random.default_rng(int(seed))
    n, m = metrics.shape
    values: dict[int, float] = {}
    queried: list[int] = []

    def ask(a: int) -> float:
        if a not in values:
            values[a] = float(query(a))
            queried.append(a)
        return values[a]

    ws: list[np.ndarray] = []
    fs: list[float] = []
    for t in range(bo_iters):
        if len(queried) >= budget:
            break
        if t == 0:
            w = rng.uniform(-1, 1, m)
        else:
            cand = rng.uniform(-1, 1, (n_candidates, m))
            w = cand[int(np.argmax(_gp_ucb(np.array(ws), np.array(fs), cand, lengthscale, noise, beta)))]
        a = int(np.argmax(metrics @ w))
        ws.append(w)
        fs.append(ask(a))
    bo_queries = len(queried)
    w_star = ws[int(np.argmax(fs))]
    for a in np.argsort(-(metrics @ w_star), kind="stable"):
        if len(queried) >= budget:
            break
        ask(int(a))
    best = max(values, key=lambda a: values[a])
    return RoBoTResult(best=best, weights=w_star, queried=queried, values=values, bo_queries=bo_queries)
