"""Instant parameter updates during back-propagation: each layer steps as soon as its gradient is known.

*A Novel Method for improving accuracy in neural network by reinstating traditional back
propagation technique* (spec ``instant_parameter_update_backprop``). The abstract says that
parameters are updated "instantly" as the error passes each layer, so that gradients need not be
computed and stored for every layer before the update; it gives no algorithm. **This module is
our reading of it**, not the authors' method.

Our reading. For an MLP ``z_l = W_l a_{l-1} + b_l``, ``a_l = f(z_l)`` with cross-entropy loss ``L``
on a mini-batch of ``B`` examples, back-propagation with plain SGD computes, from the top layer
down, ``δ_L = (softmax(z_L) - onehot(y)) / B`` and::

    g_{W_l} = δ_l^T a_{l-1},   g_{b_l} = sum_n δ_l
    δ_{l-1} = (δ_l W_l) ⊙ f'(z_{l-1})

and then updates every layer with ``W_l <- W_l - η g_{W_l}``. The instant rule applies that update
to layer ``l`` at once, *before* the error goes down, and passes the error through the updated
weights::

    W_l' = W_l - η g_{W_l},   b_l' = b_l - η g_{b_l}
    δ_{l-1} = (δ_l W_l') ⊙ f'(z_{l-1})        (through="updated", the instant rule)
    δ_{l-1} = (δ_l W_l)  ⊙ f'(z_{l-1})        (through="stale": exactly back-propagation + SGD)

So the lower layers' gradients differ from back-propagation's by ``-η δ_l (δ_l^T a_{l-1})``, a term
of order ``η``; the forward activations are the ones of the pre-update weights in both.
Only one layer's gradient is held at a time (the memory saving the abstract names).

Note: updating parameters in torch's ``register_post_accumulate_grad_hook`` during an autograd
``backward()`` is *not* this rule: autograd computes ``δ_{l-1}`` from the weights saved in the
forward pass (the same node that yields ``g_{W_l}``), so for plain SGD the hook version gives
exactly back-propagation's step (a test pins it); the rule above needs the manual backward sweep
written here.

Supports ``nn.Sequential`` stacks of ``nn.Linear`` and ``nn.ReLU`` (e.g. :class:`zoo.training.MLP`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["instant_update_step", "Through"]

Through = Literal["updated", "stale"]


@torch.no_grad()
def instant_update_step(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, lr: float,
                        through: Through = "updated") -> float:
    """One mini-batch of the instant rule (cross-entropy, plain SGD); returns the batch loss before the step.

    Args:
        model: ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU`` modules (input flattened).
        x, y: the mini-batch.
        lr: ``η``.
        through: ``"updated"`` (the instant rule) or ``"stale"`` (back-propagation then SGD).

    Example:
        >>> from zoo.training import MLP
        >>> m = MLP(8, [4], 3)
        >>> isinstance(instant_update_step(m, torch.rand(5, 8), torch.tensor([0, 1, 2, 0, 1]), 0.1), float)
        True
    """
    if through not in ("updated", "stale"):
        raise ValueError(f"through must be 'updated' or 'stale', got {through!r}")
    inputs: list[torch.Tensor] = []
    a = x.flatten(1)
    for m in model:
        inputs.append(a)
        if isinstance(m, nn.Linear):
            a = F.linear(a, m.weight, m.bias)
        elif isinstance(m, nn.ReLU):
            a = F.relu(a)
        else:
            raise TypeError(f"instant_update_step supports nn.Linear and nn.ReLU layers, got {type(m).__name__}")
    loss = float(F.cross_entropy(a, y))
    delta = (a.softmax(1) - F.one_hot(y, a.shape[1]).to(a.dtype)) / a.shape[0]  # δ_L = ∂L/∂z_L
    for i in range(len(model) - 1, -1, -1):
        m, a_in = model[i], inputs[i]
        if isinstance(m, nn.ReLU):
            delta = delta * (a_in > 0).to(delta.dtype)  # ⊙ f'(z_{l-1})
            continue
        g_w = delta.t() @ a_in  # g_{W_l} = δ_l^T a_{l-1}
        g_b = delta.sum(0) if m.bias is not None else None
        if through == "stale" and i > 0:
            delta_down = delta @ m.weight  # δ_l W_l (before the update)
        m.weight.sub_(g_w, alpha=lr)  # W_l' = W_l - η g_{W_l}, at once
        if g_b is not None:
            m.bias.sub_(g_b, alpha=lr)
        if i > 0:
            delta = delta @ m.weight if through == "updated" else delta_down  # δ_l W_l'
    return loss
