"""SSO: stochastic surrogate optimisation in target space, several cheap parameter steps per expensive gradient.

Jonathan Wilder Lavington, Sharan Vaswani, Reza Babanezhad, Mark Schmidt, Nicolas Le Roux.
*Target-based Surrogates for Stochastic Optimization*. ICML 2023. https://arxiv.org/abs/2302.02607
(authors' code: https://github.com/WilderLavington/Target-Based-Surrogates-For-Stochastic-Optimization,
``optimizers/sgd_fmdopt.py`` with the line search of ``optimizers/lsopt.py``; no package). Written
from the paper and from reading that code; no code is copied.

Notation (code name: paper symbol): the model maps parameters ``θ`` to **targets** ``z(θ)`` (the
outputs on the mini-batch, e.g. logits); the loss is ``L(z)`` (the batch mean of ``ℓ(z_i, y_i)``);
``eta``: ``η``, the step size in target space; ``m``: the number of inner (surrogate) steps; ``b``:
the batch size.

**The surrogate** (the paper's Eq. for SSO). One *expensive* gradient, of the loss with respect to
the targets, ``∇_z L(z_t)`` at ``z_t = z(θ_t)``, defines a surrogate that is cheap to minimise
over ``θ`` (it needs the model, not the loss)::

    g_t(θ) = L(z_t) + <∇_z L(z_t), z(θ) - z_t> + 1 / (2 η b) ||z(θ) - z_t||_F^2
    θ_{t+1} ≈ argmin_θ g_t(θ)          (m steps of gradient descent with an Armijo line search,
                                        started at θ_t)

Its exact minimiser over *targets* is projected SGD in target space, ``z_i <- z_i - η ∇ℓ(z_i)``
per example (the ``1/b`` makes ``η`` a per-example step, independent of the batch size); the inner
steps project that move onto the model's reachable targets. At ``θ_t`` the surrogate's gradient is
``∇_θ L(θ_t)``, the ordinary gradient: ``m = 1`` with a fixed step is SGD.

**Inner steps.** Each inner step takes ``d = -lr ∇_θ g_t(θ)`` (``lr``: the group's multiplier) and
backtracks ``s <- backtrack * s`` from the previous accepted ``s`` (``s = init_step`` at every
outer step, as the authors' ``reset_lr_on_step``) until ``g_t(θ + s d) <= g_t(θ) + c s <∇g_t, d>``
(at most ``max_backtracks`` times; the last ``s`` is then taken). The first inner step reuses the
gradient the closure back-propagated (it is ``∇_θ g_t(θ_t)``), so one outer step costs one
expensive gradient and ``m - 1`` surrogate gradients plus the line searches' surrogate values.

**How the targets reach the optimizer.** A closure cannot return the targets, so the training loss
is built by :func:`sso_loss`: ``sso_loss(opt, target_loss)(model, x, y)`` computes
``z = model(x)``, ``L = target_loss(z, y)`` and ``∇_z L`` (the expensive gradient), hands them
and ``lambda: model(x)`` to the optimizer (:meth:`SSO.set_targets`) and returns ``L``; the
closure's ``backward()`` then gives ``∇_θ L``. Without targets for a step (a plain closure) the
target map is the identity, ``z(θ) = θ``, and the surrogate's exact minimiser is the SGD step
``θ - lr η ∇L`` (the paper's framework in parameter space).

Counters in every param group: ``outer_steps`` (expensive gradients), ``inner_steps`` (surrogate
gradients, the first of each outer step included), ``surrogate_evals`` (surrogate values of the
line searches), ``step_size`` (the last accepted ``s``).

Departures from the authors' code: the proximity term is ``1/(2 η b) ||z - z_t||^2`` (the code
scales the linear term by ``1/eta`` and the proximity term by ``1/(b m_out)``, a
reparametrisation of ``η``); the line search is a plain Armijo backtracking search (the code's
``LSOpt`` also grows the step between calls); the first inner step reuses the closure's gradient
instead of recomputing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["SSO", "sso_loss"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def sso_loss(opt: "SSO", target_loss: Callable[[Tensor, Tensor], Tensor]) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """A ``loss(model, x, y)`` for the training loop that also hands ``opt`` this batch's targets.

    ``target_loss(z, y)`` is the loss as a function of the model's outputs (e.g.
    ``torch.nn.functional.cross_entropy``). The returned loss is ``target_loss(model(x), y)``.
    """
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        z = model(x)
        value = target_loss(z, y)
        (g_z,) = torch.autograd.grad(value, z, retain_graph=True)  # the expensive gradient ∇_z L(z_t)
        opt.set_targets(lambda: model(x), z.detach(), g_z.detach())
        return value

    return loss


class SSO(Optimizer):
    r"""SSO: m Armijo gradient steps on a target-space surrogate per expensive gradient.

    Build the training loss with :func:`sso_loss` and call ``opt.step(closure)``. With the targets
    ``z_t = z(θ_t)`` of the batch and the expensive gradient ``∇_z L(z_t)``:

    $$
    g_t(\theta) = L(z_t) + \langle \nabla_z L(z_t), z(\theta) - z_t\rangle
        + \frac{1}{2\eta b}\|z(\theta) - z_t\|_F^2,\qquad
    \theta_{t+1} \approx \arg\min_\theta g_t(\theta)\ \text{(m inner steps)}.
    $$

    Args:
        params: parameters or parameter groups (``lr`` per group multiplies its inner steps).
        eta: the target-space step size ``η``.
        m: inner steps per outer step (``m >= 1``).
        lr: the multiplier of the inner steps (1: the method).
        init_step: the line search's first step at every outer step.
        c: the Armijo constant.
        backtrack: the backtracking factor in ``(0, 1)``.
        max_backtracks: the most backtracks per inner step.

    Example:
        >>> import torch
        >>> from zoo.optim.sso import SSO, sso_loss
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = SSO(model.parameters(), eta=0.5, m=5)
        >>> loss_fn = sso_loss(opt, torch.nn.functional.mse_loss)
        >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model, x, y)
        ...     loss.backward()
        ...     return loss
        >>> before = float(closure().detach())
        >>> _ = opt.step(closure)
        >>> float(torch.nn.functional.mse_loss(model(x), y)) < before
        True

    References:
        Lavington, Vaswani, Babanezhad, Schmidt, Le Roux. Target-based Surrogates for Stochastic
        Optimization. ICML 2023. https://arxiv.org/abs/2302.02607
    """

    def __init__(self, params: Params, eta: float = 1.0, m: int = 10, lr: float = 1.0, init_step: float = 10.0,
                 c: float = 0.1, backtrack: float = 0.5, max_backtracks: int = 30) -> None:
        if not eta > 0.0:
            raise ValueError(f"invalid eta {eta}: must be > 0")
        if int(m) < 1:
            raise ValueError(f"invalid m {m}: must be >= 1")
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}: must be >= 0")
        if not (init_step > 0.0 and 0.0 < c < 1.0 and 0.0 < backtrack < 1.0 and int(max_backtracks) >= 0):
            raise ValueError("invalid line search: need init_step > 0, 0 < c < 1, 0 < backtrack < 1, max_backtracks >= 0")
        self.eta, self.m = float(eta), int(m)
        self.init_step, self.c, self.backtrack, self.max_backtracks = float(init_step), float(c), float(backtrack), int(max_backtracks)
        defaults = {"lr": lr, "outer_steps": 0, "inner_steps": 0, "surrogate_evals": 0, "step_size": float(init_step)}
        super().__init__(params, defaults)
        self._targets: tuple[Callable[[], Tensor], Tensor, Tensor] | None = None

    def set_targets(self, forward: Callable[[], Tensor], z_t: Tensor, g_z: Tensor) -> None:
        """This step's target map ``θ -> z(θ)`` (as ``forward()``), targets ``z_t`` and ``∇_z L(z_t)``."""
        self._targets = (forward, z_t, g_z)

    def _params(self) -> list[tuple[dict[str, Any], list[Tensor]]]:
        return [(g, [p for p in g["params"] if p.grad is not None]) for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One outer step: the closure's expensive gradient, then ``m`` surrogate steps. Returns the loss."""
        if closure is None:
            raise ValueError("SSO needs a closure (built on sso_loss) that computes the loss and back-propagates it")
        self._targets = None
        with torch.enable_grad():
            loss = closure()
        targets, self._targets = self._targets, None
        groups = self._params()
        params = [p for _, ps in groups for p in ps]
        for group in self.param_groups:
            group["outer_steps"] += 1
        if not params:
            return loss
        if targets is None:  # identity target map: the exact minimiser is an SGD step of size eta
            for group, ps in groups:
                if ps and group["lr"] != 0.0:
                    torch._foreach_add_(ps, [p.grad for p in ps], alpha=-group["lr"] * self.eta)
                group["inner_steps"] += 1
            return loss

        forward, z_t, g_z = targets
        scale = 1.0 / (2.0 * self.eta * z_t.shape[0])  # 1 / (2 eta b)

        def surrogate() -> Tensor:  # g_t(θ) without its constant L(z_t) - <∇L, z_t>
            z = forward()
            return (g_z * z).sum() + scale * (z - z_t).pow(2).sum()

        lrs = [group["lr"] for group, ps in groups for _ in ps]
        grads = [p.grad.detach().clone() for p in params]  # ∇g_t(θ_t) = ∇_θ L(θ_t): the closure's gradient
        s = self.init_step
        evals = inner = 0
        for k in range(self.m):
            if k > 0:
                with torch.enable_grad():
                    grads = [g.detach() for g in torch.autograd.grad(surrogate(), params, allow_unused=True,
                                                                       materialize_grads=True)]
            d = [g * (-lr) for g, lr in zip(grads, lrs)]
            slope = float(sum((g * di).sum() for g, di in zip(grads, d)))  # <∇g, d> <= 0
            if slope == 0.0:
                break
            inner += 1
            h0 = float(surrogate())
            evals += 1
            start = [p.detach().clone() for p in params]
            for _ in range(self.max_backtracks + 1):
                for p, w, di in zip(params, start, d):
                    p.copy_(w).add_(di, alpha=s)
                h = float(surrogate())
                evals += 1
                if h <= h0 + self.c * s * slope or not math.isfinite(h0):
                    break
                s *= self.backtrack
        for group in self.param_groups:
            group["inner_steps"] += inner
            group["surrogate_evals"] += evals
            group["step_size"] = s
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(
        name="sso", cls=SSO, paper="target_based_surrogates", reference=None, needs_closure=True,
        test_kwargs={"eta": 0.1},  # a plain closure: the identity target map, SGD with step eta
        description=(SSO.__doc__ or "").strip().splitlines()[0]))


_register()
