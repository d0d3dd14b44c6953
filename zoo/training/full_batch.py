"""The shared full-batch loop, for problems whose (sub)gradient is written out in closed form.

Convex problems with a known optimum (least absolute deviations, quadratics) are where an
optimizer's theory can be checked against ground truth. They are full-batch and deterministic, so
running them through autograd and the mini-batch loop of :func:`zoo.training.train` only adds
per-step overhead: here an ``oracle`` returns the loss and the gradient of the parameters directly.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["Oracle", "full_batch_descent"]

Oracle = Callable[[list[torch.Tensor]], tuple[torch.Tensor, list[torch.Tensor]]]


@torch.no_grad()
def full_batch_descent(
    params: list[torch.Tensor],
    oracle: Oracle,
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    before_step: Callable[[int, list[torch.Tensor]], object] | None = None,
    after_step: Callable[[int], object] | None = None,
) -> torch.Tensor:
    """``steps`` optimizer steps on ``oracle``'s gradients; returns ``f(x_k)`` for k = 0..steps-1.

    Each step: ``f, grads = oracle(params)`` at the current iterate ``x_k``, the gradients are set
    as ``.grad``, ``before_step(k, grads)`` sees ``x_k`` and ``g_k`` (e.g. to track a bound), the
    optimizer steps, and ``after_step(k)`` sees its new state. The losses stay on the device until
    the end (one host read, not one per step).
    """
    losses = []
    for k in range(steps):
        f, grads = oracle(params)
        for p, g in zip(params, grads):
            p.grad = g
        losses.append(f.detach())
        if before_step is not None:
            before_step(k, grads)
        optimizer.step()
        if after_step is not None:
            after_step(k)
    return torch.stack(losses) if losses else torch.zeros(0)
