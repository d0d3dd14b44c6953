r"""Pruning on-the-fly: hyperspherical training plus a bimodality penalty, then pruning with no fine-tuning.

Dan Liu, Xue Liu. "Pruning On-the-Fly: A Recoverable Pruning Method without Fine-tuning", 2022.
https://arxiv.org/abs/2212.12651

The network is trained with every neuron's (filter's) weight vector on the unit hypersphere, and
a loss penalty pushes part of each vector's entries towards zero and the rest away from zero, so
that the magnitude distribution becomes bimodal and the near-zero group can be cut after
training without retraining.

**Hyperspherical weights.** For a layer with weight rows :math:`w_j \in \mathbb{R}^{d}` (a Conv2d
filter flattened over ``in * kh * kw``), after every optimizer step (and once at the start) each
row is projected back onto the unit sphere (:func:`project_rows`)

.. math:: w_j \leftarrow w_j / \lVert w_j \rVert_2 .

**Bimodality penalty.** With the target pruning ratio :math:`p`, let :math:`S_j` be the
:math:`\lfloor p d \rfloor` entries of row :math:`j` with the smallest magnitude (chosen without
gradient at every step) and :math:`L_j` the rest. On the normalised row
:math:`\hat w_j = w_j / \lVert w_j \rVert` (:func:`bimodal_penalty`)

.. math::

   R(w_j) = \sqrt{d}\,\Big(\tfrac{1}{|S_j|}\sum_{i \in S_j} |\hat w_{ji}|
            \;-\; \tfrac{1}{|L_j|}\sum_{i \in L_j} |\hat w_{ji}|\Big),
   \qquad \mathcal{L} = \mathrm{CE} + \lambda \sum_{\text{layers}} \operatorname{mean}_j R(w_j).

The first term drives the to-be-pruned entries to zero, the second pushes the kept ones away from
it; :math:`\sqrt{d}` makes the penalty independent of fan-in (a unit row's typical entry is
:math:`1/\sqrt{d}`). After training, the :math:`p` fraction of smallest weights is removed
(magnitude, one shot) and the model is used as it is.

**Departures from the paper.** The paper's exact penalty form is not reproduced here (only its
stated effect: "pushes some of the model weights far from zero, while the rest ... near zero");
our :math:`R` is our own piecewise-linear version of that, with the split fixed by the target
ratio. Only the weights are normalised (no normalised inputs / angular activations); biases are
free. The paper's "recovery" (replacing pruned weights by their mean) is not implemented: it
would store a dense value per pruned weight and so is no compression.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.pruning.structure import prunable

__all__ = ["project_rows", "bimodal_penalty", "model_penalty", "project_model", "row_magnitude_gap"]


@torch.no_grad()
def project_rows(weight: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Project every output row of ``weight`` (``[out, ...]``) onto the unit sphere, in place."""
    r = weight.view(weight.shape[0], -1)
    r.div_(r.norm(dim=1, keepdim=True).clamp_min(eps))
    return weight


def bimodal_penalty(weight: torch.Tensor, ratio: float, eps: float = 1e-12) -> torch.Tensor:
    r"""Mean over rows of :math:`R(w_j)` (module docstring): small group's mean magnitude minus the large group's."""
    r = weight.reshape(weight.shape[0], -1)
    d = r.shape[1]
    k = int(ratio * d)
    if k <= 0 or k >= d:
        return r.new_zeros(())
    a = (r / r.norm(dim=1, keepdim=True).clamp_min(eps)).abs()
    with torch.no_grad():
        order = a.argsort(dim=1)
        small = torch.zeros_like(a, dtype=torch.bool).scatter_(1, order[:, :k], True)
    s = small.to(a.dtype)
    mean_small = (a * s).sum(1) / k
    mean_large = (a * (1 - s)).sum(1) / (d - k)
    return (d ** 0.5) * (mean_small - mean_large).mean()


def model_penalty(model: nn.Module, ratio: float) -> torch.Tensor:
    """:math:`\\sum_\\text{layers} \\operatorname{mean}_j R(w_j)` over every Linear/Conv2d weight of ``model``."""
    terms = [bimodal_penalty(m.weight, ratio) for _, m in prunable(model)]
    return torch.stack(terms).sum()


@torch.no_grad()
def project_model(model: nn.Module) -> None:
    """:func:`project_rows` on every Linear/Conv2d weight (the stored parameter, under any parametrization)."""
    for _, m in prunable(model):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        project_rows(w.data)


@torch.no_grad()
def row_magnitude_gap(weight: torch.Tensor, ratio: float) -> float:
    """How bimodal a layer is: mean over rows of (smallest kept |w|) over (largest pruned |w|), per-row split at ``ratio``."""
    a = weight.reshape(weight.shape[0], -1).abs().sort(dim=1).values
    k = int(ratio * a.shape[1])
    return float((a[:, k] / a[:, k - 1].clamp_min(1e-12)).mean())
