"""SANIA: preconditioned Polyak steps with a second-order model, scale invariant by construction.

Farshed Abdukhakimov, Chulu Xiang, Dmitry Kamzolov, Robert M. Gower, Martin Takáč. *SANIA:
Polyak-type Optimization Framework Leads to Scale Invariant Stochastic Algorithms*. 2023.
https://arxiv.org/abs/2312.17369 (authors' code: https://github.com/fxrshed/SANIA, files
``SANIA/sania_adagrad_sqr.py`` and ``SANIA/sania_adam_sqr.py``; no PyPI package). Written from the
paper and from reading that code; no code is copied.

Notation (code name: paper symbol): ``loss``: ``f_i(w_t)`` (the mini-batch loss, assumed
``>= 0``: the interpolation target ``f_i^* = 0`` of Polyak steps); ``p.grad``: ``g_t``;
``state["sum"]``: the diagonal of the preconditioner ``B_t``; ``t``: the step ``lambda_t`` along
the preconditioned direction ``B_t^{-1} g_t``; ``lr``: a multiplier of that step (1 = the paper).

**The SANIA step.** SANIA moves to the point closest to ``w_t`` in the ``B_t``-norm at which a
second-order model of the loss with curvature ``B_t`` reaches the target ``0``::

    w_{t+1} = argmin_w ||w - w_t||^2_{B_t}
              s.t.  f_i(w_t) + <g_t, w - w_t> + 1/2 ||w - w_t||^2_{B_t} = 0.

The solution lies on ``w_t - lambda B_t^{-1} g_t``; with ``n_t = ||g_t||^2_{B_t^{-1}} = <B_t^{-1}
g_t, g_t>`` the constraint is ``f - lambda n_t + lambda^2 n_t / 2 = 0``, whose smaller root is::

    lambda_t = 1 - sqrt(1 - 2 f_i(w_t) / n_t)     if 2 f_i(w_t) <= n_t
    lambda_t = 1                                   otherwise (the model never reaches 0: take
                                                   its minimiser, the preconditioned Newton step)
    w_{t+1}  = w_t - lr * lambda_t * B_t^{-1} g_t

**Preconditioners without the square root ("SQR" variants).** ``B_t`` scales like the square of
the gradient, so ``B_t^{-1} g_t`` scales like ``1 / g``: this is what makes the method invariant
to a rescaling of the coordinates (features multiplied by fixed factors ``v_j`` map the iterates
``w_t`` to ``w_t / v_j`` exactly, from a correspondingly rescaled start), which Adam's and
AdaGrad's square roots break::

    AdaGrad-SQR:  B_t = diag(max(eps, sum_{s<=t} g_s^2))
    Adam-SQR:     v_t = beta2 v_{t-1} + (1 - beta2) g_t^2,  B_t = diag(max(eps, v_t / (1 - beta2^t)))

``sqrt=True`` uses ``sqrt(B_t)`` instead (the authors' ``is_sqrt`` switch: ordinary AdaGrad /
RMSProp scaling, not scale invariant). Adam-SQR has no first moment (the authors' code keeps
``beta1`` unused; we take only ``beta2``).

Departures from the authors' code, none of which changes a one-group trajectory:

* ``n_t`` is summed over **all** parameter groups (one model of the whole loss, as the paper's
  derivation has it); the code takes each group's own ``n_t`` with the full loss. Each group
  still steps with its own ``lr``, ``eps`` and ``beta2``;
* the step is multiplied by ``lr`` in both variants (the AdaGrad code ignores ``lr`` and writes
  ``lambda_t`` into ``group["lr"]``, which breaks schedulers); ``lambda_t`` of the last step is in
  ``group["step_size"]``;
* Adam-SQR counts steps per parameter (the code counts once per group per step, which is wrong
  with several groups);
* parameters without a gradient are skipped (the code fails on them); ``n_t = 0`` (all gradients
  zero) leaves the weights unchanged;
* the default ``eps`` is ``1e-10`` (the code's default is ``0.1``, its experiment scripts pass
  ``0``): the floor only guards coordinates whose gradient has always been zero, and a floor that
  binds breaks the scale invariance. Pass ``eps=0.1`` for the code's default.

One step reads the loss and ``n_t`` back to the host once (float64 arithmetic for ``lambda_t``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["SANIAAdaGradSQR", "SANIAAdamSQR", "sania_step_size"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def sania_step_size(loss: float, norm: float) -> float:
    """``lambda_t``: the smaller root of ``f - lambda n + lambda^2 n / 2 = 0``, or 1 without a root.

    ``loss`` is ``f_i(w_t) >= 0`` and ``norm`` is ``n_t = ||g_t||^2_{B_t^{-1}}``. Returns 1 when
    ``n_t <= 0`` too (the direction is then zero, so the weights stay put).
    """
    if norm > 0.0 and 2.0 * loss <= norm:
        return 1.0 - math.sqrt(max(1.0 - 2.0 * loss / norm, 0.0))
    return 1.0


class _SANIA(Optimizer):
    """The shared step: accumulate ``B_t`` (subclass), precondition, one SANIA step for all groups."""

    def _accumulate(self, group: dict[str, Any], p: Tensor, g: Tensor, state: dict[str, Any]) -> Tensor:
        """Update the state of ``p`` with ``g`` and return the diagonal of ``B_t`` (before ``eps``)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:  # type: ignore[override]
        """One SANIA step from ``closure()`` (or the given ``loss`` after your own backward); returns the loss."""
        if (closure is None) == (loss is None):
            raise ValueError("SANIA needs the loss value: pass exactly one of `closure` or `loss=`")
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]] = []
        norms: list[Tensor] = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            dirs = []
            for p in params:
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("SANIA does not support sparse gradients")
                b = self._accumulate(group, p, g, self.state[p])
                b = torch.clamp(b, min=group["eps"])  # max(eps, B_t)
                if group["sqrt"]:
                    b = b.sqrt()
                d = g / b  # B_t^{-1} g_t
                dirs.append(d)
                norms.append(torch.dot(d.reshape(-1), g.reshape(-1)).to(torch.float64))  # <B^-1 g, g>
            work.append((group, params, dirs))
        if not norms:
            return loss
        f = torch.as_tensor(loss).detach().to(device=norms[0].device, dtype=torch.float64).reshape(())
        f_, n_ = torch.stack([f, torch.stack(norms).sum()]).tolist()  # the one host sync
        t = sania_step_size(f_, n_)
        for group, params, dirs in work:
            group["step_size"] = t
            if params and group["lr"] != 0.0:
                torch._foreach_add_(params, dirs, alpha=-group["lr"] * t)  # w - lr lambda B^-1 g
        return loss


class SANIAAdaGradSQR(_SANIA):
    r"""SANIA AdaGrad-SQR: the SANIA Polyak step with AdaGrad's accumulated squared gradients, no root.

    ``step`` needs the loss value (non-negative): ``opt.step(closure)``, or ``opt.step(loss=loss)``
    after your own ``backward``. With ``B_t = diag(max(eps, \sum_{s\le t} g_s^2))`` and
    ``n_t = \|g_t\|^2_{B_t^{-1}}``:

    $$
    \lambda_t = \begin{cases} 1 - \sqrt{1 - 2 f_i(w_t)/n_t} & 2 f_i(w_t) \le n_t \\ 1 & \text{otherwise}\end{cases},
    \qquad w_{t+1} = w_t - \mathrm{lr}\,\lambda_t B_t^{-1} g_t .
    $$

    Args:
        params: parameters or parameter groups (``lr``, ``eps``, ``sqrt`` may differ per group).
        lr: a multiplier of the step (1, the paper's method; a scheduler may change it).
        eps: the floor of ``B_t``'s diagonal.
        sqrt: precondition with ``sqrt(B_t)`` (plain AdaGrad scaling; not scale invariant).

    Example:
        >>> import torch
        >>> from zoo.optim.sania import SANIAAdaGradSQR
        >>> w = torch.nn.Parameter(torch.tensor([2.0]))
        >>> opt = SANIAAdaGradSQR([w])
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (w ** 2).sum() / 4       # f = 1, g = 1, B = 1, n = 1 < 2 f: lambda = 1
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> round(w.item(), 6)
        1.0

    References:
        Abdukhakimov, Xiang, Kamzolov, Gower, Takáč. SANIA: Polyak-type Optimization Framework
        Leads to Scale Invariant Stochastic Algorithms. 2023. https://arxiv.org/abs/2312.17369
    """

    def __init__(self, params: Params, lr: float = 1.0, eps: float = 1e-10, sqrt: bool = False) -> None:
        _check(lr, eps)
        super().__init__(params, {"lr": lr, "eps": eps, "sqrt": bool(sqrt), "step_size": 1.0})

    def _accumulate(self, group: dict[str, Any], p: Tensor, g: Tensor, state: dict[str, Any]) -> Tensor:
        if not state:
            state["sum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["sum"].addcmul_(g, g)  # sum_s g_s^2
        return state["sum"]


class SANIAAdamSQR(_SANIA):
    r"""SANIA Adam-SQR: the SANIA Polyak step with Adam's bias-corrected second moment, no root.

    ``step`` needs the loss value (non-negative), as :class:`SANIAAdaGradSQR`. With
    ``v_t = beta2 v_{t-1} + (1 - beta2) g_t^2`` and ``B_t = diag(max(eps, v_t / (1 - beta2^t)))``,
    the step is SANIA's ``w_{t+1} = w_t - lr * lambda_t * B_t^{-1} g_t`` (no first moment, as in
    the authors' code).

    Args:
        params: parameters or parameter groups (``lr``, ``beta2``, ``eps``, ``sqrt`` per group).
        lr: a multiplier of the step (1, the paper's method).
        beta2: the decay of the second moment.
        eps: the floor of ``B_t``'s diagonal.
        sqrt: precondition with ``sqrt(B_t)`` (RMSProp scaling; not scale invariant).

    References:
        Abdukhakimov, Xiang, Kamzolov, Gower, Takáč. SANIA: Polyak-type Optimization Framework
        Leads to Scale Invariant Stochastic Algorithms. 2023. https://arxiv.org/abs/2312.17369
    """

    def __init__(self, params: Params, lr: float = 1.0, beta2: float = 0.999, eps: float = 1e-10,
                 sqrt: bool = False) -> None:
        _check(lr, eps)
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"invalid beta2 {beta2}: must be in [0, 1)")
        super().__init__(params, {"lr": lr, "beta2": beta2, "eps": eps, "sqrt": bool(sqrt), "step_size": 1.0})

    def _accumulate(self, group: dict[str, Any], p: Tensor, g: Tensor, state: dict[str, Any]) -> Tensor:
        beta2 = group["beta2"]
        if not state:
            state["step"] = 0
            state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        state["v"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # v_t
        return state["v"] / (1.0 - beta2 ** state["step"])  # bias-corrected v_hat


def _check(lr: float, eps: float) -> None:
    if not lr >= 0.0:
        raise ValueError(f"invalid learning rate {lr}: must be >= 0")
    if not eps >= 0.0:
        raise ValueError(f"invalid eps {eps}: must be >= 0")


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    for name, cls in (("sania_adagrad_sqr", SANIAAdaGradSQR), ("sania_adam_sqr", SANIAAdamSQR)):
        register_optimizer(OptimizerInfo(name=name, cls=cls, paper="sania_polyak_optimizer", reference=None,
                                         # the authors' code default floor: without it the first step (about
                                         # 1/|g| per coordinate) overshoots the contract's least squares
                                         needs_closure=True, test_kwargs={"eps": 0.1},
                                         description=(cls.__doc__ or "").strip().splitlines()[0]))


_register()
