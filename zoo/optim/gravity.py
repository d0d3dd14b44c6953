"""Gravity: a kinematic optimizer with a bounded per-element step and a t-dependent average.

Dariush Bahrami, Sadegh Pour Zadeh. *Gravity Optimizer: a Kinematic Approach on Optimization in
Deep Learning*. 2021. https://arxiv.org/abs/2101.09192 (authors' code:
https://github.com/dariush-bahrami/gravity.optimizer).

A ball on an inclined plane of slope ``g`` under a constant acceleration moves by
``-l g / (1 + g^2)``; tilting the plane by ``1/m`` gives ``-l g / (1 + (g/m)^2)``, whose largest
step ``l m / 2`` is reached at ``g = m``. With ``m`` chosen per weight tensor from its gradient
matrix ``G`` and velocity averaging with a ``beta`` that grows towards its nominal value::

    m_t     = 1 / max|G_t|                          (per parameter tensor)
    zeta_t  = g_t / (1 + (g_t / m_t)^2)             (element-wise)
    beta_t  = (beta t + 1) / (t + 2)                (t = 1, 2, ... the step count)
    V_t     = beta_t V_{t-1} + (1 - beta_t) zeta_t
    w_t     = w_{t-1} - l V_t
    V_0     ~ N(0, (alpha / l)^2)                   (element-wise, std alpha / l)

Notation: ``l`` -> ``lr``, ``alpha`` -> ``alpha``, ``beta`` -> ``beta``, ``V`` ->
``state["v"]``, ``t`` -> ``group["step"]``. ``V_0`` has standard deviation ``alpha / lr`` (the
authors' code and ``pytorch_optimizer``), so the first displacement ``l V`` is of size ``alpha``.

Departures: ``V_0`` is drawn at a parameter's first step (as in ``pytorch_optimizer``, not at
construction as in the authors' code) from a ``generator`` the user may pass; a parameter whose
group has ``lr == 0`` at that moment is left alone until its ``lr`` is positive (``alpha / 0`` has no
meaning). ``zeta`` is computed as ``g / (1 + (g max|G|)^2)``, equal to the paper's expression and
finite for an all-zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Gravity"]


class Gravity(torch.optim.Optimizer):
    r"""Gravity optimizer (Bahrami & Zadeh, 2021).

    ```text
    zeta   = g / (1 + (g / m)^2),   m = 1 / max|G|   (per tensor)
    beta_t = (beta t + 1) / (t + 2)
    V      = beta_t V + (1 - beta_t) zeta,          V_0 ~ N(0, (alpha / lr)^2)
    w      = w - lr V
    ```

    Args:
        params: Parameters, or dicts defining parameter groups.
        lr: Learning rate ``l > 0`` (the paper's default 0.1). A group may start at 0 (warm-up):
            its velocities are drawn at its first step with a positive ``lr``.
        alpha: Scale of the random initial velocity, ``std(V_0) = alpha / lr`` (default 0.01).
        beta: Nominal averaging factor of the velocity, ``0 <= beta < 1`` (default 0.9).
        generator: Random generator for ``V_0`` (seed it for reproducible runs); ``None`` uses
            torch's global generator. A generator on another device than a parameter draws there
            and the values are copied to the parameter's device.

    Example:
        >>> import torch
        >>> from zoo.optim import Gravity
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = Gravity(model.parameters(), lr=0.1, generator=torch.Generator().manual_seed(0))
        >>> loss = torch.nn.functional.mse_loss(model(torch.randn(8, 3)), torch.randn(8, 1))
        >>> loss.backward()
        >>> opt.step()

    References:
        Bahrami, Zadeh. Gravity Optimizer: a Kinematic Approach on Optimization in Deep Learning.
        2021. https://arxiv.org/abs/2101.09192.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        alpha: float = 0.01,
        beta: float = 0.9,
        generator: torch.Generator | None = None,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Gravity: lr must be >= 0, got {lr}")
        if not alpha >= 0.0:
            raise ValueError(f"Gravity: alpha must be >= 0, got {alpha}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Gravity: beta must be in [0, 1), got {beta}")
        self.generator = generator
        super().__init__(params, dict(lr=lr, alpha=alpha, beta=beta))

    def _initial_velocity(self, p: torch.Tensor, std: float) -> torch.Tensor:
        gen = self.generator
        if gen is None or gen.device == p.device:
            return torch.empty_like(p, memory_format=torch.preserve_format).normal_(0.0, std, generator=gen)
        return torch.empty(p.shape, dtype=p.dtype, device=gen.device).normal_(0.0, std, generator=gen).to(p.device)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One Gravity step for every parameter with a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            t = group["step"] = group.get("step", 0) + 1
            beta_t = (group["beta"] * t + 1) / (t + 2)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Gravity does not support sparse gradients")
                state = self.state[p]
                if "v" not in state:
                    if lr == 0:
                        continue  # no V_0 without a positive lr; nothing moves at lr 0 anyway
                    state["v"] = self._initial_velocity(p, group["alpha"] / lr)
                g, v = p.grad, state["v"]
                zeta = g / (1 + (g * g.abs().max()) ** 2)  # g / (1 + (g/m)^2), m = 1/max|G|
                v.mul_(beta_t).add_(zeta, alpha=1 - beta_t)  # V_t = beta_t V + (1 - beta_t) zeta
                p.add_(v, alpha=-lr)  # w_t = w - l V_t
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(name="gravity", cls=Gravity, paper="gravity_optimizer",
                                     # the step is at most lr m / 2 with m = 1 / max|G|: on the contract's
                                     # problem (initial gradients ~10) lr 0.1 needs more than 200 steps
                                     test_kwargs={"lr": 0.5},
                                     reference="pytorch_optimizer:Gravity",
                                     description=(Gravity.__doc__ or "").strip().splitlines()[0]))


_register()
