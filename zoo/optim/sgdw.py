"""SGDW: SGD with momentum and decoupled weight decay (Loshchilov & Hutter's Algorithm 1).

Ilya Loshchilov, Frank Hutter. *Decoupled Weight Decay Regularization*. ICLR 2019.
https://arxiv.org/abs/1711.05101 (authors' code, Lua/Torch: https://github.com/loshchil/AdamW-and-SGDW).

torch ships AdamW (decoupled decay for Adam) but no decoupled SGD: ``torch.optim.SGD``'s
``weight_decay`` is an L2 term added to the gradient, which the momentum buffer then carries.
The paper's Algorithm 1, with ``eta_t`` the schedule multiplier, ``alpha`` the learning rate and
``lambda`` the decay::

    g_t     = grad f_t(theta_{t-1})                        (no lambda theta here: decoupled)
    m_t     = beta1 m_{t-1} + eta_t alpha g_t
    theta_t = theta_{t-1} - m_t - eta_t lambda theta_{t-1}

This class follows torch's conventions, as torch's AdamW and ``pytorch_optimizer.SGDW`` do::

    theta <- theta (1 - lr wd)                             (decay from the current weights)
    buf   <- momentum buf + (1 - dampening) g              (buf = g at the first step)
    theta <- theta - lr buf                                (Nesterov: lr (g + momentum buf))

Notation: ``lr`` = ``alpha eta_t`` (a torch scheduler supplies ``eta_t``), ``momentum`` =
``beta1``, ``weight_decay`` = ``wd``. Departures from the paper, both stated: the decay is
``lr wd`` per step, so the paper's ``eta_t lambda`` is ``weight_decay = lambda / alpha`` (torch
AdamW's convention; pass that to keep the paper's decoupling from ``alpha``); and the momentum
buffer accumulates gradients with ``lr`` outside (torch SGD's convention), not ``eta_t alpha g``
inside, which differs only while the schedule moves. With ``momentum=0`` and no schedule it is
the paper's update exactly. Matches ``pytorch_optimizer.SGDW`` (4.1) with ``weight_decouple=True``
step for step (``tests/optim/test_sgdw.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["SGDW"]


class SGDW(torch.optim.Optimizer):
    r"""SGD with momentum and decoupled weight decay (Loshchilov & Hutter, 2019, Algorithm 1).

    ```text
    theta = theta (1 - lr wd)
    buf   = momentum buf + (1 - dampening) g        (buf_1 = g)
    theta = theta - lr buf                          (nesterov: theta - lr (g + momentum buf))
    ```

    Args:
        params: Parameters, or dicts defining parameter groups.
        lr: Learning rate (``alpha eta_t`` of the paper), ``>= 0``.
        momentum: Momentum factor ``beta1`` in ``[0, 1)`` (default 0).
        weight_decay: Decoupled decay ``wd >= 0``: each step multiplies the weights by
            ``1 - lr wd`` (the paper's ``lambda`` is ``wd lr0``; default 0).
        dampening: Dampening of the gradient in the momentum buffer (default 0).
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        foreach: Use torch's multi-tensor ``_foreach`` ops (default: on; ``False`` loops).

    Example:
        >>> import torch
        >>> from zoo.optim.sgdw import SGDW
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = SGDW(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
        >>> loss = torch.nn.functional.mse_loss(model(torch.randn(8, 3)), torch.randn(8, 1))
        >>> loss.backward()
        >>> opt.step()

    References:
        Loshchilov, Hutter. Decoupled Weight Decay Regularization. ICLR 2019.
        https://arxiv.org/abs/1711.05101.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        foreach: bool = True,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"SGDW: lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGDW: momentum must be in [0, 1), got {momentum}")
        if not weight_decay >= 0.0:
            raise ValueError(f"SGDW: weight_decay must be >= 0, got {weight_decay}")
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError("SGDW: nesterov needs momentum > 0 and dampening == 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening,
                                      nesterov=nesterov, foreach=foreach))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One SGDW step for every parameter with a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("SGDW does not support sparse gradients")
            grads = [p.grad for p in params]
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            if group["foreach"]:
                self._step_foreach(group, params, grads, lr, wd, mom)
            else:
                self._step_loop(group, params, grads, lr, wd, mom)
        return loss

    def _buffers(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[bool]]:
        bufs, fresh = [], []
        for p, g in zip(params, grads):
            state = self.state[p]
            new = "momentum_buffer" not in state
            if new:
                state["momentum_buffer"] = g.detach().clone()
            bufs.append(state["momentum_buffer"])
            fresh.append(new)
        return bufs, fresh

    def _step_foreach(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                      lr: float, wd: float, mom: float) -> None:
        if wd != 0.0:
            torch._foreach_mul_(params, 1.0 - lr * wd)  # theta (1 - lr wd): decoupled from the gradient
        if mom == 0.0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        bufs, fresh = self._buffers(params, grads)
        old = [b for b, f in zip(bufs, fresh) if not f]
        if old:
            torch._foreach_mul_(old, mom)
            torch._foreach_add_(old, [g for g, f in zip(grads, fresh) if not f], alpha=1.0 - group["dampening"])
        direction = torch._foreach_add(grads, bufs, alpha=mom) if group["nesterov"] else bufs
        torch._foreach_add_(params, direction, alpha=-lr)

    def _step_loop(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                   lr: float, wd: float, mom: float) -> None:
        for p, g in zip(params, grads):
            if wd != 0.0:
                p.mul_(1.0 - lr * wd)
            if mom == 0.0:
                p.add_(g, alpha=-lr)
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                buf = state["momentum_buffer"] = g.detach().clone()
            else:
                buf = state["momentum_buffer"]
                buf.mul_(mom).add_(g, alpha=1.0 - group["dampening"])
            p.add_(g.add(buf, alpha=mom) if group["nesterov"] else buf, alpha=-lr)


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(name="sgdw", cls=SGDW, paper="decoupled_weight_decay",
                                     test_kwargs={"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
                                     reference="pytorch_optimizer:SGDW",
                                     description=(SGDW.__doc__ or "").strip().splitlines()[0]))


_register()
