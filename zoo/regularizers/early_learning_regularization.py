"""Early-learning regularization (ELR): keep the model near its own early, mostly clean predictions.

Sheng Liu, Jonathan Niles-Weed, Narges Razavian, Carlos Fernandez-Granda. *Early-Learning
Regularization Prevents Memorization of Noisy Labels*. NeurIPS 2020. https://arxiv.org/abs/2007.00151

Notation (the paper's Section 4): ``n`` training examples, ``C`` classes, ``p[i]`` the softmax
output for example ``i``, ``t[i]`` its *target*, a temporal ensemble (running average) of the
model's past predictions for that example. Networks trained on noisy labels first fit the clean
labels ("early learning") and only later memorise the wrong ones; the targets remember the early
predictions. Each time example ``i`` is in a mini-batch at iteration ``k`` (their Eq. 8)::

    t[i](k) = beta * t[i](k - 1) + (1 - beta) * p[i](k)          (t[i](0) = 0; p[i] not differentiated)

and the loss (their Eq. 6) adds, to cross-entropy with the observed labels ``y``::

    L_ELR = CE(p, y) + (lambda / n_batch) * sum_i log(1 - <p[i], t[i]>)

Minimising ``log(1 - <p, t>)`` pulls ``p`` towards ``t``; its gradient (Eq. 7 / Lemma 4.2) adds
to CE's ``p - y`` a term that, for a wrongly labelled example whose target already points at the
true class, cancels CE's push towards the wrong label. The paper uses ``beta = 0.7, lambda = 3``
on CIFAR-10 and ``beta = 0.9, lambda = 7`` on CIFAR-100.

As in the authors' code, the probabilities are clamped to ``[1e-4, 1 - 1e-4]`` (and the clamped
vector renormalised for the target update), which keeps ``1 - <p, t>`` away from 0; the target
update uses the current step's prediction before the regulariser is computed. Not implemented:
ELR+ (two networks, weight averaging, mixup).

:class:`EarlyLearningRegularization` holds the targets of a whole training set, indexed by the
examples' positions (``index``): pass each batch's indices, as the zoo's classification harness
does through ``Batch.idx``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["elr_regularizer", "EarlyLearningRegularization"]


def elr_regularizer(probs: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """``log(1 - <p, t>)`` per example (the paper's regulariser, Eq. 6), for ``(N, C)`` inputs."""
    per = torch.log1p(-(probs * targets).sum(-1))
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    if reduction == "none":
        return per
    raise ValueError(f"reduction must be one of ('none', 'mean', 'sum'), got {reduction!r}")


class EarlyLearningRegularization(nn.Module):
    """Cross-entropy plus ``lambda * log(1 - <p, t>)`` with per-example temporal-ensemble targets.

    Args:
        num_examples: size of the training set (targets are indexed by example position).
        num_classes: ``C``.
        beta: the targets' momentum (0.7 for CIFAR-10 in the paper).
        lam: the regulariser's weight ``lambda`` (3 for CIFAR-10).
        clamp: probabilities are clamped to ``[clamp, 1 - clamp]`` (the authors' 1e-4).
        ignore_index: label of examples without one: no CE term (the regulariser still applies).

    Call ``loss = elr(logits, labels, index)``; each call updates the targets of ``index`` first.
    """

    targets: Tensor

    def __init__(self, num_examples: int, num_classes: int, beta: float = 0.7, lam: float = 3.0,
                 clamp: float = 1e-4, ignore_index: int = -100) -> None:
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not 0.0 < clamp < 0.5:
            raise ValueError(f"clamp must be in (0, 0.5), got {clamp}")
        self.beta, self.lam, self.clamp, self.ignore_index = float(beta), float(lam), float(clamp), int(ignore_index)
        self.register_buffer("targets", torch.zeros(num_examples, num_classes))

    @torch.no_grad()
    def update(self, index: Tensor, probs: Tensor) -> None:
        """``t[i] <- beta t[i] + (1 - beta) p[i]`` for the examples ``index`` (Eq. 8)."""
        p = probs.detach().to(self.targets.dtype)
        p = p / p.sum(-1, keepdim=True)
        self.targets[index] = self.beta * self.targets[index] + (1.0 - self.beta) * p

    def forward(self, input: Tensor, target: Tensor, index: Tensor) -> Tensor:
        probs = F.softmax(input, dim=-1).clamp(self.clamp, 1.0 - self.clamp)
        self.update(index, probs)
        reg = elr_regularizer(probs, self.targets[index].to(probs.dtype))
        keep = target != self.ignore_index
        if bool(keep.any()):
            ce = F.cross_entropy(input, target, ignore_index=self.ignore_index)
        else:
            ce = input.sum() * 0.0
        return ce + self.lam * reg

    def extra_repr(self) -> str:
        n, c = self.targets.shape
        return f"num_examples={n}, num_classes={c}, beta={self.beta}, lam={self.lam}"
