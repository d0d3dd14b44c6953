"""Forward-Forward: each layer learns to give positive data high goodness and negative data low goodness.

Geoffrey Hinton. *The Forward-Forward Algorithm: Some Preliminary Investigations*. 2022.
https://arxiv.org/abs/2212.13345

Written from the paper; the layer rule is checked step by step against the PyPI package
``fflib`` 0.3.0 (``fflib.nn.ff_linear.FFLinear``, ``fflib.nn.ff_net.FFNet.run_train_combined``,
MIT licence; nothing copied), the test-only oracle.

Notation (code name: paper symbol):

* ``h = relu(W x̂ + b)``, ``x̂ = x / (||x|| + 1e-4)``: a layer's activities; the input is length-
  normalised so that only its direction, not the previous layer's goodness, reaches the layer;
* ``goodness(h) = mean_j h_j^2``: the goodness (the paper uses the sum; the mean only rescales
  ``θ``, and is what ``fflib`` uses);
* ``threshold``: ``θ``; ``p(positive) = σ(goodness - θ)``.

Each layer's loss on a positive batch ``x⁺`` (the input with its correct label embedded) and a
negative batch ``x⁻`` (the same input with a wrong label) is the logistic loss of that
probability::

    L_l = mean( [softplus(θ - G(h_l(x⁺))), softplus(G(h_l(x⁻)) - θ)] )

Training (:func:`train_step`, ``fflib``'s ``run_train_combined``): on every mini-batch, layer 1
takes one step of its own optimizer on ``L_1`` with its input detached, then its *updated*
output (detached) is the next layer's input, and so on: no gradient crosses a layer.
Supervision (the paper's Section 3.3): the label is embedded in the input; here as a one-hot
vector scaled by the row's largest absolute input, concatenated to the input (the paper
overwrites the first 10 pixels of an MNIST image, which our flat MNIST-1D input does not have
to spare). Negative data: the same inputs with a label drawn uniformly among the wrong ones.
Prediction: embed every label in turn, sum the goodness over layers, take the argmax (the
paper's Section 3.3; the paper leaves out the first hidden layer of its deeper nets, an
option here: ``skip_first``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FFLayer", "ForwardForwardNet", "embed_label", "negative_labels", "layer_loss", "train_step", "goodness_per_label",
           "predict", "make_optimizers"]


def embed_label(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[x, one_hot(y) * max_j |x_j|]``: the input with its label appended (flattened input)."""
    x = x.flatten(1)
    scale = x.abs().amax(1, keepdim=True).clamp_min(1e-6)
    return torch.cat([x, F.one_hot(y, num_classes).to(x.dtype) * scale], 1)


def negative_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A wrong label for every example, uniform over the ``C - 1`` others."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device="cpu").to(y.device)
    return (y + shift) % num_classes


class FFLayer(nn.Linear):
    """``h = relu(W x / (||x|| + 1e-4) + b)``: one Forward-Forward layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_dir = x / (x.norm(2, 1, keepdim=True) + 1e-4)
        return F.relu(F.linear(x_dir, self.weight, self.bias))


def goodness(h: torch.Tensor) -> torch.Tensor:
    """``G(h) = mean_j h_j^2`` per example."""
    return h.pow(2).mean(1)


class ForwardForwardNet(nn.Module):
    """A stack of :class:`FFLayer` (``in + C -> hidden...``) trained by Forward-Forward.

    Example:
        >>> net = ForwardForwardNet(64, [32], 10)
        >>> predict(net, torch.rand(4, 64)).shape
        torch.Size([4])
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, threshold: float = 2.0,
                 skip_first: bool = False) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("Forward-Forward needs at least one hidden layer")
        sizes = [in_features + num_classes, *hidden]
        self.layers = nn.ModuleList(FFLayer(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.num_classes, self.threshold, self.skip_first = num_classes, float(threshold), bool(skip_first)


def layer_loss(layer: FFLayer, x_pos: torch.Tensor, x_neg: torch.Tensor, threshold: float) -> torch.Tensor:
    """``mean([softplus(θ - G(h(x⁺))), softplus(G(h(x⁻)) - θ)])``, the inputs detached."""
    g_pos = goodness(layer(x_pos.detach()))
    g_neg = goodness(layer(x_neg.detach()))
    return torch.cat([F.softplus(threshold - g_pos), F.softplus(g_neg - threshold)]).mean()


def make_optimizers(net: ForwardForwardNet, lr: float) -> list[torch.optim.Optimizer]:
    """One Adam per layer (each layer learns on its own, as in ``fflib``)."""
    return [torch.optim.Adam(layer.parameters(), lr=lr) for layer in net.layers]


def train_step(net: ForwardForwardNet, opts: Sequence[torch.optim.Optimizer], x: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None, y_neg: torch.Tensor | None = None) -> float:
    """One mini-batch: each layer in turn takes one step on its loss; returns the mean layer loss.

    ``y_neg`` (the negative labels) is drawn with :func:`negative_labels` unless given.
    """
    if y_neg is None:
        y_neg = negative_labels(y, net.num_classes, generator)
    h_pos, h_neg = embed_label(x, y, net.num_classes), embed_label(x, y_neg, net.num_classes)
    total = 0.0
    for layer, opt in zip(net.layers, opts):
        opt.zero_grad(set_to_none=True)
        loss = layer_loss(layer, h_pos, h_neg, net.threshold)
        loss.backward()
        opt.step()
        total += float(loss.detach())
        with torch.no_grad():  # the updated layer's output feeds the next layer
            h_pos, h_neg = layer(h_pos), layer(h_neg)
    return total / len(net.layers)


@torch.no_grad()
def goodness_per_label(net: ForwardForwardNet, x: torch.Tensor) -> torch.Tensor:
    """``(N, C)``: the goodness summed over layers with each label embedded."""
    out = []
    for c in range(net.num_classes):
        h = embed_label(x, torch.full((x.shape[0],), c, dtype=torch.long, device=x.device), net.num_classes)
        total = torch.zeros(x.shape[0], device=x.device, dtype=h.dtype)
        for i, layer in enumerate(net.layers):
            h = layer(h)
            if not (net.skip_first and i == 0 and len(net.layers) > 1):
                total = total + goodness(h)
        out.append(total)
    return torch.stack(out, 1)


@torch.no_grad()
def predict(net: ForwardForwardNet, x: torch.Tensor) -> torch.Tensor:
    """``argmax_c sum_l G(h_l(x, c))``."""
    return goodness_per_label(net, x).argmax(1)
