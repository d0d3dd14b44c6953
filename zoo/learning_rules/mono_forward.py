"""Mono-Forward: each layer is trained on its own cross-entropy, read out by a projection matrix.

James Gong, Bruce Li, Waleed Abdulla. *Mono-Forward: Backpropagation-Free Algorithm for Efficient
Neural Network Training Harnessing Local Errors*. 2025. https://arxiv.org/abs/2501.09238; one of
the three methods of Przemysław Spyra, *Beyond Backpropagation: Exploring Innovative Algorithms for
Energy-Efficient Deep Neural Network Training*, 2025 (spec ``backprop_free_training_comparison``).

Written from the paper; nothing copied.

Notation (code name: paper symbol):

* ``net.layers[i]``: ``W_i, b_i``; ``a_i = relu(W_i a_{i-1} + b_i)``, ``a_0 = x``;
* ``net.projections[i]``: ``M_i`` (``C x n_i``), the layer's fixed-size read-out, learned;
* ``G_i = a_i M_i^T``: the layer's "goodness" scores, one per class.

Each layer minimises its own cross-entropy, with its input detached (no error crosses a layer)::

    L_i = -log softmax(G_i)_y,      (W_i, b_i, M_i) <- optimiser step on ∇ L_i

All layers are updated on every mini-batch in one forward sweep (:func:`train_step`; the sum of
the ``L_i`` is back-propagated once: each ``L_i`` reaches only ``W_i, b_i, M_i`` because the
inputs are detached, so this equals one step per layer). Prediction: ``argmax G_L`` of the last
layer (the paper's default; ``layer=`` picks another).

Departures from the paper: none in the rule; the optimiser (Adam, one per layer) and the widths
are the experiment's choices. There is no output layer beyond ``M_L``, so a Mono-Forward MLP with
hidden sizes ``[n_1, ..., n_L]`` has the parameters of the back-propagation MLP
``in -> n_1 -> ... -> n_L -> C`` (without its output bias), plus ``M_1 .. M_{L-1}``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MonoForwardNet", "local_losses", "train_step", "predict", "make_optimizers"]


class MonoForwardNet(nn.Module):
    """An MLP ``in -> hidden...`` with a projection ``M_i`` per hidden layer.

    Example:
        >>> net = MonoForwardNet(64, [32, 32], 10)
        >>> print([tuple(g.shape) for g in net(torch.rand(4, 64))])
        [(4, 10), (4, 10)]
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("Mono-Forward needs at least one hidden layer")
        sizes = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.projections = nn.ParameterList(
            nn.Parameter(nn.init.kaiming_uniform_(torch.empty(num_classes, n), a=5 ** 0.5)) for n in hidden)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, detach: bool = True) -> list[torch.Tensor]:
        """``[G_1, ..., G_L]``; with ``detach`` each layer's input is cut from the graph."""
        a = x.flatten(1)
        out = []
        for layer, m in zip(self.layers, self.projections):
            a = F.relu(layer(a.detach() if detach else a))
            out.append(a @ m.t())
        return out


def local_losses(net: MonoForwardNet, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """``[L_1, ..., L_L]``, each ``CE(G_i, y)`` on a detached input."""
    return [F.cross_entropy(g, y) for g in net(x, detach=True)]


def make_optimizers(net: MonoForwardNet, lr: float) -> list[torch.optim.Optimizer]:
    """One Adam per layer over ``(W_i, b_i, M_i)``."""
    return [torch.optim.Adam([*layer.parameters(), m], lr=lr) for layer, m in zip(net.layers, net.projections)]


def train_step(net: MonoForwardNet, opts: Sequence[torch.optim.Optimizer], x: torch.Tensor, y: torch.Tensor) -> float:
    """One mini-batch: every layer one step on its own ``L_i``; returns the last layer's loss."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    losses = local_losses(net, x, y)
    torch.stack(losses).sum().backward()
    for opt in opts:
        opt.step()
    return float(losses[-1].detach())


@torch.no_grad()
def predict(net: MonoForwardNet, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """``argmax G_layer`` (default: the last layer)."""
    return net(x)[layer].argmax(1)
