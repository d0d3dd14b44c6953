"""Nested dropout on the penultimate features, as compression against noisy labels.

Yingyi Chen, Shell Xu Hu, Xi Shen, Chunrong Ai, Johan A. K. Suykens. *Compressing Features for
Learning With Noisy Labels*. IEEE TNNLS 2022. https://arxiv.org/abs/2206.13140 (authors' code:
https://github.com/yingyichen-cyy/Nested-Co-teaching). Nested dropout itself: Rippel, Gelbart,
Adams, *Learning Ordered Representations with Nested Dropout*, ICML 2014.

Notation: ``h`` the ``D`` penultimate features of an example (the input of the last linear
layer), ``k`` the number of leading features kept. Training draws one ``k`` per mini-batch and
masks the rest::

    p(k) ∝ exp(-((k - mu) / sigma)^2),  k = 1..D      (the authors' discretised Gaussian, mu = 0)
    h_masked = h ⊙ [1, ..., 1, 0, ..., 0]              (k ones; no rescaling)

so the first features must carry the most information (an ordered, compressible code). After
training, the number of features used at test time, ``K``, is chosen on a validation set
(:func:`select_k`: the most accurate ``K``, ties to the smallest); the model then predicts from
the first ``K`` features only. ``distribution="geometric"`` draws ``k - 1 ~ Geometric(p)``
instead (Rippel et al.'s original).

Plain (Bernoulli) dropout on the same features, the paper's other compression, is
:class:`torch.nn.Dropout`; :func:`with_feature_dropout` inserts either before the last layer.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["gaussian_k_distribution", "NestedDropout", "with_feature_dropout", "prefix_masks", "select_k",
           "feature_dropout_layer", "prefix_logits"]


def gaussian_k_distribution(num_features: int, sigma: float, mu: float = 0.0) -> Tensor:
    """``p(k) ∝ exp(-((k - mu) / sigma)^2)`` for ``k = 1..num_features`` (float64, sums to 1)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    k = torch.arange(1, num_features + 1, dtype=torch.float64)
    w = torch.exp(-(((k - mu) / sigma) ** 2))
    return w / w.sum()


def prefix_masks(num_features: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``(D, D)`` masks: row ``k - 1`` keeps the first ``k`` features."""
    return torch.ones(num_features, num_features, dtype=dtype, device=device).tril()


class NestedDropout(nn.Module):
    """Keep the first ``k`` of the last-axis features, ``k`` drawn per call in training.

    Args:
        num_features: ``D``, the size of the last axis.
        sigma: the Gaussian's width (the authors' ``--nested``; 10 for CIFAR's 512 features).
        mu: the Gaussian's centre (the authors use 0).
        distribution: ``"gaussian"`` (the authors') or ``"geometric"`` (Rippel et al.), whose
            ``p`` is ``geometric_p``.
        generator: optional ``torch.Generator`` for the draws (default: the global stream).

    In ``eval()`` mode the first :attr:`k_eval` features are kept (default: all; set by
    :func:`select_k`).
    """

    def __init__(self, num_features: int, sigma: float = 10.0, mu: float = 0.0, distribution: str = "gaussian",
                 geometric_p: float = 0.1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if distribution == "gaussian":
            probs = gaussian_k_distribution(num_features, sigma, mu)
        elif distribution == "geometric":
            if not 0 < geometric_p < 1:
                raise ValueError(f"geometric_p must be in (0, 1), got {geometric_p}")
            k = torch.arange(num_features, dtype=torch.float64)
            probs = geometric_p * (1 - geometric_p) ** k
            probs = probs / probs.sum()  # truncated at D
        else:
            raise ValueError(f"distribution must be 'gaussian' or 'geometric', got {distribution!r}")
        self.num_features, self.sigma, self.mu, self.distribution = int(num_features), float(sigma), float(mu), distribution
        self.register_buffer("probs", probs, persistent=False)
        self.k_eval = int(num_features)
        self.generator = generator
        self.last_k: int | None = None

    def sample_k(self) -> int:
        """One draw of ``k`` in ``1..D``."""
        return int(torch.multinomial(self.probs.cpu(), 1, generator=self.generator)) + 1

    def forward(self, h: Tensor) -> Tensor:
        if h.shape[-1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features on the last axis, got {h.shape[-1]}")
        k = self.sample_k() if self.training else self.k_eval
        self.last_k = k
        if k >= self.num_features:
            return h
        keep = torch.arange(self.num_features, device=h.device) < k
        return h * keep.to(h.dtype)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, distribution={self.distribution!r}, sigma={self.sigma}, k_eval={self.k_eval}"


def feature_dropout_layer(kind: str, num_features: int, **kw: float) -> nn.Module:
    """``"nested"`` -> :class:`NestedDropout`, ``"dropout"`` -> :class:`torch.nn.Dropout` (``p``)."""
    if kind == "nested":
        return NestedDropout(num_features, **kw)  # type: ignore[arg-type]
    if kind == "dropout":
        return nn.Dropout(float(kw.get("p", 0.3)))
    raise ValueError(f"kind must be 'nested' or 'dropout', got {kind!r}")


def with_feature_dropout(model: nn.Sequential, layer: nn.Module) -> nn.Sequential:
    """The same network (the same parameter tensors) with ``layer`` inserted before its last module.

    ``model`` is a sequential network ending in its classifier (``nn.Linear``), e.g.
    :class:`zoo.training.MLP`; the result's forward is ``classifier(layer(features(x)))``.
    """
    mods = list(model.children())
    if not mods or not isinstance(mods[-1], nn.Linear):
        raise ValueError("with_feature_dropout needs a sequential network whose last module is nn.Linear")
    out = type(model).__new__(type(model))
    nn.Sequential.__init__(out, *mods[:-1], layer, mods[-1])
    return out


@torch.no_grad()
def prefix_logits(h: Tensor, classifier: nn.Linear) -> Tensor:
    """``(N, D, C)``: the classifier's logits from the first ``k`` features, for every ``k = 1..D``.

    ``logits_k = b + sum_{j<k} h_j W[:, j]``, a cumulative sum over the features (one pass instead of ``D``).
    """
    contrib = h.unsqueeze(-1) * classifier.weight.t().unsqueeze(0)  # (N, D, C)
    out = contrib.cumsum(1)
    return out + classifier.bias if classifier.bias is not None else out


@torch.no_grad()
def select_k(features: Callable[[Tensor], Tensor], classifier: nn.Linear, x: Tensor, y: Tensor,
             candidates: list[int] | None = None) -> tuple[int, list[float]]:
    """The ``K`` whose prefix of the features classifies ``(x, y)`` best (ties: the smallest ``K``).

    ``features(x)`` gives the ``(N, D)`` penultimate features; returns ``K`` and the accuracy of
    every candidate (default: all ``1..D``), as the authors' validation search does.
    """
    h = features(x)
    d = h.shape[-1]
    ks = candidates or list(range(1, d + 1))
    correct = (prefix_logits(h, classifier).argmax(-1) == y.unsqueeze(1)).double().mean(0)  # (D,)
    accs = [float(correct[k - 1]) for k in ks]
    best = max(range(len(ks)), key=lambda i: (accs[i], -ks[i]))
    return ks[best], accs
