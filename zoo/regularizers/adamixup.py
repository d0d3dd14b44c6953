"""AdaMixUp (Guo, Mao & Zhang, AAAI 2019): MixUp with a learned mixing policy that avoids manifold intrusion.

Paper: "MixUp as Locally Linear Out-Of-Manifold Regularization", https://arxiv.org/abs/1809.02499
(authors' code: github.com/SITE5039/AdaMixUp, TensorFlow/tensorpack).

MixUp regularises the classifier on mixed points; when a mixed point lands on the data manifold
with a label other than its mixed one (*manifold intrusion*), that regularisation conflicts with
the data and the model underfits. AdaMixUp learns, per pair, where to mix, with two extra parts
trained jointly with the classifier:

* the **policy region generator** ``pi``: a network of the classifier's architecture (its own
  weights) reads a randomly weighted average of the pair, ``(m1 * x + m2 * x') / 2`` with
  ``m1, m2`` standard normal truncated at 2, and two linear layers (100 units, then 3) end in a
  softmax ``(a, delta, rest)``; the pair's mixing coefficient is drawn from the region
  ``[a, a + delta]``, reparametrised ``lam = a + delta * u``, ``u ~ U(0, 1)``, so gradients reach
  ``pi``;
* the **intrusion discriminator** ``phi``: two linear layers (10 units, then one logit) on the
  classifier's own penultimate features, trained to tell original inputs (label 1) from mixed
  ones (label 0).

A batch is split in halves: the first half ``x1`` is paired with a permutation of itself
``x2 = x1[perm]`` and mixed; the second half is kept *unseen* (only the discriminator sees it).
The loss of a step (as the authors' code computes it; eq. 8 of the paper, equal weights)::

    x_mix  = lam * x1 + (1 - lam) * x2,     y_mix = lam * e_y1 + (1 - lam) * e_y2
    L_cls  = mean CE over [x_mix, x1] with targets [y_mix, e_y1]            (L_D + L_D')
    L_intr = mean BCE of phi(h(.)) over [unseen, x1] (label 1) and x_mix (label 0)
    L      = L_cls + L_intr

The classification term alone would pull ``lam`` towards 0 or 1 (a "mix" that *is* an original
input is easy to fit); the intrusion term stops that, because such points look original to
``phi``: the policy settles on regions whose mixes lie off the data manifold.

Notation: ``pi`` = :class:`PolicyRegionGenerator`, ``phi`` = :class:`IntrusionDiscriminator`,
``h`` = the input of the model's last ``nn.Linear`` (found with a forward pre-hook), ``a, delta``
= the policy region, ``lam`` = a pair's mixing coefficient.

.. warning::
   Departures: two-fold mixing only (``k = 2``; the paper also mixes mixed points recursively);
   no dropout (our small networks have none); the generator's body is a fresh copy of the
   classifier's architecture (re-initialised), as in the authors' code, but any model with a last
   ``nn.Linear`` is accepted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.regularizers.mixup import mix

__all__ = ["PolicyRegionGenerator", "IntrusionDiscriminator", "AdaMixUpTerms", "adamixup_loss", "penultimate",
           "feature_width", "gate_input"]


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError("penultimate features need a model whose output layer is an nn.Linear")
    return last


def feature_width(model: nn.Module) -> int:
    """The width of the penultimate features (the last ``nn.Linear``'s input)."""
    return _last_linear(model).in_features


def penultimate(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, features)``: the model's output and the input of its last ``nn.Linear``, in one pass."""
    seen: list[torch.Tensor] = []
    handle = _last_linear(model).register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, seen[-1].flatten(1)


def gate_input(x: torch.Tensor, x_other: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(m1 * x + m2 * x') / 2``, ``m1, m2`` elementwise standard normal truncated at +-2: what ``pi`` reads."""
    m = torch.empty((2, *x.shape), dtype=x.dtype)
    nn.init.trunc_normal_(m, 0.0, 1.0, -2.0, 2.0, generator=generator)
    m = m.to(x.device)
    return (m[0] * x + m[1] * x_other) / 2


class PolicyRegionGenerator(nn.Module):
    """``pi``: the mixing region ``[a, a + delta]`` of each pair.

    Args:
        body: the feature network (a model whose last layer is an ``nn.Linear``; its penultimate
            features are used). :meth:`from_classifier` makes a re-initialised copy of the classifier.
        hidden: width of the first linear layer of the head (the authors: 100).
        init_std: standard deviation of the head's initial weights (the authors: 1e-3, so the
            initial region is about ``[1/3, 2/3]``).
    """

    def __init__(self, body: nn.Module, hidden: int = 100, init_std: float = 1e-3) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Sequential(nn.Linear(feature_width(body), hidden), nn.Linear(hidden, 3))
        for m in self.head:
            nn.init.normal_(m.weight, std=init_std)
            nn.init.zeros_(m.bias)

    @classmethod
    def from_classifier(cls, model: nn.Module, **kw) -> "PolicyRegionGenerator":
        body = copy.deepcopy(model)
        for m in body.modules():
            if hasattr(m, "reset_parameters") and m is not body:
                m.reset_parameters()
        return cls(body, **kw)

    def forward(self, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, h = penultimate(self.body, gate)
        w = self.head(h).softmax(-1)
        return w[:, 0], w[:, 1]  # a, delta; the third weight keeps a + delta <= 1


class IntrusionDiscriminator(nn.Module):
    """``phi(h)``: the logit that features ``h`` come from an original input rather than a mixed one."""

    def __init__(self, in_features: int, hidden: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


@dataclass
class AdaMixUpTerms:
    """The two terms of one step and the policy's draws (for monitoring)."""

    classification: torch.Tensor
    intrusion: torch.Tensor
    lam: torch.Tensor
    a: torch.Tensor
    delta: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.classification + self.intrusion


def adamixup_loss(model: nn.Module, policy: PolicyRegionGenerator, disc: IntrusionDiscriminator,
                  x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                  intrusion_weight: float = 1.0) -> AdaMixUpTerms:
    """The AdaMixUp terms of a batch; ``.total`` is ``L_cls + intrusion_weight * L_intr`` (see the module docstring).

    The first ``N // 2`` examples are mixed with a permutation of themselves (from ``generator``);
    the rest are the discriminator's unseen originals.
    """
    n = x.shape[0]
    if n < 2:
        raise ValueError("AdaMixUp needs a batch of at least 2 examples")
    half = n // 2
    x1, y1, unseen = x[:half], y[:half], x[half:]
    perm = torch.randperm(half, generator=generator).to(x.device)
    x2, y2 = x1[perm], y1[perm]
    a, delta = policy(gate_input(x1, x2, generator))
    u = torch.rand(half, generator=generator).to(x.device, x.dtype)
    lam = a + delta * u  # lam ~ U[a, a + delta], reparametrised
    x_mix = mix(x1, lam, perm)
    logits, h = penultimate(model, torch.cat([x_mix, x1, unseen]))
    lg_mix, lg_1 = logits[:half], logits[half : 2 * half]
    # L_D' + L_D: the mixed points with their soft targets and the originals x1, one mean over both
    ce_mix = lam * F.cross_entropy(lg_mix, y1, reduction="none") + (1 - lam) * F.cross_entropy(lg_mix, y2, reduction="none")
    ce_1 = F.cross_entropy(lg_1, y1, reduction="none")
    classification = torch.cat([ce_mix, ce_1]).mean()
    # L_intr: originals (x1 and the unseen half) are label 1, mixed points label 0
    d = disc(h)
    target = torch.cat([torch.zeros(half), torch.ones(half), torch.ones(n - half)]).to(d)
    intrusion = F.binary_cross_entropy_with_logits(d, target)
    return AdaMixUpTerms(classification, intrusion_weight * intrusion, lam.detach(), a.detach(), delta.detach())
