"""SWAP-Score (Peng, Song, Fayek, Ciesielski & Chang, "SWAP-NAS: Sample-Wise Activation Patterns
for Ultra-fast NAS", ICLR 2024, arXiv:2403.04161).

Notation: a network at initialisation, a mini-batch ``X = (x_1..x_S)`` of ``S`` inputs, and the
``N`` intermediate ReLU units ``z_n`` of the network. The *standard* activation pattern (the one
NWOT reads) is, per sample, the binary code of every unit; SWAP transposes it. The **sample-wise
activation pattern** of unit ``n`` is the binary vector of its states across the batch

    p_n = (1[z_n(x_1) > 0], ..., 1[z_n(x_S) > 0])  in {0, 1}^S,

and the SWAP-Score is the number of *distinct* such vectors (Sec. 3, Eq. 2-3)

    SWAP(f; X) = |{ p_n : n = 1..N }|            (at most min(N, 2^S)).

The regularised score (Sec. 3.3) multiplies it by a bell-shaped function of the parameter count
``Theta`` that steers the search to a size range:

    SWAP_reg = SWAP * exp(-(Theta - mu)^2 / sigma).

Our departures: units are the outputs of every ``nn.ReLU`` module (pre-activation sign == post-
activation positivity), read with forward hooks, so any ReLU network works; the score is an
exact count (the authors' code counts unique rows the same way).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["activation_signs", "swap_score", "swap_regulariser"]


@torch.no_grad()
def activation_signs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ``(S, N)`` boolean matrix ``z_n(x_s) > 0`` over every ``nn.ReLU`` output of ``model``."""
    codes: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        codes.append((out > 0).flatten(1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise ValueError("the model has no nn.ReLU module: activation patterns are undefined")
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return torch.cat(codes, dim=1)


def swap_regulariser(n_params: float, mu: float, sigma: float) -> float:
    """``exp(-(Theta - mu)^2 / sigma)`` of the paper's regularised SWAP (Sec. 3.3)."""
    return math.exp(-((float(n_params) - mu) ** 2) / sigma)


@torch.no_grad()
def swap_score(model: nn.Module, x: torch.Tensor, *, mu: float | None = None, sigma: float | None = None) -> float:
    """SWAP-Score of ``model`` on the batch ``x``: distinct per-unit activation vectors over the batch.

    With ``mu`` and ``sigma`` the regularised score, ``SWAP * exp(-(Theta - mu)^2 / sigma)`` with
    ``Theta`` the number of parameters.
    """
    signs = activation_signs(model, x)          # (S, N): row = a sample's standard pattern
    patterns = signs.t().contiguous()           # (N, S): row = a unit's sample-wise pattern p_n
    score = float(torch.unique(patterns, dim=0).shape[0])
    if mu is not None or sigma is not None:
        if mu is None or sigma is None:
            raise ValueError("the regularised SWAP needs both mu and sigma")
        score *= swap_regulariser(sum(p.numel() for p in model.parameters()), mu, sigma)
    return score
