"""Co-teaching: two networks, each trained on the small-loss examples its peer picks.

Bo Han, Quanming Yao, Xingrui Yu, Gang Niu, Miao Xu, Weihua Hu, Ivor W. Tsang, Masashi Sugiyama.
*Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels*. NeurIPS 2018.
https://arxiv.org/abs/1804.06872

Networks ``f`` and ``g`` see the same mini-batch ``B``. Each keeps the ``R(T)`` fraction of ``B``
on which *it* has the smallest loss and hands that set to its peer, which takes a step on it
(the paper's Algorithm 1, steps 4-6)::

    B_f = argmin_{B' ⊂ B, |B'| = R(T)|B|} L(f, B')       B_g likewise with g
    f <- f - eta grad L(f, B_g)                          g <- g - eta grad L(g, B_f)
    R(T) = 1 - min(T tau / T_k, tau)                     (the forget rate rises to tau over T_k epochs)

``tau`` is the forget rate (the paper sets it to the noise rate). As in the authors' code the
ramp is ``np.linspace(0, tau, T_k)`` over the first ``T_k`` epochs (0 in the first epoch, ``tau``
from epoch ``T_k`` on: :func:`forget_rate`), and ``|B'| = int((1 - rate) |B|)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["forget_rate", "small_loss_indices", "co_teaching_loss"]


def forget_rate(epoch: int, tau: float, t_k: int = 10) -> float:
    """The forget rate of the 1-based ``epoch``: ``tau * (epoch - 1) / (t_k - 1)`` up to ``tau``."""
    if epoch < 1:
        raise ValueError(f"epoch is 1-based, got {epoch}")
    if not 0 <= tau < 1:
        raise ValueError(f"tau must be in [0, 1), got {tau}")
    if t_k <= 1:
        return float(tau)
    return float(tau) * min((epoch - 1) / (t_k - 1), 1.0)


def small_loss_indices(per_example_loss: Tensor, rate: float) -> Tensor:
    """Indices of the ``int((1 - rate) n)`` smallest losses (ties: the earlier example), at least one."""
    n = per_example_loss.shape[0]
    keep = max(1, int((1.0 - rate) * n))
    order = torch.sort(per_example_loss.detach(), stable=True).indices
    return order[:keep]


def co_teaching_loss(logits_f: Tensor, logits_g: Tensor, target: Tensor, rate: float, ignore_index: int = -100,
                     select_f: Tensor | None = None, select_g: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(loss_f, loss_g, picked_by_f, picked_by_g)``: each network's mean CE on its peer's small-loss examples.

    ``loss_f`` trains ``f`` on the examples ``g`` picked (``picked_by_g``) and vice versa;
    examples labelled ``ignore_index`` are never picked. Each network picks by the loss of
    ``select_f`` / ``select_g`` when given (e.g. logits of an ``eval()``-mode pass, as the
    authors of the nested-dropout paper do), else of its training logits.
    """
    valid = target != ignore_index
    idx = valid.nonzero().squeeze(1)
    y = target[idx]
    ce_f = F.cross_entropy(logits_f[idx], y, reduction="none")
    ce_g = F.cross_entropy(logits_g[idx], y, reduction="none")
    rank_f = ce_f if select_f is None else F.cross_entropy(select_f[idx], y, reduction="none")
    rank_g = ce_g if select_g is None else F.cross_entropy(select_g[idx], y, reduction="none")
    by_f = small_loss_indices(rank_f, rate)
    by_g = small_loss_indices(rank_g, rate)
    return ce_f[by_g].mean(), ce_g[by_f].mean(), idx[by_f], idx[by_g]
