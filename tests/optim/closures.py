"""The closure the optimizer tests step with: zero the gradients, MSE loss, backward, return the loss."""

from __future__ import annotations

from collections.abc import Callable

import torch


def mse_closure(opt: torch.optim.Optimizer, model: torch.nn.Module, x: torch.Tensor,
                y: torch.Tensor) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    return closure
